// `tessera perplexity` (server/perplexity.h): llama.cpp's chunking and scoring, checked
// against a token-by-token run; and the accuracy of online FP8 / INT8 against bf16 weights
// on the default model, pinned so a regression in the quantizer or its kernels fails CI.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "common/error.h"
#include "engine/simple_generate.h"
#include "kernels/ops.h"
#include "kernels/quantize.h"
#include "model/llama_model.h"
#include "model/loader.h"
#include "model/quant_online.h"
#include "model/tokenizer.h"
#include "quant_fixtures.h"
#include "server/perplexity.h"

namespace {

double log_softmax_at(const std::vector<float>& logits, int32_t tok) {
  double m = logits[0], s = 0;
  for (float v : logits) m = std::max(m, double(v));
  for (float v : logits) s += std::exp(v - m);
  return logits[tok] - m - std::log(s);
}

}  // namespace

TEST_CASE("perplexity: second half of each chunk, as a token-by-token run scores it",
          "[perplexity]") {
  const tessera::LoadedModel m = tessera::load_model(quant_test::fixtures_dir() + "/kquant.gguf");
  auto ops = tessera::make_cpu_ops(2);
  tessera::LlamaModel model(m.config, m.weights, *ops);
  std::mt19937 rng(3);
  std::vector<int32_t> tokens(40);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % m.config.vocab_size);
  const int ctx = 16, bos = 5;

  // Reference: per chunk (2 fit in 40 tokens), BOS first, logits after each prefix.
  double nll = 0;
  int scored = 0;
  for (int c = 0; c < 2; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * ctx, tokens.begin() + (c + 1) * ctx);
    chunk[0] = bos;
    tessera::SequenceRunner runner(model, ctx);
    std::vector<float> logits = runner.feed(std::span(chunk).first(ctx / 2 + 1));
    for (int p = ctx / 2; p < ctx - 1; ++p) {
      nll -= log_softmax_at(logits, chunk[p + 1]);
      ++scored;
      if (p + 1 < ctx - 1) logits = runner.feed(std::span(chunk).subspan(p + 1, 1));
    }
  }
  for (int batch : {16, 5}) {
    tessera::PerplexityOptions o;
    o.ctx_size = ctx;
    o.batch_size = batch;
    o.bos_id = bos;
    int calls = 0;
    o.on_chunk = [&](int, int n, double) { calls += n == 2; };
    const tessera::PerplexityResult r = tessera::perplexity(model, tokens, o);
    INFO("batch " << batch);
    CHECK(r.chunks == 2);
    CHECK(calls == 2);
    CHECK(r.scored == scored);
    CHECK(r.ppl == Approx(std::exp(nll / scored)).epsilon(1e-5));
  }
  tessera::PerplexityOptions one;
  one.ctx_size = ctx;
  one.chunks = 1;
  CHECK(tessera::perplexity(model, tokens, one).scored == ctx / 2 - 1);
  one.ctx_size = 24;  // 40 tokens < 2 * 24
  CHECK_THROWS_AS(tessera::perplexity(model, tokens, one), tessera::Error);
}

// The 1% targets are judged on the full run (bench/results/quantization.md, ctx 512); on this
// short sample (6 chunks of 128, 384 tokens scored) the measured deltas were fp8 -1.8% and
// int8 +0.3%, so the pin is 2.5%: far below what a wrong scale or rounding would cost.
TEST_CASE("perplexity: FP8 and INT8 weights stay close to bf16 (CPU, default model)",
          "[perplexity][quant]") {
  const std::string kModel =
      std::string(TESSERA_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  const std::string kText = "/usr/share/common-licenses/GPL-3";
  INFO("needs " << kModel << " and " << kText);  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(kModel) && std::filesystem::exists(kText)));
  std::ifstream f(kText);
  std::stringstream text;
  text << f.rdbuf();
  auto ops = tessera::make_cpu_ops(0);
  auto run = [&](const std::string& scheme) {
    tessera::LoadedModel m = tessera::load_model(kModel);
    const std::vector<int32_t> tokens = m.tokenizer->encode(text.str(), true, false);
    tessera::OnlineQuant q = tessera::parse_online_quant(scheme);
    if (q.kind != tessera::QuantKind::kDense) {
      // Until the CPU backend has kernels for the scheme: its rounding on dense kernels.
      const std::vector<float> ones(64, 0.5f);
      tessera::HostTensor probe{tessera::DType::kF32, 2, 32, ones.data()};
      const tessera::QuantizedTensor pq = tessera::quantize_weight(probe, q.kind, 0);
      try {
        ops->upload(pq.view);
      } catch (const tessera::Error& e) {
        WARN(scheme << ": " << e.what() << "; measuring with weights decoded to f32");
        q.simulate = true;
      }
    }
    tessera::quantize_loaded_model(m, q);
    tessera::LlamaModel model(m.config, m.weights, *ops);
    tessera::PerplexityOptions o;
    o.ctx_size = 128;
    o.chunks = 6;
    return tessera::perplexity(model, tokens, o).ppl;
  };
  const double bf16 = run("bf16");
  const double fp8 = run("fp8");
  const double int8 = run("int8");
  WARN("ppl bf16 " << bf16 << ", fp8 " << fp8 << ", int8 " << int8);
  CHECK(bf16 > 1.0);
  CHECK(std::fabs(fp8 / bf16 - 1) < 0.025);
  CHECK(std::fabs(int8 / bf16 - 1) < 0.025);
}
