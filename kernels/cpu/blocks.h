#pragma once
// Decoding of one 32-value group of a weight row into two 16-float vectors, per storage type.
// Quantized layouts follow GGUF (see kernels/dtype.h); float types use groups of 32 values
// so every type shares one matmul loop. Everything is inline: the matmul templates expand it.
#include <cstdint>
#include <cstring>

#include "kernels/cpu/half.h"
#include "kernels/cpu/simd.h"
#include "kernels/dtype.h"

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace tessera::cpu {

constexpr int kGroup = 32;  // values decoded per step

constexpr bool dtype_is_float(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16;
}
constexpr bool dtype_is_quantized_v(DType t) {
  return !dtype_is_float(t);
}
constexpr bool dtype_is_kquant_v(DType t) {
  return t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K;
}

// 16 int8 at p as floats. Intrinsics here: GCC 12 scalarizes the generic byte-vector
// conversion of an unaligned int8 load (measured 5x slower on the Q8_0 LM head); maskz
// forms because GCC 12 flags the unmasked ones' internal undefined operand.
inline F32x16 i8x16_to_f32(const uint8_t* p) {
  F32x16 r;
#if defined(__AVX512F__)
  const __m512i w =
      _mm512_maskz_cvtepi8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m512 v = _mm512_maskz_cvtepi32_ps(0xFFFF, w);
  std::memcpy(&r, &v, 64);
#elif defined(__AVX2__)
  const __m256 a = _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  const __m256 b = _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8))));
  std::memcpy(&r, &a, 32);
  std::memcpy(reinterpret_cast<char*>(&r) + 32, &b, 32);
#else
  I8x16 q;
  std::memcpy(&q, p, 16);
  r = __builtin_convertvector(__builtin_convertvector(q, I32x16), F32x16);
#endif
  return r;
}

template <DType kT>
struct Block;

template <>
struct Block<DType::kF32> {
  static constexpr int64_t kBytes = 128;
  static void load(const uint8_t* p, F32x16& lo, F32x16& hi) {
    std::memcpy(&lo, p, 64);
    std::memcpy(&hi, p + 64, 64);
  }
  static float scalar(const uint8_t* row, int64_t i) {
    float v;
    std::memcpy(&v, row + 4 * i, 4);
    return v;
  }
};

template <>
struct Block<DType::kF16> {
  static constexpr int64_t kBytes = 64;
  static void load(const uint8_t* p, F32x16& lo, F32x16& hi) {
#if defined(__AVX512F__)
    // maskz: GCC 12 flags the unmasked form's internal undefined value as uninitialized.
    __m512 a =
        _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    __m512 b =
        _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
    std::memcpy(&lo, &a, 64);
    std::memcpy(&hi, &b, 64);
#elif defined(__F16C__)
    __m256 v[4];
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k)));
    }
    std::memcpy(&lo, &v[0], 64);
    std::memcpy(&hi, &v[2], 64);
#else
    float t[32];
    for (int k = 0; k < 32; ++k) t[k] = f16_to_f32(load_u16(p + 2 * k));
    std::memcpy(&lo, t, 64);
    std::memcpy(&hi, t + 16, 64);
#endif
  }
  static float scalar(const uint8_t* row, int64_t i) {
    return f16_to_f32(load_u16(row + 2 * i));
  }
};

template <>
struct Block<DType::kBF16> {
  static constexpr int64_t kBytes = 64;
  static void load(const uint8_t* p, F32x16& lo, F32x16& hi) {
    U16x16 a, b;
    std::memcpy(&a, p, 32);
    std::memcpy(&b, p + 32, 32);
    U32x16 ua = __builtin_convertvector(a, U32x16) << 16;
    U32x16 ub = __builtin_convertvector(b, U32x16) << 16;
    std::memcpy(&lo, &ua, 64);
    std::memcpy(&hi, &ub, 64);
  }
  static float scalar(const uint8_t* row, int64_t i) { return bf16_to_f32(load_u16(row + 2 * i)); }
};

template <>
struct Block<DType::kQ8_0> {
  static constexpr int64_t kBytes = 34;
  static void load(const uint8_t* p, F32x16& lo, F32x16& hi) {
    const float d = f16_to_f32(load_u16(p));
    lo = i8x16_to_f32(p + 2) * d;
    hi = i8x16_to_f32(p + 18) * d;
  }
};

template <>
struct Block<DType::kQ4_0> {
  static constexpr int64_t kBytes = 18;
  static void load(const uint8_t* p, F32x16& lo, F32x16& hi) {
    const float d = f16_to_f32(load_u16(p));
    U8x16 q;
    std::memcpy(&q, p + 2, 16);
    const I32x16 ql = __builtin_convertvector(q & 0xF, I32x16) - 8;
    const I32x16 qh = __builtin_convertvector(q >> 4, I32x16) - 8;
    lo = __builtin_convertvector(ql, F32x16) * d;
    hi = __builtin_convertvector(qh, F32x16) * d;
  }
};

template <>
struct Block<DType::kQ4_1> {
  static constexpr int64_t kBytes = 20;
  static void load(const uint8_t* p, F32x16& lo, F32x16& hi) {
    const float d = f16_to_f32(load_u16(p));
    const float m = f16_to_f32(load_u16(p + 2));
    U8x16 q;
    std::memcpy(&q, p + 4, 16);
    lo = __builtin_convertvector(__builtin_convertvector(q & 0xF, I32x16), F32x16) * d + m;
    hi = __builtin_convertvector(__builtin_convertvector(q >> 4, I32x16), F32x16) * d + m;
  }
};

// Quantized groups as integer-valued halves plus scale d (and min m for Q4_1): the value
// is d * q + m. The batch-1 matvec uses this form to apply d once per group,
// sum(w x) = d * sum(q x) + m * sum(x), instead of scaling every weight.
template <DType kT>
struct RawBlock;

template <>
struct RawBlock<DType::kQ8_0> {
  static constexpr bool kHasMin = false;
  static void load(const uint8_t* p, F32x16& lo, F32x16& hi, float& d, float& m) {
    d = f16_to_f32(load_u16(p));
    m = 0.0f;
    lo = i8x16_to_f32(p + 2);
    hi = i8x16_to_f32(p + 18);
  }
};

template <>
struct RawBlock<DType::kQ4_0> {
  static constexpr bool kHasMin = false;
  static void load(const uint8_t* p, F32x16& lo, F32x16& hi, float& d, float& m) {
    d = f16_to_f32(load_u16(p));
    m = 0.0f;
    U8x16 q;
    std::memcpy(&q, p + 2, 16);
    lo = __builtin_convertvector(__builtin_convertvector(q & 0xF, I32x16) - 8, F32x16);
    hi = __builtin_convertvector(__builtin_convertvector(q >> 4, I32x16) - 8, F32x16);
  }
};

template <>
struct RawBlock<DType::kQ4_1> {
  static constexpr bool kHasMin = true;
  static void load(const uint8_t* p, F32x16& lo, F32x16& hi, float& d, float& m) {
    d = f16_to_f32(load_u16(p));
    m = f16_to_f32(load_u16(p + 2));
    U8x16 q;
    std::memcpy(&q, p + 4, 16);
    lo = __builtin_convertvector(__builtin_convertvector(q & 0xF, I32x16), F32x16);
    hi = __builtin_convertvector(__builtin_convertvector(q >> 4, I32x16), F32x16);
  }
};

// Calls fn.template operator()<kT>() with the compile-time type for a runtime DType.
template <typename Fn>
decltype(auto) dispatch_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::kF32:
      return fn.template operator()<DType::kF32>();
    case DType::kF16:
      return fn.template operator()<DType::kF16>();
    case DType::kBF16:
      return fn.template operator()<DType::kBF16>();
    case DType::kQ8_0:
      return fn.template operator()<DType::kQ8_0>();
    case DType::kQ4_0:
      return fn.template operator()<DType::kQ4_0>();
    case DType::kQ4_1:
      return fn.template operator()<DType::kQ4_1>();
    // K-quant super-blocks (256 values) have no 32-value Block<>: callers decode whole rows
    // with the host dequantizer (see matmul.cpp).
    case DType::kQ4_K:
      return fn.template operator()<DType::kQ4_K>();
    case DType::kQ5_K:
      return fn.template operator()<DType::kQ5_K>();
    case DType::kQ6_K:
      return fn.template operator()<DType::kQ6_K>();
  }
  return fn.template operator()<DType::kF32>();
}

// Decodes values [0, cols) of one row of type t into out (cols: whole groups for quantized
// types; any count for float types).
void dequantize_row(DType t, const void* row, int64_t cols, float* out);

}  // namespace tessera::cpu

#pragma GCC diagnostic pop
