// GGUF K-quants (Q4_K, Q5_K, Q6_K) beside Q4_0 / Q4_1 / Q8_0: a small Llama of random blocks
// (scripts/make_quant_fixtures.py) loads with the right types, every tensor dequantizes to
// what the gguf package (llama.cpp's Python reference) decodes, and the CPU forward pass on
// the quantized weights matches the one on their f32 decoding.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "engine/simple_generate.h"
#include "model/llama_model.h"
#include "model/loader.h"
#include "quant_fixtures.h"

namespace {

std::vector<float> prompt_logits(const tessera::LoadedModel& m, const tessera::WeightSet& w) {
  auto ops = tessera::make_cpu_ops(2);
  tessera::LlamaModel model(m.config, w, *ops);
  tessera::SequenceRunner runner(model, 64, 16, /*prefill_chunk=*/7);
  const std::vector<int32_t> prompt = {1, 17, 300, 42, 42, 5, 250, 99, 3, 120, 7, 64};
  runner.feed(std::span(prompt).first(9));
  return runner.feed(std::span(prompt).subspan(9));  // prefill chunks, then more tokens
}

}  // namespace

TEST_CASE("loader: GGUF K-quants decode like gguf.quants", "[loader][kquant]") {
  const std::string dir = quant_test::fixtures_dir();
  const tessera::LoadedModel m = tessera::load_model(dir + "/kquant.gguf");
  const auto ref = quant_test::reference(dir + "/kquant.reference.safetensors");
  std::ifstream f(dir + "/kquant.expect.json");
  const nlohmann::json types = nlohmann::json::parse(f)["types"];
  REQUIRE(types.size() == m.weights.tensors.size());
  int kquants = 0;
  for (const auto& [name, type] : types.items()) {
    INFO(name);
    const tessera::HostTensor& t = m.weights.get(name);
    CHECK(tessera::dtype_name(t.dtype) == type.get<std::string>());
    kquants += tessera::dtype_is_kquant(t.dtype);
    const std::vector<float> ours = tessera::dequantize_tensor(t);
    const std::vector<float> want = ref.values(name);
    REQUIRE(ours.size() == want.size());
    int bad = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      bad += std::fabs(ours[i] - want[i]) > 1e-6f * std::fabs(want[i]) + 1e-12f;
    }
    CHECK(bad == 0);
  }
  CHECK(kquants == 10);
  CHECK_THROWS_AS(tessera::quantize(tessera::DType::kQ4_K, std::vector<float>(256)),
                  tessera::Error);
}

TEST_CASE("loader: CPU forward on K-quants matches their f32 decoding", "[loader][kquant]") {
  const std::string dir = quant_test::fixtures_dir();
  const tessera::LoadedModel m = tessera::load_model(dir + "/kquant.gguf");
  tessera::WeightSet f32;
  for (const auto& [name, t] : m.weights.tensors) {
    auto values = std::make_shared<std::vector<float>>(tessera::dequantize_tensor(t));
    f32.tensors[name] = tessera::HostTensor{tessera::DType::kF32, t.rows, t.cols, values->data()};
    f32.storage.push_back(values);
  }
  const std::vector<float> a = prompt_logits(m, m.weights);
  const std::vector<float> b = prompt_logits(m, f32);
  REQUIRE(a.size() == static_cast<size_t>(m.config.vocab_size));
  const double rel = quant_test::max_rel_diff(a, b);
  INFO("max rel diff " << rel);
  CHECK(rel < 1e-4);
}
