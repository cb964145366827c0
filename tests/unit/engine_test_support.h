#pragma once
// Shared by the engine unit tests: a tiny character tokenizer and a scripted executor that
// drives EngineImpl without a model. Not a test file itself (no TEST_CASE here).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "engine/engine_impl.h"
#include "engine/model_runner.h"
#include "engine/sampler.h"
#include "model/tokenizer.h"
#include "timeout_scale.h"

namespace tessera::test {

// ids 0..25 'a'..'z', 26 ' ', 27 '\n', 28 <eos> (special), 29/30 the two bytes of "é",
// 31 <|im_end|> (special, an end-of-turn stop id), 32..41 '0'..'9', 42..63 '#'.
class CharTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kEos = 28;
  static constexpr int32_t kEAcute1 = 29;
  static constexpr int32_t kEAcute2 = 30;
  static constexpr int32_t kImEnd = 31;

  CharTokenizer() {
    vocab_size_ = 64;
    eos_id_ = kEos;
    stop_ids_ = {kEos, kImEnd};
  }
  std::vector<int32_t> encode(std::string_view text, bool, bool) const override {
    std::vector<int32_t> ids;
    for (char ch : text) ids.push_back(id_of(ch));
    return ids;
  }
  static int32_t id_of(char ch) {
    if (ch >= 'a' && ch <= 'z') return ch - 'a';
    if (ch == ' ') return 26;
    if (ch == '\n') return 27;
    if (ch >= '0' && ch <= '9') return 32 + (ch - '0');
    return 42;
  }
  std::string token_bytes(int32_t id) const override {
    if (id >= 0 && id < 26) return std::string(1, static_cast<char>('a' + id));
    if (id == 26) return " ";
    if (id == 27) return "\n";
    if (id == kEos) return "<eos>";
    if (id == kEAcute1) return "\xC3";
    if (id == kEAcute2) return "\xA9";
    if (id == kImEnd) return "<|im_end|>";
    if (id >= 32 && id < 42) return std::string(1, static_cast<char>('0' + id - 32));
    return "#";
  }
  bool is_special(int32_t id) const override { return id == kEos || id == kImEnd; }
  int32_t token_id(std::string_view) const override { return -1; }
};

// Decides the next token of a sequence from its prompt and output so far; -1: uniform
// logits (every token equally likely, for sampling tests).
using Script =
    std::function<int32_t(std::span<const int32_t> prompt, std::span<const int32_t> output)>;

struct ExecutorControl {
  Script script;
  std::atomic<int> entered{0};      // execute() calls begun
  std::atomic<int> steps{0};        // execute() calls past the gate
  std::atomic<int> plan_errors{0};  // plans whose tokens disagreed with the request state
  std::atomic<int32_t> poison{-1};  // a prompt token that makes execute() throw
  std::atomic<int> step_sleep_ms{0};
  std::mutex mu;
  std::condition_variable cv;
  bool blocked = false;  // execute() waits while true
  void set_blocked(bool b) {
    {
      std::lock_guard lock(mu);
      blocked = b;
    }
    cv.notify_all();
  }
};

class ScriptedExecutor final : public StepExecutor {
 public:
  ScriptedExecutor(const SamplingSource& source, std::shared_ptr<ExecutorControl> control,
                   int vocab)
      : source_(source), control_(std::move(control)), vocab_(vocab) {}

  StepOutput execute(const StepPlan& plan) override {
    ++control_->entered;
    {
      std::unique_lock lock(control_->mu);
      control_->cv.wait(lock, [&] { return !control_->blocked; });
    }
    if (control_->step_sleep_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(control_->step_sleep_ms.load()));
    ++control_->steps;
    StepOutput out;
    out.vocab = vocab_;
    for (const ScheduledSeq& s : plan.seqs) {
      const SeqSampling v = source_.sampling_for(s.id);
      std::vector<int32_t> known(v.prompt.begin(), v.prompt.end());
      known.insert(known.end(), v.output.begin(), v.output.end());
      for (int p = s.start; p < s.end; ++p) {
        if (p >= static_cast<int>(known.size()) ||
            known[static_cast<size_t>(p)] != s.tokens[static_cast<size_t>(p - s.start)])
          ++control_->plan_errors;
        if (s.tokens[static_cast<size_t>(p - s.start)] == control_->poison.load())
          throw Error(ErrorKind::kInternal, "poisoned token in the batch");
      }
      if (!s.sample) continue;
      if (s.end != static_cast<int>(known.size())) ++control_->plan_errors;
      std::vector<float> row(static_cast<size_t>(vocab_), 0.0f);
      const int32_t next = control_->script(v.prompt, v.output);
      if (next >= 0) row[static_cast<size_t>(next)] = 20.0f;
      const SampleResult r = sample_token(row, *v.params, {v.prompt, v.output}, v.seed);
      out.sampled.push_back({s.id, r.token});
      out.logprobs.push_back(r.logprob);
      out.logits.insert(out.logits.end(), row.begin(), row.end());
    }
    return out;
  }

 private:
  const SamplingSource& source_;
  std::shared_ptr<ExecutorControl> control_;
  int vocab_;
};

struct TestEngineOptions {
  int block_size = 4;
  int num_blocks = 64;
  int max_num_seqs = 8;
  int max_num_batched_tokens = 64;
  int max_waiting = 64;
  int max_model_len = 200;
  PolicyKind policy = PolicyKind::kContinuous;
};

inline std::unique_ptr<EngineImpl> make_test_engine(std::shared_ptr<ExecutorControl> control,
                                                    metrics::Registry& registry,
                                                    TestEngineOptions o = {}) {
  EngineParts parts;
  parts.tokenizer = std::make_shared<CharTokenizer>();
  parts.model_config.vocab_size = 64;
  parts.model_config.eos_token_id = CharTokenizer::kEos;
  parts.model_name = "char-test";
  parts.max_model_len = o.max_model_len;
  parts.scheduler.policy = o.policy;
  parts.scheduler.kv.block_size = o.block_size;
  parts.scheduler.kv.num_blocks = o.num_blocks;
  parts.scheduler.max_num_seqs = o.max_num_seqs;
  parts.scheduler.max_num_batched_tokens = o.max_num_batched_tokens;
  parts.scheduler.max_waiting = o.max_waiting;
  parts.scheduler.max_model_len = o.max_model_len;
  parts.scheduler.static_batch_size = 2;
  parts.scheduler.static_flush_timeout = std::chrono::milliseconds(20);
  parts.scheduler.dynamic_max_queue_delay = std::chrono::milliseconds(5);
  parts.registry = &registry;
  parts.make_executor = [control](const SamplingSource& source) {
    return std::make_unique<ScriptedExecutor>(source, control, 64);
  };
  return std::make_unique<EngineImpl>(std::move(parts));
}

// Everything one choice produced, read from a stream until it is done.
struct ChoiceResult {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  std::optional<FinishReason> finish;
  std::string error;
  int completion_tokens = 0;
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;
  int num_events = 0;
};

inline std::vector<ChoiceResult> collect(ResultStream& stream, int n,
                                         std::chrono::seconds timeout = std::chrono::seconds(60)) {
  std::vector<ChoiceResult> out(static_cast<size_t>(n));
  const auto end = Clock::now() + timeout * timeout_scale();
  while (!stream.done() && Clock::now() < end) {
    auto ev = stream.next(std::chrono::milliseconds(100));
    if (!ev) continue;
    ChoiceResult& c = out.at(static_cast<size_t>(ev->index));
    ++c.num_events;
    c.tokens.insert(c.tokens.end(), ev->token_ids.begin(), ev->token_ids.end());
    c.text += ev->text;
    c.logprobs.insert(c.logprobs.end(), ev->logprobs.begin(), ev->logprobs.end());
    if (ev->finish) {
      c.finish = ev->finish;
      c.error = ev->error;
      c.completion_tokens = ev->completion_tokens;
      c.prompt_tokens = ev->prompt_tokens;
      c.cached_prompt_tokens = ev->cached_prompt_tokens;
    }
  }
  return out;
}

// Polls until pred() or the timeout; returns pred().
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto end = Clock::now() + timeout * timeout_scale();
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace tessera::test
