#pragma once
// Host conversions of OCP FP8 E4M3 ("e4m3fn": 1 sign, 4 exponent bits of bias 7, 3 mantissa
// bits; no infinities, 0x7f / 0xff are NaN, largest finite 448). Scalar and portable: the
// CPU backend's reference kernels and the quantizer use them.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace tessera {

constexpr float kFp8E4m3Max = 448.0f;

inline float fp8_e4m3_to_f32(uint8_t b) {
  const int e = (b >> 3) & 0xf, m = b & 7;
  if (e == 15 && m == 7) return NAN;
  const float mag = e == 0 ? std::ldexp(static_cast<float>(m), -9)
                           : std::ldexp(static_cast<float>(8 + m), e - 10);
  return (b & 0x80) ? -mag : mag;
}

// Round to nearest even; magnitudes above 448 saturate to 448; NaN stays NaN.
inline uint8_t f32_to_fp8_e4m3(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const auto sign = static_cast<uint8_t>((x >> 24) & 0x80);
  x &= 0x7fffffff;
  if (x > 0x7f800000) return sign | 0x7f;
  float a;
  std::memcpy(&a, &x, 4);
  if (a >= kFp8E4m3Max) return sign | 0x7e;
  if (a < 0x1p-6f) {  // subnormal: a count of 2^-9 units (8 units is the smallest normal)
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  }
  x += 0x7ffff + ((x >> 20) & 1);  // round to nearest even on the 20 dropped bits
  const uint32_t e = (x >> 23) - 127 + 7, m = (x >> 20) & 7;
  if (e > 15 || (e == 15 && m == 7)) return sign | 0x7e;
  return sign | static_cast<uint8_t>((e << 3) | m);
}

}  // namespace tessera
