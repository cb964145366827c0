// Both loaders drive the same forward pass to the same logits: the GGUF (Q4_1/Q8_0, Q/K rows
// in adjacent pairs, rope.neox = false) and the HF folder converted from it by transformers
// (float32, rotate-halves, rope.neox = true). Same weights, different layouts: any mix-up of
// rows/cols, permutation or RoPE flag shows up as a logits mismatch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "engine/simple_generate.h"
#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/loader.h"
#include "model/tokenizer.h"

namespace {

const std::string kRoot = TESSERA_SOURCE_DIR;
const std::string kGguf = kRoot + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kHf = kRoot + "/models/smollm2-hf";

struct Run {
  std::vector<float> logits;    // after the prompt
  std::vector<int32_t> greedy;  // greedy continuation
};

Run run(const tessera::LoadedModel& m, const std::vector<int32_t>& prompt, int new_tokens) {
  auto ops = tessera::make_cpu_ops(0);
  tessera::LlamaModel model(m.config, m.weights, *ops);
  tessera::SequenceRunner runner(model, static_cast<int>(prompt.size()) + new_tokens + 1);
  Run r;
  std::vector<float> logits = runner.feed(prompt);
  r.logits = logits;
  for (int i = 0; i < new_tokens; ++i) {
    const int32_t id =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    r.greedy.push_back(id);
    const int32_t one[] = {id};
    logits = runner.feed(one);
  }
  return r;
}

}  // namespace

TEST_CASE("loader: GGUF and HF folder give the same logits", "[loader][hf][logits]") {
  INFO("needs " << kHf << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(kGguf) && std::filesystem::exists(kHf + "/model.safetensors")));
  const tessera::LoadedModel g = tessera::load_model(kGguf);
  const tessera::LoadedModel h = tessera::load_model(kHf);
  REQUIRE(g.tokenizer != nullptr);
  double worst = 0.0;
  for (const char* text :
       {"The capital of France is",
        "<|im_start|>user\nWhat is 12 times 12?<|im_end|>\n<|im_start|>assistant\n",
        "def fibonacci(n):\n    "}) {
    INFO(text);
    const std::vector<int32_t> prompt = g.tokenizer->encode(text, false, true);
    REQUIRE(prompt == h.tokenizer->encode(text, false, true));
    const Run a = run(g, prompt, 8);
    const Run b = run(h, prompt, 8);
    REQUIRE(a.logits.size() == static_cast<size_t>(g.config.vocab_size));
    REQUIRE(b.logits.size() == a.logits.size());
    float max_abs = 0.0f, max_diff = 0.0f;
    for (size_t i = 0; i < a.logits.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(b.logits[i]));
      max_diff = std::max(max_diff, std::fabs(a.logits[i] - b.logits[i]));
    }
    const double rel = max_diff / max_abs;
    worst = std::max(worst, rel);
    CHECK(rel < 1e-4);
    CHECK(a.greedy == b.greedy);
  }
  WARN("max |logits(gguf) - logits(hf)| / max |logits| = " << worst);
}
