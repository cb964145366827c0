// Online quantization at load (model/quant_online.h, kernels/quantize.h): a GGUF model's
// projections requantized to FP8 / INT8 / INT4 decode (by the canonical layout, as the tests
// read it) to within each scheme's rounding of the original weights; embeddings and norms
// are untouched.
#include <catch2/catch.hpp>

#include "kernels/fp8.h"
#include "kernels/quantize.h"
#include "kernels/scheme_ref.h"
#include "model/loader.h"
#include "model/quant_online.h"
#include "quant_fixtures.h"

TEST_CASE("quantize: e4m3 codes round-trip and round to nearest", "[quant]") {
  for (int b = 0; b < 256; ++b) {
    const double v = quant_test::e4m3(static_cast<uint8_t>(b));
    if (std::isnan(v)) continue;
    INFO("code " << b);
    CHECK(tessera::fp8_e4m3_to_f32(static_cast<uint8_t>(b)) == static_cast<float>(v));
    if (b != 0x80) CHECK(tessera::f32_to_fp8_e4m3(static_cast<float>(v)) == b);
  }
  CHECK(tessera::f32_to_fp8_e4m3(1000.0f) == 0x7E);   // saturates at 448
  CHECK(tessera::f32_to_fp8_e4m3(-1.0625f) == 0xB8);  // tie between 1 and 1.125 -> even (1)
  CHECK(tessera::f32_to_fp8_e4m3(1.07f) == 0x39);
}

TEST_CASE("quantize: online fp8 / int8 / int4 of a GGUF model", "[quant][loader]") {
  const std::string path = quant_test::fixtures_dir() + "/kquant.gguf";
  const tessera::LoadedModel orig = tessera::load_model(path);
  for (const char* scheme : {"fp8", "int8", "int4"}) {
    tessera::LoadedModel m = tessera::load_model(path);
    const tessera::OnlineQuant q = tessera::parse_online_quant(scheme);
    CHECK(tessera::quantize_loaded_model(m, q) == 7 * m.config.num_layers);
    CHECK(m.weights.get("token_embd.weight").dtype == orig.weights.get("token_embd.weight").dtype);
    for (const auto& [name, t] : m.weights.tensors) {
      INFO(scheme << " " << name);
      const std::vector<float> w = tessera::dequantize_tensor(orig.weights.get(name));
      if (name.find("attn_") == std::string::npos && name.find("ffn_") == std::string::npos) {
        CHECK(t.scheme.kind == tessera::QuantKind::kDense);
        continue;
      }
      if (name.find("norm") != std::string::npos) continue;
      REQUIRE(tessera::quant_kind_name(t.scheme.kind) == std::string(scheme));
      const std::vector<double> d = quant_test::decode_canonical(t);
      const std::vector<float> lib = tessera::dequantize_weight(t);
      CHECK(quant_test::max_rel_diff(lib, d) < 1e-7);
      const int64_t gs = t.scheme.group_size > 0 ? t.scheme.group_size : t.cols;
      int bad = 0;
      for (int64_t r = 0; r < t.rows; ++r) {
        for (int64_t g0 = 0; g0 < t.cols; g0 += gs) {
          double lo = 0, hi = 0;
          for (int64_t c = g0; c < std::min(t.cols, g0 + gs); ++c) {
            lo = std::min(lo, double(w[r * t.cols + c]));
            hi = std::max(hi, double(w[r * t.cols + c]));
          }
          const double amax = std::max(-lo, hi);
          for (int64_t c = g0; c < std::min(t.cols, g0 + gs); ++c) {
            const double x = w[r * t.cols + c], err = std::fabs(d[r * t.cols + c] - x);
            double bound;
            if (t.scheme.kind == tessera::QuantKind::kFp8) {
              bound = std::fabs(x) / 16 + amax / 448 * 0x1p-9;  // half of 3 mantissa bits
            } else if (t.scheme.kind == tessera::QuantKind::kInt8) {
              bound = amax / 127 / 2;
            } else {
              bound = (hi - lo) / 15;  // half a step, plus the zero point's rounding
            }
            bad += err > bound * 1.0001 + 1e-9;
          }
        }
      }
      CHECK(bad == 0);
    }
  }
  CHECK_THROWS(tessera::parse_online_quant("int3"));
}
