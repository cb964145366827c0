#pragma once
// Test helpers for the CPU-op tests: random weights in every storage type, built from the
// GGUF block layouts described in kernels/dtype.h, and an independent fp64 decoder of them.
#include <bit>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/dtype.h"

namespace tessera::test {

inline uint16_t to_f16(float f) {
  return std::bit_cast<uint16_t>(static_cast<_Float16>(f));
}
inline double from_f16(uint16_t h) {
  return static_cast<double>(std::bit_cast<_Float16>(h));
}
inline uint16_t to_bf16(float f) {
  return static_cast<uint16_t>(std::bit_cast<uint32_t>(f) >> 16);
}
inline double from_bf16(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

inline std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Random row-major [rows, cols] weight bytes of type t.
inline std::vector<uint8_t> random_weight(std::mt19937& rng, DType t, int64_t rows, int64_t cols) {
  std::vector<uint8_t> out(dtype_row_bytes(t, cols) * rows);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.002f, 0.05f);
  std::uniform_int_distribution<int> byte(0, 255);
  uint8_t* p = out.data();
  auto put16 = [&](uint16_t v) {
    std::memcpy(p, &v, 2);
    p += 2;
  };
  const int64_t n = rows * cols;
  switch (t) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        const float f = val(rng);
        std::memcpy(p, &f, 4);
        p += 4;
      }
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) put16(to_f16(val(rng)));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) put16(to_bf16(val(rng)));
      break;
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
      for (int64_t b = 0; b < n / 32; ++b) {
        put16(to_f16(scale(rng)));
        if (t == DType::kQ4_1) put16(to_f16(-scale(rng) * 8));
        const int qbytes = t == DType::kQ8_0 ? 32 : 16;
        for (int j = 0; j < qbytes; ++j) *p++ = static_cast<uint8_t>(byte(rng));
      }
      break;
    default:
      FAIL("random_weight: no generator for " << tessera::dtype_name(t));
  }
  return out;
}

// Independent fp64 decoder following the GGUF block definitions.
inline std::vector<double> decode_weight(DType t, const std::vector<uint8_t>& bytes, int64_t rows,
                                         int64_t cols) {
  std::vector<double> out(rows * cols);
  const uint8_t* p = bytes.data();
  auto get16 = [&](const uint8_t* q) {
    uint16_t v;
    std::memcpy(&v, q, 2);
    return v;
  };
  const int64_t n = rows * cols;
  switch (t) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, p + 4 * i, 4);
        out[i] = f;
      }
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = from_f16(get16(p + 2 * i));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = from_bf16(get16(p + 2 * i));
      break;
    case DType::kQ8_0:
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = p + 34 * b;
        const double d = from_f16(get16(blk));
        for (int j = 0; j < 32; ++j) out[b * 32 + j] = d * static_cast<int8_t>(blk[2 + j]);
      }
      break;
    case DType::kQ4_0:
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = p + 18 * b;
        const double d = from_f16(get16(blk));
        for (int j = 0; j < 16; ++j) {
          out[b * 32 + j] = d * ((blk[2 + j] & 0xF) - 8);
          out[b * 32 + j + 16] = d * ((blk[2 + j] >> 4) - 8);
        }
      }
      break;
    case DType::kQ4_1:
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = p + 20 * b;
        const double d = from_f16(get16(blk));
        const double m = from_f16(get16(blk + 2));
        for (int j = 0; j < 16; ++j) {
          out[b * 32 + j] = d * (blk[4 + j] & 0xF) + m;
          out[b * 32 + j + 16] = d * (blk[4 + j] >> 4) + m;
        }
      }
      break;
    default:
      FAIL("decode_weight: no reference decoder for " << tessera::dtype_name(t));
  }
  return out;
}

}  // namespace tessera::test
