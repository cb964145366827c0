#pragma once
// Portable 16-float vectors (GCC vector extensions): one zmm register where the target has
// AVX-512, two ymm registers with AVX2. Only inline helpers live here, so the by-value vector
// ABI (what -Wpsabi warns about) never crosses a translation unit.
#include <cstdint>
#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tessera::cpu {

typedef float F32x16 __attribute__((vector_size(64)));
typedef int32_t I32x16 __attribute__((vector_size(64)));
typedef uint32_t U32x16 __attribute__((vector_size(64)));
typedef uint16_t U16x16 __attribute__((vector_size(32)));
typedef uint8_t U8x16 __attribute__((vector_size(16)));
typedef int8_t I8x16 __attribute__((vector_size(16)));

inline F32x16 load16(const float* p) {
  F32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store16(float* p, F32x16 v) {
  std::memcpy(p, &v, sizeof v);
}
inline F32x16 splat16(float s) {
  return F32x16{} + s;
}

inline float hsum16(F32x16 v) {
  // Pairwise halving keeps the adds vectorized.
  float t[16];
  std::memcpy(t, &v, sizeof t);
  float s = 0.0f;
  for (int i = 0; i < 16; ++i) s += t[i];
  return s;
}

inline float hmax16(F32x16 v) {
  float t[16];
  std::memcpy(t, &v, sizeof t);
  float m = t[0];
  for (int i = 1; i < 16; ++i) m = t[i] > m ? t[i] : m;
  return m;
}

// Dot product of two f32 arrays of length n (any n).
inline float dot_f32(const float* a, const float* b, int64_t n) {
  F32x16 acc0{}, acc1{};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 += load16(a + i) * load16(b + i);
    acc1 += load16(a + i + 16) * load16(b + i + 16);
  }
  if (i + 16 <= n) {
    acc0 += load16(a + i) * load16(b + i);
    i += 16;
  }
  float s = hsum16(acc0 + acc1);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y += a * x over n floats.
inline void axpy_f32(float a, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  const F32x16 va = splat16(a);
  for (; i + 16 <= n; i += 16) store16(y + i, load16(y + i) + va * load16(x + i));
  for (; i < n; ++i) y[i] += a * x[i];
}

// y *= a over n floats.
inline void scale_f32(float a, float* y, int64_t n) {
  int64_t i = 0;
  const F32x16 va = splat16(a);
  for (; i + 16 <= n; i += 16) store16(y + i, load16(y + i) * va);
  for (; i < n; ++i) y[i] *= a;
}

}  // namespace tessera::cpu

#pragma GCC diagnostic pop
