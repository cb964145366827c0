#include "kernels/cuda/host_convert.h"

#include <cmath>
#include <cstring>

#include "common/error.h"

namespace tessera::cuda {

uint16_t float_to_bf16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((b >> 16) | 0x40);
  b += 0x7fff + ((b >> 16) & 1);
  return static_cast<uint16_t>(b >> 16);
}

float bf16_to_float(uint16_t h) {
  const uint32_t b = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(man), -24);
  } else if (exp == 31) {
    v = man ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(man | 0x400), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

uint16_t float_to_half(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000;
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7e00);
  const float a = std::fabs(f);
  if (a >= 65520.0f) return static_cast<uint16_t>(sign | 0x7c00);
  if (a < 6.103515625e-05f) {  // subnormal: multiples of 2^-24, round to nearest even
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
  }
  int e;
  const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  uint32_t mant = static_cast<uint32_t>(std::nearbyint((m * 2.0f - 1.0f) * 1024.0f));
  int exp = e - 1 + 15;
  if (mant == 1024) mant = 0, ++exp;
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  return static_cast<uint16_t>(sign | (uint32_t(exp) << 10) | mant);
}

namespace {

// GGUF block sizes (dtype.h), kept local: this library sits below tessera_kernels at link time.
int block_bytes(DType t) {
  switch (t) {
    case DType::kQ8_0:
      return 34;
    case DType::kQ4_0:
      return 18;
    case DType::kQ4_1:
      return 20;
    default:
      throw Error(ErrorKind::kUnsupported, "upload: unsupported weight type");
  }
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// One GGUF block of 32 values.
void dequant_block(DType t, const uint8_t* blk, float* out) {
  const float d = half_to_float(load_u16(blk));
  switch (t) {
    case DType::kQ8_0:
      for (int i = 0; i < 32; ++i) out[i] = d * static_cast<int8_t>(blk[2 + i]);
      return;
    case DType::kQ4_0:
      for (int j = 0; j < 16; ++j) {
        out[j] = d * ((blk[2 + j] & 0x0f) - 8);
        out[j + 16] = d * ((blk[2 + j] >> 4) - 8);
      }
      return;
    case DType::kQ4_1: {
      const float m = half_to_float(load_u16(blk + 2));
      for (int j = 0; j < 16; ++j) {
        out[j] = d * (blk[4 + j] & 0x0f) + m;
        out[j + 16] = d * (blk[4 + j] >> 4) + m;
      }
      return;
    }
    default:
      throw Error(ErrorKind::kInternal, "dequant_block: not a quantized type");
  }
}

}  // namespace

std::vector<float> to_f32(const HostTensor& t) {
  if (t.rows < 0 || t.cols < 0 || (t.data == nullptr && t.rows * t.cols > 0)) {
    throw Error(ErrorKind::kInvalidArgument, "upload: tensor with bad shape or no data");
  }
  const int64_t n = t.rows * t.cols;
  std::vector<float> out(static_cast<size_t>(n));
  const uint8_t* src = static_cast<const uint8_t*>(t.data);
  switch (t.dtype) {
    case DType::kF32:
      std::memcpy(out.data(), src, static_cast<size_t>(n) * 4);
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = half_to_float(load_u16(src + 2 * i));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(load_u16(src + 2 * i));
      break;
    default: {
      const int bb = block_bytes(t.dtype);
      if (t.cols % 32 != 0) {
        throw Error(ErrorKind::kInvalidArgument,
                    "upload: quantized tensor whose row length is not a multiple of 32");
      }
      const int64_t blocks = t.cols / 32;
      const size_t row_bytes = static_cast<size_t>(blocks) * bb;
      for (int64_t r = 0; r < t.rows; ++r) {
        for (int64_t b = 0; b < blocks; ++b) {
          dequant_block(t.dtype, src + r * row_bytes + b * bb, out.data() + r * t.cols + b * 32);
        }
      }
    }
  }
  return out;
}

std::vector<uint16_t> to_bf16(const HostTensor& t) {
  const std::vector<float> f = to_f32(t);
  std::vector<uint16_t> out(f.size());
  for (size_t i = 0; i < f.size(); ++i) out[i] = float_to_bf16(f[i]);
  return out;
}

}  // namespace tessera::cuda
