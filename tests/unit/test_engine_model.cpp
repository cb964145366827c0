// The engine on the real default model (CPU backend), end to end through create_engine:
// batching does not change greedy outputs, preemption + recompute does not either, stop
// strings across real token boundaries, cancel frees KV, seeded n > 1, every policy.
// Fails when models/ lacks the default model.
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
constexpr int kMaxTokens = 10;
const std::vector<std::string> kPrompts = {
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "List three colors: red,",
};

bool have_model() {
  return std::filesystem::exists(kModelPath);
}

EngineConfig base_config() {
  EngineConfig c;
  c.model = kModelPath;
  c.device = "cpu";
  c.kv_cache_bytes = 32ll << 20;
  c.max_model_len = 128;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 256;
  return c;
}

GenerationRequest greedy_request(const Engine& e, const std::string& prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = e.tokenizer().encode(prompt, true, false);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  return r;
}

// Greedy outputs of each prompt run alone on a roomy engine: the reference for the rest.
const std::map<std::string, ChoiceResult>& reference() {
  static const std::map<std::string, ChoiceResult> ref = [] {
    std::map<std::string, ChoiceResult> m;
    auto engine = create_engine(base_config());
    for (const auto& p : kPrompts)
      m[p] = collect(*engine->submit(greedy_request(*engine, p, kMaxTokens)), 1)[0];
    return m;
  }();
  return ref;
}

// Submits every prompt (each `copies` times) at once and checks each against the reference.
void check_burst(Engine& engine, int copies) {
  std::vector<std::pair<std::string, std::shared_ptr<ResultStream>>> streams;
  for (int c = 0; c < copies; ++c)
    for (const auto& p : kPrompts)
      streams.emplace_back(p, engine.submit(greedy_request(engine, p, kMaxTokens)));
  for (auto& [p, s] : streams) {
    INFO("prompt: " << p);
    const ChoiceResult got = collect(*s, 1)[0];
    const ChoiceResult& want = reference().at(p);
    CHECK(got.finish == want.finish);
    CHECK(got.tokens == want.tokens);
    CHECK(got.text == want.text);
  }
}

// A test that needs a missing file fails (scripts/setup.sh fetches the model).
#define SKIP_WITHOUT_MODEL()                                          \
  do {                                                                \
    INFO("needs " << kModelPath << " (scripts/setup.sh fetches it)"); \
    REQUIRE(have_model());                                            \
  } while (false)

}  // namespace

TEST_CASE("model: greedy outputs of a concurrent batch equal each run alone",
          "[engine][engine_model]") {
  SKIP_WITHOUT_MODEL();
  const auto& ref = reference();
  auto engine = create_engine(base_config());
  for (const auto& p : kPrompts) {
    const ChoiceResult& r = ref.at(p);
    INFO("prompt: " << p << " -> " << r.text);
    REQUIRE(r.finish.has_value());
    CHECK(r.tokens.size() >= 1);
    // Streamed deltas add up to the detokenized output (EOS, if any, has no text).
    std::vector<int32_t> ids = r.tokens;
    if (*r.finish == FinishReason::kStop) ids.pop_back();
    CHECK(r.text == engine->tokenizer().decode(ids, true));
  }
  check_burst(*engine, 2);
  CHECK(eventually([&] { return engine->stats().kv_blocks_used == 0; }));
}

TEST_CASE("model: a request preempted under KV pressure returns what it returns unpreempted",
          "[engine][engine_model]") {
  SKIP_WITHOUT_MODEL();
  EngineConfig roomy = base_config();
  int64_t block_bytes = 0;
  {
    auto probe = create_engine(roomy);
    const int blocks = probe->stats().kv_blocks_total + 1;  // + the reserved block 0
    block_bytes = roomy.kv_cache_bytes / blocks;            // >= the true block size
  }
  EngineConfig tight = base_config();
  // 9 blocks (8 usable, 128 tokens = max_model_len): 8 sequences of ~20 tokens need more.
  tight.kv_cache_bytes = 9 * block_bytes + block_bytes / 2;
  tight.enable_prefix_caching = false;
  auto engine = create_engine(tight);
  REQUIRE(engine->stats().kv_blocks_total == 8);
  check_burst(*engine, 2);
  CHECK(engine->stats().preemptions_total > 0);
  CHECK(eventually([&] { return engine->stats().kv_blocks_used == 0; }));
}

TEST_CASE("model: a stop string spanning a token boundary ends the text before it",
          "[engine][engine_model]") {
  SKIP_WITHOUT_MODEL();
  auto engine = create_engine(base_config());
  const Tokenizer& tok = engine->tokenizer();
  const std::string prompt = "Once upon a time, in a small village,";
  const ChoiceResult& full = reference().at(prompt);
  // Find a boundary where the left token ends in 2+ ASCII chars and the right starts with one.
  std::string stop;
  for (size_t k = 0; k + 1 < full.tokens.size() && stop.empty(); ++k) {
    const std::string a = tok.token_bytes(full.tokens[k]);
    const std::string b = tok.token_bytes(full.tokens[k + 1]);
    if (a.size() >= 2 && !b.empty() && static_cast<unsigned char>(a.back()) < 0x80 &&
        static_cast<unsigned char>(b[0]) < 0x80 && !tok.is_special(full.tokens[k + 1]))
      stop = a.substr(a.size() - 2) + b.substr(0, 1);
  }
  REQUIRE_FALSE(stop.empty());
  const size_t at = full.text.find(stop);
  REQUIRE(at != std::string::npos);
  auto req = greedy_request(*engine, prompt, kMaxTokens);
  req.sampling.stop = {stop};
  const ChoiceResult got = collect(*engine->submit(req), 1)[0];
  INFO("stop '" << stop << "' in '" << full.text << "'");
  CHECK(got.finish == FinishReason::kStop);
  CHECK(got.text == full.text.substr(0, at));
  CHECK(got.text.find(stop) == std::string::npos);
}

TEST_CASE("model: cancel returns KV usage to zero", "[engine][engine_model]") {
  SKIP_WITHOUT_MODEL();
  auto engine = create_engine(base_config());
  auto req = greedy_request(*engine, kPrompts[2], 100);
  req.sampling.ignore_eos = true;
  auto stream = engine->submit(req);
  REQUIRE(stream->next(std::chrono::seconds(30)).has_value());
  // Stats are published after each step: the first event can arrive just before them.
  CHECK(eventually([&] { return engine->stats().kv_blocks_used > 0; }));
  stream->cancel();
  const ChoiceResult r = collect(*stream, 1)[0];
  CHECK(r.finish == FinishReason::kCancelled);
  CHECK(r.tokens.size() < 100);
  CHECK(eventually([&] { return engine->stats().kv_blocks_used == 0; }));
}

TEST_CASE("model: n > 1 with a seed is reproducible", "[engine][engine_model]") {
  SKIP_WITHOUT_MODEL();
  auto engine = create_engine(base_config());
  auto req = greedy_request(*engine, kPrompts[2], 8);
  req.sampling.temperature = 1.0f;
  req.sampling.top_p = 0.95f;
  req.sampling.n = 3;
  req.sampling.seed = 1234;
  req.sampling.ignore_eos = true;
  const auto a = collect(*engine->submit(req), 3);
  const auto b = collect(*engine->submit(req), 3);
  for (int i = 0; i < 3; ++i) {
    INFO("choice " << i << ": " << a[i].text);
    CHECK(a[i].tokens.size() == 8);
    CHECK(a[i].tokens == b[i].tokens);
    CHECK(a[i].text == b[i].text);
  }
  CHECK((a[0].tokens != a[1].tokens || a[1].tokens != a[2].tokens));
  CHECK(eventually([&] { return engine->stats().kv_blocks_used == 0; }));
}

TEST_CASE("model: every batching policy serves a burst correctly", "[engine][engine_model]") {
  SKIP_WITHOUT_MODEL();
  for (BatchingPolicy policy :
       {BatchingPolicy::kStatic, BatchingPolicy::kDynamic, BatchingPolicy::kContinuous}) {
    INFO("policy " << batching_policy_name(policy));
    EngineConfig c = base_config();
    c.policy = policy;
    c.max_num_seqs = 3;
    c.static_batch_size = 3;
    auto engine = create_engine(c);
    check_burst(*engine, 1);
    CHECK(eventually([&] { return engine->stats().kv_blocks_used == 0; }));
  }
}

TEST_CASE("model: a shared prefix is served from the cache and changes nothing; greedy logprobs",
          "[engine][engine_model]") {
  SKIP_WITHOUT_MODEL();
  auto engine = create_engine(base_config());
  // Two full blocks of shared context (>= 32 tokens), then different endings.
  const std::string shared =
      "The following is a short list of facts about the solar system, written for children "
      "who are learning about planets, moons and stars for the very first time at school, "
      "with one fact on each line. ";
  auto first = greedy_request(*engine, shared + "Fact one:", 6);
  auto second = greedy_request(*engine, shared + "Fact two:", 6);
  REQUIRE(first.prompt.size() >= 34);
  second.sampling.logprobs = 3;
  const ChoiceResult a = collect(*engine->submit(first), 1)[0];
  const ChoiceResult b = collect(*engine->submit(second), 1)[0];
  CHECK(a.cached_prompt_tokens == 0);
  CHECK(b.cached_prompt_tokens >= 32);
  CHECK(b.cached_prompt_tokens % 16 == 0);

  // The same second request on a fresh engine (nothing cached) gives the same tokens.
  EngineConfig no_cache = base_config();
  no_cache.enable_prefix_caching = false;
  auto cold = create_engine(no_cache);
  const ChoiceResult c = collect(*cold->submit(second), 1)[0];
  CHECK(c.cached_prompt_tokens == 0);
  CHECK(b.tokens == c.tokens);

  // Greedy: the chosen token is the best alternative, and logprobs are log-probabilities.
  REQUIRE(b.logprobs.size() == b.tokens.size());
  for (size_t i = 0; i < b.logprobs.size(); ++i) {
    const TokenLogprob& lp = b.logprobs[i];
    CHECK(lp.token == b.tokens[i]);
    REQUIRE(lp.top.size() == 3);
    CHECK(lp.top[0].first == lp.token);
    CHECK(lp.top[0].second == Approx(lp.logprob));
    CHECK(lp.logprob <= 0.0f);
    CHECK(lp.top[1].second <= lp.top[0].second);
    // Cached and recomputed prefixes give the same log-probabilities.
    REQUIRE(c.logprobs.size() == b.logprobs.size());
    CHECK(c.logprobs[i].logprob == Approx(lp.logprob).margin(1e-3));
  }
}
