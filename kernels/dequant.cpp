#include "kernels/dequant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "kernels/dequant_kquant.h"

namespace tessera {
namespace {

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void store_u16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}

constexpr int kQk = 32;  // values per Q8_0 / Q4_0 / Q4_1 block

}  // namespace

float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in f32.
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000 | (mant << 13));
  return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t f32_to_fp16(float f) {
  uint32_t x = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffff;
  if (x >= 0x7f800000) return sign | (x > 0x7f800000 ? 0x7e00 : 0x7c00);
  if (x >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds past the largest half
  if (x < 0x38800000) {
    // Below the smallest normal half (2^-14): a subnormal count of 2^-24 units. Scaling by a
    // power of two is exact, and nearbyint rounds half to even in the default mode.
    const float units = std::nearbyint(bits_f32(x) * 0x1p24f);
    return sign | static_cast<uint16_t>(units);
  }
  x += 0xfff + ((x >> 13) & 1);  // round to nearest even on the 13 dropped bits
  x -= 112u << 23;               // rebias the exponent from 127 to 15
  return sign | static_cast<uint16_t>(x >> 13);
}

float bf16_to_f32(uint16_t b) {
  return bits_f32(static_cast<uint32_t>(b) << 16);
}

uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);
  return static_cast<uint16_t>((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

void dequantize(DType type, const void* src_ptr, float* dst, int64_t n) {
  const auto* src = static_cast<const uint8_t*>(src_ptr);
  if (n % dtype_block_elems(type) != 0) {
    throw Error(ErrorKind::kInvalidArgument, std::string("dequantize: ") + std::to_string(n) +
                                                 " is not a multiple of the " + dtype_name(type) +
                                                 " block");
  }
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(load_u16(src + 2 * i));
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_u16(src + 2 * i));
      return;
    case DType::kQ8_0:
      for (int64_t b = 0; b < n / kQk; ++b, src += 34, dst += kQk) {
        const float d = fp16_to_f32(load_u16(src));
        for (int j = 0; j < kQk; ++j)
          dst[j] = static_cast<float>(static_cast<int8_t>(src[2 + j])) * d;
      }
      return;
    case DType::kQ4_0:
      for (int64_t b = 0; b < n / kQk; ++b, src += 18, dst += kQk) {
        const float d = fp16_to_f32(load_u16(src));
        for (int j = 0; j < kQk / 2; ++j) {
          dst[j] = static_cast<float>((src[2 + j] & 0x0f) - 8) * d;
          dst[j + kQk / 2] = static_cast<float>((src[2 + j] >> 4) - 8) * d;
        }
      }
      return;
    case DType::kQ4_1:
      for (int64_t b = 0; b < n / kQk; ++b, src += 20, dst += kQk) {
        const float d = fp16_to_f32(load_u16(src));
        const float m = fp16_to_f32(load_u16(src + 2));
        for (int j = 0; j < kQk / 2; ++j) {
          dst[j] = static_cast<float>(src[4 + j] & 0x0f) * d + m;
          dst[j + kQk / 2] = static_cast<float>(src[4 + j] >> 4) * d + m;
        }
      }
      return;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      dequantize_kquant(type, src, dst, n);
      return;
  }
  throw Error(ErrorKind::kUnsupported, "dequantize: unknown dtype");
}

namespace {

void quantize_q8_0(const float* x, uint8_t* out) {
  float amax = 0.0f;
  for (int j = 0; j < kQk; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_u16(out, f32_to_fp16(d));
  for (int j = 0; j < kQk; ++j)
    out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
}

void quantize_q4_0(const float* x, uint8_t* out) {
  // The value of largest magnitude maps to -8, keeping its sign, as ggml does.
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQk; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_u16(out, f32_to_fp16(d));
  for (int j = 0; j < kQk / 2; ++j) {
    const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
    const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQk / 2] * id + 8.5f)));
    out[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

void quantize_q4_1(const float* x, uint8_t* out) {
  float min = x[0], max = x[0];
  for (int j = 1; j < kQk; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_u16(out, f32_to_fp16(d));
  store_u16(out + 2, f32_to_fp16(min));
  for (int j = 0; j < kQk / 2; ++j) {
    const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
    const int q1 =
        std::min(15, static_cast<int>(static_cast<int8_t>((x[j + kQk / 2] - min) * id + 0.5f)));
    out[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

}  // namespace

std::vector<uint8_t> quantize(DType type, std::span<const float> src) {
  const int64_t n = static_cast<int64_t>(src.size());
  if (n % dtype_block_elems(type) != 0) {
    throw Error(ErrorKind::kInvalidArgument, std::string("quantize: ") + std::to_string(n) +
                                                 " is not a multiple of the " + dtype_name(type) +
                                                 " block");
  }
  std::vector<uint8_t> out(dtype_row_bytes(type, n));
  uint8_t* o = out.data();
  const float* x = src.data();
  switch (type) {
    case DType::kF32:
      std::memcpy(o, x, out.size());
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) store_u16(o + 2 * i, f32_to_fp16(x[i]));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) store_u16(o + 2 * i, f32_to_bf16(x[i]));
      break;
    case DType::kQ8_0:
      for (int64_t b = 0; b < n / kQk; ++b) quantize_q8_0(x + b * kQk, o + b * 34);
      break;
    case DType::kQ4_0:
      for (int64_t b = 0; b < n / kQk; ++b) quantize_q4_0(x + b * kQk, o + b * 18);
      break;
    case DType::kQ4_1:
      for (int64_t b = 0; b < n / kQk; ++b) quantize_q4_1(x + b * kQk, o + b * 20);
      break;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      // llama.cpp's K-quant quantizers search scales iteratively; Tessera only reads K-quants.
      throw Error(ErrorKind::kUnsupported,
                  std::string("quantize: ") + dtype_name(type) + " is read-only in Tessera");
  }
  return out;
}

std::vector<float> dequantize_tensor(const HostTensor& t) {
  std::vector<float> out(static_cast<size_t>(t.rows * t.cols));
  dequantize(t.dtype, t.data, out.data(), t.rows * t.cols);
  return out;
}

}  // namespace tessera
