// Pipelined steps (async_scheduling "on") on the real default model, CPU backend, against the
// same engine running one step at a time: the step after a sequence's sample is planned with
// its token pending and fed in by the runner; ends (EOS, stop strings, max_tokens, cancel)
// are seen one step late. Outputs must be identical, token for token, greedy and seeded,
// under batching, preemption and cancellation, and KV must return to zero.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <string>

#include "engine/engine_factory.h"
#include "engine_test_support.h"
#include "model/tokenizer.h"

using namespace tessera;
using namespace tessera::test;

namespace {

const std::string kModelPath =
    std::string(TESSERA_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

const std::vector<std::string> kPrompts = {
    "The capital of France is", "def fibonacci(n):",       "Once upon a time, in a small village,",
    "List three colors: red,",  "Q: What is 12 + 30?\nA:", "The three laws of robotics are",
};

EngineConfig config(bool pipelined) {
  REQUIRE(std::filesystem::exists(kModelPath));  // scripts/fetch_model.sh provides it
  EngineConfig c;
  c.model = kModelPath;
  c.device = "cpu";
  c.kv_cache_bytes = 32ll << 20;
  c.max_model_len = 160;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 64;  // prompts are prefilled in chunks beside decodes
  c.async_scheduling = pipelined ? "on" : "off";
  c.deterministic = true;  // batch-invariant: the two runs batch differently
  return c;
}

// Each kind of request the pipelined path must get right; index picks the prompt.
GenerationRequest request(const Engine& e, size_t index, int kind) {
  GenerationRequest r;
  r.prompt = e.tokenizer().encode(kPrompts[index % kPrompts.size()], true, false);
  r.sampling.max_tokens = 12 + static_cast<int>(index % 5);
  switch (kind % 4) {
    case 0:  // greedy
      r.sampling.temperature = 0.0f;
      break;
    case 1:  // seeded sampling on the path the device sampler covers
      r.sampling.temperature = 0.9f;
      r.sampling.top_p = 0.9f;
      r.sampling.top_k = 40;
      r.sampling.seed = 1000 + index;
      r.sampling.ignore_eos = true;
      break;
    case 2:  // penalties and logprobs: pipelined too, the pending token counted as output
      r.sampling.temperature = 0.7f;
      r.sampling.seed = 2000 + index;
      r.sampling.frequency_penalty = 0.5f;
      r.sampling.logprobs = 2;
      break;
    default:  // a stop string that the reference output reaches
      r.sampling.temperature = 0.0f;
      r.sampling.stop = {" the", "\n"};
      break;
  }
  return r;
}

// Requests 0 .. count - 1 of the kinds given (kind i % 4 unless `device_kinds_only`, which
// leaves out kind 2, the penalties and logprobs).
std::vector<ChoiceResult> run_burst(Engine& engine, int count, bool device_kinds_only) {
  std::vector<std::shared_ptr<ResultStream>> streams;
  for (int i = 0; i < count; ++i)
    streams.push_back(engine.submit(
        request(engine, static_cast<size_t>(i), device_kinds_only && i % 4 == 2 ? 0 : i)));
  std::vector<ChoiceResult> out;
  for (auto& s : streams) out.push_back(collect(*s, 1)[0]);
  return out;
}

void check_same(const std::vector<ChoiceResult>& got, const std::vector<ChoiceResult>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("request " << i << " (kind " << i % 4 << "): " << want[i].text);
    REQUIRE(want[i].finish.has_value());
    CHECK(got[i].finish == want[i].finish);
    CHECK(got[i].tokens == want[i].tokens);
    CHECK(got[i].text == want[i].text);
    CHECK(got[i].completion_tokens == want[i].completion_tokens);
    CHECK(got[i].logprobs.size() == want[i].logprobs.size());
  }
}

const std::vector<ChoiceResult>& reference(bool device_kinds_only) {
  static const std::vector<ChoiceResult> mixed = [] {
    auto engine = create_engine(config(false));
    return run_burst(*engine, 16, false);
  }();
  static const std::vector<ChoiceResult> device_sampled = [] {
    auto engine = create_engine(config(false));
    return run_burst(*engine, 16, true);
  }();
  return device_kinds_only ? device_sampled : mixed;
}

}  // namespace

TEST_CASE("pipelined steps give the outputs of one step at a time", "[engine][pipelined]") {
  const auto& want = reference(true);
  auto engine = create_engine(config(true));
  check_same(run_burst(*engine, 16, true), want);
  const EngineStats s = engine->stats();
  CHECK(s.pipelined_steps_total > s.steps_total / 2);  // most steps overlapped
  // Penalties and logprobs among them: pipelined as well, outputs unchanged.
  const EngineStats before = engine->stats();
  check_same(run_burst(*engine, 16, false), reference(false));
  const EngineStats after = engine->stats();
  CHECK(after.pipelined_steps_total - before.pipelined_steps_total >
        (after.steps_total - before.steps_total) / 2);
  CHECK(eventually([&] { return engine->stats().kv_blocks_used == 0; }));
  // The stop-string requests really stopped early on some prompt.
  bool stopped_early = false;
  for (size_t i = 3; i < want.size(); i += 4)
    stopped_early |= want[i].finish == FinishReason::kStop &&
                     want[i].completion_tokens < request(*engine, i, 3).sampling.max_tokens;
  CHECK(stopped_early);
}

TEST_CASE("pipelined steps under preemption give the same outputs and free every block",
          "[engine][pipelined]") {
  const auto& want = reference(true);
  EngineConfig tight = config(true);
  int64_t block_bytes = 0;
  {
    auto probe = create_engine(tight);
    block_bytes = tight.kv_cache_bytes / (probe->stats().kv_blocks_total + 1);
  }
  tight.kv_cache_bytes = 9 * block_bytes + block_bytes / 2;  // 8 usable blocks, 128 tokens
  tight.enable_prefix_caching = false;
  tight.max_model_len = 128;
  auto engine = create_engine(tight);
  REQUIRE(engine->stats().kv_blocks_total == 8);
  check_same(run_burst(*engine, 16, true), want);
  CHECK(engine->stats().preemptions_total > 0);
  CHECK(engine->stats().pipelined_steps_total > 0);
  CHECK(eventually([&] { return engine->stats().kv_blocks_used == 0; }));
}

TEST_CASE("pipelined steps: cancelling streams mid-flight frees their KV", "[engine][pipelined]") {
  auto engine = create_engine(config(true));
  std::vector<std::shared_ptr<ResultStream>> streams;
  for (size_t i = 0; i < 8; ++i) {
    GenerationRequest r = request(*engine, i, 1);
    r.sampling.max_tokens = 120;
    streams.push_back(engine->submit(r));
  }
  for (auto& s : streams) REQUIRE(s->next(std::chrono::seconds(60)).has_value());
  for (size_t i = 0; i < streams.size(); i += 2) streams[i]->cancel();
  for (size_t i = 0; i < streams.size(); ++i) {
    const ChoiceResult r = collect(*streams[i], 1)[0];
    if (i % 2 == 0) {
      CHECK(r.finish == FinishReason::kCancelled);
    } else {
      CHECK(r.finish == FinishReason::kLength);
      CHECK(r.completion_tokens == 120);
    }
  }
  CHECK(eventually([&] { return engine->stats().kv_blocks_used == 0; }));
}
