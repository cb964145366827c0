// The CPU forward pass on the default GGUF against Hugging Face transformers (float32, same
// dequantized weights): last-position logits of 20 prompts and their greedy 64-token
// continuations. Golden files: scripts/make_logits_golden.py.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/simple_generate.h"
#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/weights.h"

using namespace tessera;

namespace {

const std::string kModel =
    std::string(TESSERA_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kGolden = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/";

struct Golden {
  nlohmann::json meta;
  std::vector<float> logits;  // [prompts, vocab]
  int vocab = 0;
};

Golden read_golden() {
  Golden g;
  std::ifstream meta(kGolden + "logits_smollm2.json");
  REQUIRE(meta.good());
  g.meta = nlohmann::json::parse(meta);
  g.vocab = g.meta["vocab"].get<int>();
  const size_t n = g.meta["prompts"].size() * static_cast<size_t>(g.vocab);
  g.logits.resize(n);
  std::ifstream bin(kGolden + g.meta["logits_file"].get<std::string>(), std::ios::binary);
  REQUIRE(bin.good());
  bin.read(reinterpret_cast<char*>(g.logits.data()), static_cast<std::streamsize>(n * 4));
  REQUIRE(bin.gcount() == static_cast<std::streamsize>(n * 4));
  return g;
}

}  // namespace

TEST_CASE("forward pass matches transformers logits and greedy continuations", "[forward]") {
  INFO("needs " << kModel << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(kModel)));
  const Golden g = read_golden();
  LoadedModel loaded = load_model(kModel);
  auto ops = make_cpu_ops(0);
  LlamaModel model(loaded.config, loaded.weights, *ops);
  REQUIRE(loaded.config.vocab_size == g.vocab);
  const int new_tokens = g.meta["new_tokens"].get<int>();
  double worst = 0.0;
  int greedy_matches = 0;
  const auto& prompts = g.meta["prompts"];
  for (size_t p = 0; p < prompts.size(); ++p) {
    const auto ids = prompts[p]["ids"].get<std::vector<int32_t>>();
    const auto want = prompts[p]["greedy"].get<std::vector<int32_t>>();
    SequenceRunner runner(model, static_cast<int>(ids.size()) + new_tokens);
    std::vector<float> logits = runner.feed(ids);
    REQUIRE(logits.size() == static_cast<size_t>(g.vocab));
    const float* ref = g.logits.data() + p * g.vocab;
    double max_diff = 0.0, max_ref = 0.0;
    for (int i = 0; i < g.vocab; ++i) {
      max_diff = std::max(max_diff, static_cast<double>(std::abs(logits[i] - ref[i])));
      max_ref = std::max(max_ref, static_cast<double>(std::abs(ref[i])));
    }
    const double rel = max_diff / max_ref;
    worst = std::max(worst, rel);
    std::vector<int32_t> got;
    for (int t = 0; t < new_tokens; ++t) {
      const auto id =
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      got.push_back(id);
      if (t + 1 < new_tokens) logits = runner.feed(std::span<const int32_t>(&got.back(), 1));
    }
    INFO("prompt " << p << ": " << prompts[p]["prompt"].get<std::string>());
    CHECK(rel < 1e-3);
    CHECK(got == want);
    greedy_matches += got == want;
  }
  WARN("max relative logit error "
       << worst << "; greedy continuations identical: " << greedy_matches << "/" << prompts.size());
}

TEST_CASE("simple_generate greedy equals the golden continuation", "[forward]") {
  INFO("needs " << kModel << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(kModel)));
  const Golden g = read_golden();
  LoadedModel loaded = load_model(kModel);
  auto ops = make_cpu_ops(0);
  LlamaModel model(loaded.config, loaded.weights, *ops);
  const auto& prompt = g.meta["prompts"][2];  // a chat prompt
  const auto ids = prompt["ids"].get<std::vector<int32_t>>();
  const auto want = prompt["greedy"].get<std::vector<int32_t>>();
  GenerateOptions opt;
  opt.max_tokens = 16;
  std::vector<int32_t> streamed;
  const GenerateResult r = simple_generate(model, ids, opt, [&](int32_t id) {
    streamed.push_back(id);
    return true;
  });
  CHECK(r.tokens == std::vector<int32_t>(want.begin(), want.begin() + 16));
  CHECK(streamed == r.tokens);
  // A stop id ends generation right after it is emitted.
  opt.stop_ids = {want[3]};
  const GenerateResult s = simple_generate(model, ids, opt);
  CHECK(s.stopped);
  CHECK(s.tokens.back() == want[3]);
  CHECK(s.tokens.size() <= 4);
}
