// The HTTP frontend against a scripted engine: OpenAI response shapes, SSE framing, error
// bodies and status codes, auth, queue-full 429, health/ready, and cancellation when a
// streaming client disconnects. The real engine is exercised by tests/e2e.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/metrics.h"
#include "engine/engine.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "server/http_server.h"

using namespace tessera;
using json = nlohmann::json;

namespace {

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

class ScriptedStream : public ResultStream {
 public:
  explicit ScriptedStream(int n) : finished_(n, false) {}
  void push(GenerationEvent e) {
    std::lock_guard lock(mu_);
    if (e.finish) finished_[e.index] = true;
    events_.push_back(std::move(e));
    cv_.notify_all();
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
};

// Generates 'a', 'b', ... one token per `token_delay`, choice i offset by i letters.
class ScriptedEngine : public Engine {
 public:
  ScriptedEngine() { config_.max_position_embeddings = 64; }
  ~ScriptedEngine() override { stop(); }

  std::shared_ptr<ResultStream> submit(GenerationRequest r) override {
    if (queue_full) throw Error(ErrorKind::kResourceExhausted, "waiting queue is full");
    last_request = r;
    auto stream = std::make_shared<ScriptedStream>(r.sampling.n);
    std::lock_guard lock(mu_);
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
  std::atomic<int64_t> steps{1};
  Clock::time_point last_step_end = Clock::now();
  std::chrono::milliseconds token_delay{1};
  GenerationRequest last_request;

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
  }

  ByteTokenizer tok_;
  ModelConfig config_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
};

std::string chatml(const std::vector<ChatMessage>& msgs, bool add_generation_prompt) {
  std::string out;
  for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

struct Fixture {
  explicit Fixture(HttpOptions opts = {}) {
    opts.host = "127.0.0.1";
    opts.port = 0;
    opts.stream_keepalive_ms = 50;
    server = std::make_unique<HttpServer>(engine, opts, registry, chatml);
    server->bind();
    thread = std::thread([this] { server->run(); });
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_read_timeout(10, 0);
  }
  ~Fixture() {
    server->stop();
    thread.join();
  }
  httplib::Result post(const std::string& path, const std::string& body) {
    return client->Post(path.c_str(), body, "application/json");
  }

  ScriptedEngine engine;
  metrics::Registry registry;
  std::unique_ptr<HttpServer> server;
  std::thread thread;
  std::unique_ptr<httplib::Client> client;
};

// Parses an SSE body into its data payloads (comments dropped).
std::vector<std::string> sse_data(const std::string& body) {
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

void check_error(const httplib::Result& r, int status, const std::string& param,
                 const std::string& code = "") {
  REQUIRE(r);
  CHECK(r->status == status);
  json j = json::parse(r->body);
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["message"].is_string());
  CHECK(j["error"]["type"].is_string());
  if (!param.empty()) CHECK(j["error"]["param"] == param);
  if (!code.empty()) CHECK(j["error"]["code"] == code);
}

}  // namespace

TEST_CASE("completion returns OpenAI JSON with usage", "[server]") {
  Fixture f;
  auto r = f.post("/v1/completions",
                  R"({"model":"toy","prompt":"hi","max_tokens":4,"n":2,"logprobs":2})");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  json j = json::parse(r->body);
  CHECK(j["object"] == "text_completion");
  CHECK(j["model"] == "toy");
  REQUIRE(j["choices"].size() == 2);
  CHECK(j["choices"][0]["text"] == "abcd");
  CHECK(j["choices"][1]["text"] == "bcde");
  CHECK(j["choices"][0]["finish_reason"] == "length");
  CHECK(j["choices"][0]["logprobs"]["tokens"] == json({"a", "b", "c", "d"}));
  CHECK(j["choices"][0]["logprobs"]["text_offset"] == json({0, 1, 2, 3}));
  CHECK(j["choices"][0]["logprobs"]["top_logprobs"][0].size() == 2);
  CHECK(j["usage"]["prompt_tokens"] == 3);  // BOS + 2 bytes
  CHECK(j["usage"]["completion_tokens"] == 8);
  CHECK(j["usage"]["total_tokens"] == 11);
  // Extensions and sampling fields reach the engine.
  auto r2 = f.post("/v1/completions",
                   R"({"prompt":[5,6,7],"max_tokens":2,"priority":7,"ignore_eos":true,
                       "temperature":0,"top_k":-1,"seed":-3,"stop":"x"})");
  REQUIRE(r2);
  CHECK(r2->status == 200);
  CHECK(f.engine.last_request.priority == 7);
  CHECK(f.engine.last_request.sampling.ignore_eos);
  CHECK(f.engine.last_request.sampling.top_k == 0);
  CHECK(f.engine.last_request.sampling.stop == std::vector<std::string>{"x"});
  CHECK(f.engine.last_request.prompt == std::vector<int32_t>{5, 6, 7});
}

TEST_CASE("chat stream: role chunk, deltas, usage chunk, [DONE]", "[server]") {
  Fixture f;
  auto r = f.post("/v1/chat/completions",
                  R"({"model":"toy","messages":[{"role":"user","content":"hey"}],
                      "max_tokens":3,"stream":true,"stream_options":{"include_usage":true}})");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type").starts_with("text/event-stream"));
  auto data = sse_data(r->body);
  REQUIRE(data.size() >= 5);
  CHECK(data.back() == "[DONE]");
  json first = json::parse(data[0]);
  CHECK(first["object"] == "chat.completion.chunk");
  CHECK(first["choices"][0]["delta"]["role"] == "assistant");
  CHECK(first["usage"].is_null());
  std::string text;
  std::string finish;
  for (size_t i = 1; i + 2 < data.size(); ++i) {
    json c = json::parse(data[i]);
    auto& ch = c["choices"][0];
    if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  CHECK(text == "abc");
  CHECK(finish == "length");
  json usage = json::parse(data[data.size() - 2]);
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["completion_tokens"] == 3);
  // The prompt is the rendered template, without BOS (the template owns special tokens).
  CHECK(f.engine.last_request.prompt.front() == 258);
  CHECK(usage["usage"]["prompt_tokens"] == int(f.engine.last_request.prompt.size()));
}

TEST_CASE("chat max_tokens defaults to the room left in the context", "[server]") {
  Fixture f;
  auto r = f.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(f.engine.last_request.sampling.max_tokens == 64 - int(f.engine.last_request.prompt.size()));
}

TEST_CASE("malformed requests get 4xx with an OpenAI error body naming the field", "[server]") {
  HttpOptions o;
  o.max_body_bytes = 4096;
  Fixture f(o);
  check_error(f.post("/v1/completions", "{not json"), 400, "", "invalid_json");
  check_error(f.post("/v1/completions", "[1,2]"), 400, "");
  check_error(f.post("/v1/completions", R"({"prompt":"a","temperature":"hot"})"), 400,
              "temperature");
  check_error(f.post("/v1/completions", R"({"prompt":"a","temperature":9})"), 400, "temperature");
  check_error(f.post("/v1/completions", R"({"prompt":"a","max_tokens":2.5})"), 400, "max_tokens");
  check_error(f.post("/v1/completions", R"({"prompt":"a","max_tokens":0})"), 400, "max_tokens");
  check_error(f.post("/v1/completions", R"({"prompt":"a","n":0})"), 400, "n");
  check_error(f.post("/v1/completions", R"({"prompt":"a","top_p":0})"), 400, "top_p");
  check_error(f.post("/v1/completions", R"({"prompt":"a","logprobs":99})"), 400, "logprobs");
  check_error(f.post("/v1/completions", R"({"prompt":"a","stop":[1]})"), 400, "stop");
  check_error(f.post("/v1/completions", R"({"prompt":"a","echo":true})"), 400, "echo");
  check_error(f.post("/v1/completions", R"({"prompt":"a","stream_options":{}})"), 400,
              "stream_options");
  check_error(f.post("/v1/completions", R"({"prompt":[1,99999]})"), 400, "prompt");
  check_error(f.post("/v1/completions", R"({"prompt":[]})"), 400, "prompt");
  check_error(f.post("/v1/completions", R"({"max_tokens":3})"), 400, "prompt");
  check_error(f.post("/v1/completions", R"({"model":"gpt-4","prompt":"a"})"), 404, "model",
              "model_not_found");
  check_error(f.post("/v1/completions", "{\"prompt\":\"\xff\xfe\"}"), 400, "", "invalid_json");
  // 64-token context: 3 prompt tokens + 62 > 64.
  check_error(f.post("/v1/completions", R"({"prompt":"ab","max_tokens":62})"), 400, "max_tokens",
              "context_length_exceeded");
  check_error(f.post("/v1/completions", json({{"prompt", std::string(80, 'x')}}).dump()), 400,
              "prompt", "context_length_exceeded");
  check_error(f.post("/v1/completions", json({{"prompt", std::string(5000, 'x')}}).dump()), 413, "",
              "request_too_large");
  check_error(f.post("/v1/chat/completions", R"({"messages":[]})"), 400, "messages");
  check_error(f.post("/v1/chat/completions", R"({"messages":[{"role":"wizard","content":"x"}]})"),
              400, "messages[0].role");
  check_error(f.post("/v1/chat/completions",
                     R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})"),
              400, "top_logprobs");
  check_error(f.post("/v1/chat/completions",
                     R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"f"}]})"),
              400, "tools");
  check_error(f.client->Get("/v1/nothing"), 404, "");
  // The server still serves after all of that.
  auto ok = f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})");
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("api key: 401 without it, 200 with it, probes stay open", "[server]") {
  HttpOptions o;
  o.api_key = "sekret";
  Fixture f(o);
  check_error(f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})"), 401, "",
              "invalid_api_key");
  httplib::Headers wrong = {{"Authorization", "Bearer nope"}};
  check_error(f.client->Post("/v1/completions", wrong, R"({"prompt":"a","max_tokens":1})",
                             "application/json"),
              401, "", "invalid_api_key");
  httplib::Headers right = {{"Authorization", "Bearer sekret"}};
  auto ok = f.client->Post("/v1/completions", right, R"({"prompt":"a","max_tokens":1})",
                           "application/json");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  auto health = f.client->Get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto models = f.client->Get("/v1/models");
  REQUIRE(models);
  CHECK(models->status == 401);
}

TEST_CASE("a full queue is 429 with Retry-After", "[server]") {
  Fixture f;
  f.engine.queue_full = true;
  auto r = f.post("/v1/completions", R"({"prompt":"a"})");
  check_error(r, 429, "");
  CHECK(r->get_header_value("Retry-After") == "1");
}

TEST_CASE("health turns 503 on a stalled loop; ready only after the first step", "[server]") {
  HttpOptions o;
  o.health_stall_timeout_ms = 200;
  Fixture f(o);
  auto h = f.client->Get("/health");
  REQUIRE(h);
  CHECK(h->status == 200);
  f.engine.last_step_end = Clock::now() - std::chrono::seconds(1);
  h = f.client->Get("/health");
  REQUIRE(h);
  CHECK(h->status == 503);
  f.engine.is_ready = false;
  auto r = f.client->Get("/ready");
  REQUIRE(r);
  CHECK(r->status == 503);
  f.engine.is_ready = true;
  r = f.client->Get("/ready");
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("tokenize, detokenize and models endpoints", "[server]") {
  Fixture f;
  auto t = f.post("/tokenize", R"({"prompt":"hi"})");
  REQUIRE(t);
  REQUIRE(t->status == 200);
  json tj = json::parse(t->body);
  CHECK(tj["tokens"] == json({256, 'h', 'i'}));
  CHECK(tj["count"] == 3);
  CHECK(tj["max_model_len"] == 64);
  auto d = f.post("/detokenize", R"({"tokens":[104,105]})");
  REQUIRE(d);
  REQUIRE(d->status == 200);
  CHECK(json::parse(d->body)["prompt"] == "hi");
  check_error(f.post("/detokenize", R"({"tokens":[100000]})"), 400, "tokens");
  check_error(f.post("/detokenize", R"({"tokens":"x"})"), 400, "tokens");
  auto m = f.client->Get("/v1/models");
  REQUIRE(m);
  json mj = json::parse(m->body);
  CHECK(mj["data"][0]["id"] == "toy");
  auto metrics = f.client->Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("tessera:http_requests_total{route=\"/tokenize\",status=\"200\"} 1") !=
        std::string::npos);
  CHECK(metrics->body.find("tessera:engine_last_step_age_seconds") != std::string::npos);
}

TEST_CASE("a streaming client that disconnects cancels its request", "[server]") {
  Fixture f;
  f.engine.token_delay = std::chrono::milliseconds(20);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(f.server->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  std::string body = R"({"prompt":"a","max_tokens":60,"stream":true})";
  std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  REQUIRE(::send(fd, req.data(), req.size(), 0) == ssize_t(req.size()));
  char buf[512];
  REQUIRE(::recv(fd, buf, sizeof(buf), 0) > 0);  // headers (and maybe a chunk) arrived
  ::close(fd);
  // 60 tokens x 20 ms = 1.2 s if it ran to the end; cancelled well before.
  auto deadline = Clock::now() + std::chrono::milliseconds(800);
  while (f.engine.cancels.load() == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(f.engine.cancels.load() == 1);
}
