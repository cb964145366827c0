// Host dequantizers against llama.cpp's Python reference (gguf.quants, via
// tests/golden/loader_dequant.json), half conversions against the CPU's F16C instructions,
// and quantize -> dequantize error bounds.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "kernels/dequant.h"
#include "model/gguf_file.h"

using tessera::DType;

namespace {

const std::string kModel =
    std::string(TESSERA_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

nlohmann::json golden() {
  std::ifstream f(std::string(TESSERA_SOURCE_DIR) + "/tests/golden/loader_dequant.json");
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = std::stoi(hex.substr(2 * i, 2), nullptr, 16);
  return out;
}

DType dtype_of(const std::string& name) {
  for (DType t :
       {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
    if (name == tessera::dtype_name(t)) return t;
  }
  FAIL("unknown dtype " << name);
  return DType::kF32;
}

// The reference computes d * q + m in float32; a fused multiply-add here may differ by an ulp.
bool close(float ours, double ref) {
  return std::fabs(ours - ref) <= 1e-6 * std::fabs(ref) + 1e-12;
}

}  // namespace

TEST_CASE("dequant: every type matches gguf.quants on random blocks", "[loader][dequant]") {
  const auto g = golden();
  REQUIRE(g["blocks"].size() == 5);
  for (const auto& c : g["blocks"]) {
    const DType t = dtype_of(c["dtype"]);
    const auto bytes = from_hex(c["bytes_hex"]);
    const int64_t n = c["n"];
    REQUIRE(bytes.size() == tessera::dtype_row_bytes(t, n));
    std::vector<float> out(n);
    tessera::dequantize(t, bytes.data(), out.data(), n);
    int mismatches = 0;
    for (int64_t i = 0; i < n; ++i) mismatches += !close(out[i], c["values"][i].get<double>());
    INFO(c["dtype"]);
    CHECK(mismatches == 0);
  }
}

TEST_CASE("dequant: default model tensors match gguf.quants", "[loader][dequant]") {
  INFO("needs " << kModel << " (scripts/setup.sh makes it)");  // missing: fail, never skip
  REQUIRE((std::filesystem::exists(kModel)));
  const auto g = golden();
  REQUIRE(g["model"].size() == 5);
  auto gguf = tessera::GgufFile::open(kModel);
  for (const auto& m : g["model"]) {
    const auto* info = gguf->find_tensor(m["name"]);
    REQUIRE(info != nullptr);
    const int64_t rows = m["rows"], cols = m["cols"];
    tessera::HostTensor t{info->dtype, rows, cols, info->data};
    const std::vector<float> all = tessera::dequantize_tensor(t);
    for (const auto& [row, values] : m["row_values"].items()) {
      const int64_t r = std::stoll(row);
      for (size_t i = 0; i < values.size(); ++i) {
        INFO(m["name"] << " row " << r << " col " << i);
        REQUIRE(close(all[r * cols + i], values[i].get<double>()));
      }
    }
    double sum = 0, abs_sum = 0;
    for (float v : all) {
      sum += v;
      abs_sum += std::fabs(v);
    }
    INFO(m["name"]);
    CHECK(abs_sum == Approx(m["abs_sum"].get<double>()).epsilon(1e-9));
    CHECK(sum == Approx(m["sum"].get<double>()).margin(1e-6 * abs_sum));
  }
}

TEST_CASE("dequant: fp16 <-> f32 agrees with F16C on every half", "[loader][dequant]") {
#if defined(__F16C__)
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = tessera::fp16_to_f32(static_cast<uint16_t>(h));
    const float hw = _cvtsh_ss(static_cast<unsigned short>(h));
    if (std::isnan(hw)) {
      REQUIRE(std::isnan(ours));
      continue;
    }
    REQUIRE(std::memcmp(&ours, &hw, 4) == 0);
    REQUIRE(tessera::f32_to_fp16(ours) == h);  // every half survives the round trip
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = bits(rng);
    // Concentrate on the half range (|x| < 2^17) half of the time, incl. subnormals.
    if (i % 2) u = (u & 0x80000000u) | (u % 0x48000000u);
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) continue;
    const uint16_t hw = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
    INFO("bits " << u);
    REQUIRE(tessera::f32_to_fp16(f) == hw);
  }
#else
  WARN("skipping: built without F16C");
#endif
}

TEST_CASE("dequant: bf16 rounds to nearest even and keeps NaN", "[loader][dequant]") {
  CHECK(tessera::bf16_to_f32(0x3f80) == 1.0f);
  CHECK(tessera::bf16_to_f32(0xc000) == -2.0f);
  CHECK(tessera::f32_to_bf16(1.0f) == 0x3f80);
  CHECK(tessera::f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);             // tie -> even (down)
  CHECK(tessera::f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);         // tie -> even (up)
  CHECK(tessera::f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);  // above the tie
  CHECK(tessera::f32_to_bf16(3.4e38f) == 0x7f80);                    // overflows to inf
  CHECK(std::isnan(tessera::bf16_to_f32(tessera::f32_to_bf16(std::nanf("")))));
}

TEST_CASE("dequant: quantize -> dequantize stays within half a step", "[loader][dequant]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(32 * 64);
  for (float& v : x) v = normal(rng);
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kF16, DType::kBF16}) {
    const auto bytes = tessera::quantize(t, x);
    std::vector<float> y(x.size());
    tessera::dequantize(t, bytes.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float lo = x[b * 32], hi = lo, amax = 0;
      for (int j = 0; j < 32; ++j) {
        lo = std::min(lo, x[b * 32 + j]);
        hi = std::max(hi, x[b * 32 + j]);
        amax = std::max(amax, std::fabs(x[b * 32 + j]));
      }
      // Half a step, plus the fp16 rounding of the scale (2^-11 relative, times |q| <= 127 for
      // Q8_0); Q4_0 clamps the side opposite the largest value, so up to a whole step.
      float bound = 0;
      switch (t) {
        case DType::kQ8_0:
          bound = (0.5f + 127 * 0x1p-11f) * amax / 127 * 1.01f;
          break;
        case DType::kQ4_0:
          bound = 1.0f * amax / 8 * 1.01f;
          break;
        case DType::kQ4_1:
          bound = (0.5f + 15 * 0x1p-11f) * (hi - lo) / 15 * 1.01f + 0x1p-11f * std::fabs(lo);
          break;
        case DType::kF16:
          bound = amax * 0x1p-11f;
          break;
        default:
          bound = amax * 0x1p-8f;
          break;
      }
      for (int j = 0; j < 32; ++j) {
        INFO(tessera::dtype_name(t) << " block " << b << " elem " << j);
        REQUIRE(std::fabs(y[b * 32 + j] - x[b * 32 + j]) <= bound);
      }
    }
  }
  CHECK_THROWS(tessera::quantize(DType::kQ8_0, std::vector<float>(31)));
}
