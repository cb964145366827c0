#pragma once
// A scripted engine and a server fixture for the HTTP frontend tests.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/metrics.h"
#include "engine/engine.h"
#include "http_test_client.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "server/http_server.h"

namespace tessera::testing {

using json = nlohmann::json;

// Bytes are ids 0..255; four special tokens follow.
class ByteTokenizer : public Tokenizer {
 public:
  ByteTokenizer() {
    vocab_size_ = 260;
    bos_id_ = 256;
    eos_id_ = 257;
    stop_ids_ = {257, 259};
  }
  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override {
    std::vector<int32_t> out;
    if (add_special) out.push_back(bos_id_);
    for (size_t i = 0; i < text.size();) {
      bool matched = false;
      for (int32_t id = 256; parse_special && id < 260; ++id) {
        std::string s = special(id);
        if (text.substr(i, s.size()) == s) {
          out.push_back(id);
          i += s.size();
          matched = true;
          break;
        }
      }
      if (!matched) out.push_back(static_cast<unsigned char>(text[i++]));
    }
    return out;
  }
  std::string token_bytes(int32_t id) const override {
    return id < 256 ? std::string(1, char(id)) : special(id);
  }
  bool is_special(int32_t id) const override { return id >= 256; }
  int32_t token_id(std::string_view text) const override {
    for (int32_t id = 256; id < 260; ++id) {
      if (special(id) == text) return id;
    }
    return text.size() == 1 ? static_cast<unsigned char>(text[0]) : -1;
  }

 private:
  static std::string special(int32_t id) {
    static const char* kNames[] = {"<s>", "</s>", "<|im_start|>", "<|im_end|>"};
    return kNames[id - 256];
  }
};

// Notifies a listener like the engine's streams do, or (notify = false) makes the server
// fall back to polling.
class ScriptedStream : public ResultStream {
 public:
  ScriptedStream(int n, bool notify) : finished_(n, false), notify_(notify) {}
  void push(GenerationEvent e) {
    std::function<void()> listener;
    {
      std::lock_guard lock(mu_);
      if (e.finish) finished_[e.index] = true;
      events_.push_back(std::move(e));
      cv_.notify_all();
      listener = listener_;
    }
    if (listener) listener();
  }
  bool set_listener(std::function<void()> fn) override {
    if (!notify_) return false;
    std::lock_guard lock(mu_);
    listener_ = std::move(fn);
    return true;
  }
  std::optional<GenerationEvent> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !events_.empty() || all_finished(); });
    if (events_.empty()) return std::nullopt;
    GenerationEvent e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  bool done() const override {
    std::lock_guard lock(mu_);
    return events_.empty() && all_finished();
  }
  void cancel() override { cancelled = true; }
  std::atomic<bool> cancelled{false};

 private:
  bool all_finished() const {
    for (bool f : finished_) {
      if (!f) return false;
    }
    return true;
  }
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerationEvent> events_;
  std::vector<bool> finished_;
  bool notify_ = true;
  std::function<void()> listener_;
};

// Generates 'a', 'b', ... one token per `token_delay`, choice i offset by i letters.
class ScriptedEngine : public Engine {
 public:
  ScriptedEngine() { config_.max_position_embeddings = 64; }
  ~ScriptedEngine() override { stop(); }

  std::shared_ptr<ResultStream> submit(GenerationRequest r) override {
    if (queue_full) throw Error(ErrorKind::kResourceExhausted, "waiting queue is full");
    auto stream = std::make_shared<ScriptedStream>(r.sampling.n, notify);
    ++submitted;
    std::lock_guard lock(mu_);
    last_request_ = r;
    workers_.emplace_back([this, stream, r] { run(stream, r); });
    return stream;
  }
  const Tokenizer& tokenizer() const override { return tok_; }
  const ModelConfig& model_config() const override { return config_; }
  std::string model_name() const override { return "toy"; }
  int max_model_len() const override { return 64; }
  EngineStats stats() const override {
    EngineStats s;
    s.steps_total = steps;
    s.last_step_end = last_step_end;
    return s;
  }
  bool ready() const override { return is_ready; }
  void stop() override {
    std::lock_guard lock(mu_);
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
    workers_.clear();
  }

  std::atomic<bool> queue_full{false};
  std::atomic<bool> is_ready{true};
  std::atomic<int> cancels{0};
  std::atomic<int> submitted{0};
  std::atomic<int> finished{0};  // generations that ran to their end or were cancelled
  bool notify = true;
  std::atomic<int64_t> steps{1};
  Clock::time_point last_step_end = Clock::now();
  std::chrono::milliseconds token_delay{1};
  GenerationRequest last_request() const {  // HTTP workers submit concurrently
    std::lock_guard lock(mu_);
    return last_request_;
  }

 private:
  void run(std::shared_ptr<ScriptedStream> s, GenerationRequest r) {
    std::vector<int> produced(r.sampling.n, 0);
    for (int t = 0; t < r.sampling.max_tokens; ++t) {
      std::this_thread::sleep_for(token_delay);
      if (s->cancelled) {
        ++cancels;
        for (int i = 0; i < r.sampling.n; ++i) {
          GenerationEvent e;
          e.index = i;
          e.finish = FinishReason::kCancelled;
          s->push(e);
        }
        ++finished;
        return;
      }
      for (int i = 0; i < r.sampling.n; ++i) {
        GenerationEvent e;
        e.index = i;
        int32_t id = 'a' + (t + i) % 26;
        e.token_ids = {id};
        e.text = std::string(1, char(id));
        if (r.sampling.logprobs >= 0) {
          TokenLogprob lp{id, -0.5f, {}};
          for (int k = 0; k < r.sampling.logprobs; ++k) lp.top.push_back({'z' - k, -1.0f - k});
          e.logprobs.push_back(lp);
        }
        if (t + 1 == r.sampling.max_tokens) {
          e.finish = FinishReason::kLength;
          e.prompt_tokens = int(r.prompt.size());
          e.completion_tokens = t + 1;
        }
        s->push(e);
      }
    }
    ++finished;
  }

  ByteTokenizer tok_;
  ModelConfig config_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;
  GenerationRequest last_request_;
};

inline std::string chatml(const std::vector<ChatMessage>& msgs, bool add_generation_prompt) {
  std::string out;
  for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

struct Fixture {
  explicit Fixture(HttpOptions opts = {}, bool notify = true) {
    opts.host = "127.0.0.1";
    opts.port = 0;
    opts.stream_keepalive_ms = 50;
    engine.notify = notify;
    server = std::make_unique<HttpServer>(engine, opts, registry, chatml);
    server->bind();
    port = server->port();
    thread = std::thread([this] { server->run(); });
  }
  ~Fixture() {
    server->stop();
    thread.join();
  }
  HttpResponse post(const std::string& path, const std::string& body, const Headers& headers = {}) {
    return http_request(port, "POST", path, body, headers);
  }
  HttpResponse get(const std::string& path, const Headers& headers = {}) {
    return http_request(port, "GET", path, "", headers);
  }

  ScriptedEngine engine;
  metrics::Registry registry;
  std::unique_ptr<HttpServer> server;
  int port = 0;
  std::thread thread;
};

// Parses an SSE body into its data payloads (comments dropped).
inline std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    std::string event = body.substr(pos, end - pos);
    if (event.starts_with("data: ")) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

inline void check_error(const HttpResponse& r, int status, const std::string& param,
                        const std::string& code = "") {
  INFO(r.body);
  REQUIRE(r.status == status);
  json j = json::parse(r.body);
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["message"].is_string());
  CHECK(j["error"]["type"].is_string());
  if (!param.empty()) CHECK(j["error"]["param"] == param);
  if (!code.empty()) CHECK(j["error"]["code"] == code);
}

}  // namespace tessera::testing
