#pragma once
// Device decoding of GGUF weight blocks (Q8_0, Q4_0, Q4_1 and the K-quants Q4_K, Q5_K, Q6_K)
// for the kernels that keep GGUF weights as blocks on the GPU (gguf.cu). The unit of work is
// 32 consecutive values of a row: one block of the 32-value types, one eighth of a K-quant
// super-block. Same arithmetic, in the same order, as the host reference (kernels/dequant.cpp,
// kernels/dequant_kquant.cpp), so a decoded value is bit-identical to the CPU backend's.
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace tessera::cuda::gguf {

__device__ __forceinline__ float half_at(const uint8_t* p) {  // p: 2-byte aligned
  return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(p))));
}

// Q4_K / Q5_K: the 6-bit (scale, min) pair j of the 12 packed bytes q.
__device__ __forceinline__ void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = __ldg(q + j) & 63;
    m = __ldg(q + j + 4) & 63;
  } else {
    sc = (__ldg(q + j + 4) & 0xF) | ((__ldg(q + j - 4) >> 6) << 4);
    m = (__ldg(q + j + 4) >> 4) | ((__ldg(q + j) >> 6) << 4);
  }
}

// Bytes of a row of k values (k a multiple of the type's block).
template <DType T>
__host__ __device__ constexpr size_t dtype_row_bytes_device(int k) {
  if constexpr (T == DType::kQ8_0) return size_t(k) / 32 * 34;
  if constexpr (T == DType::kQ4_0) return size_t(k) / 32 * 18;
  if constexpr (T == DType::kQ4_1) return size_t(k) / 32 * 20;
  if constexpr (T == DType::kQ4_K) return size_t(k) / 256 * 144;
  if constexpr (T == DType::kQ5_K) return size_t(k) / 256 * 176;
  return size_t(k) / 256 * 210;  // Q6_K
}

// v[0..32) = values [32u, 32u + 32) of the row whose blocks start at `row`.
template <DType T>
__device__ __forceinline__ void decode_unit(const uint8_t* row, int u, float (&v)[32]) {
  if constexpr (T == DType::kQ8_0) {
    const uint8_t* b = row + size_t(u) * 34;
    const float d = half_at(b);
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = float(int8_t(__ldg(b + 2 + j))) * d;
  } else if constexpr (T == DType::kQ4_0) {
    const uint8_t* b = row + size_t(u) * 18;
    const float d = half_at(b);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int q = __ldg(b + 2 + j);
      v[j] = float((q & 0xF) - 8) * d;
      v[j + 16] = float((q >> 4) - 8) * d;
    }
  } else if constexpr (T == DType::kQ4_1) {
    const uint8_t* b = row + size_t(u) * 20;
    const float d = half_at(b), m = half_at(b + 2);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int q = __ldg(b + 4 + j);
      v[j] = __fadd_rn(__fmul_rn(float(q & 0xF), d), m);  // no fma: the host rounds twice
      v[j + 16] = __fadd_rn(__fmul_rn(float(q >> 4), d), m);
    }
  } else if constexpr (T == DType::kQ4_K || T == DType::kQ5_K) {
    // Super-block u / 8; eighth w: 64-value chunk w / 2, low (even w) or high nibbles, and for
    // Q5_K bit w of qh[l] as the fifth bit.
    constexpr bool kFive = T == DType::kQ5_K;
    const int w = u & 7;
    const uint8_t* b = row + size_t(u >> 3) * (kFive ? 176 : 144);
    const float d = half_at(b), dmin = half_at(b + 2);
    int sc, mn;
    scale_min_k4(w, b + 4, sc, mn);
    const float d1 = d * float(sc), m1 = dmin * float(mn);
    const uint8_t* ql = b + (kFive ? 48 : 16) + 32 * (w >> 1);
    const uint8_t* qh = b + 16;
    const int shift = 4 * (w & 1);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      int q = (__ldg(ql + l) >> shift) & 0xF;
      if constexpr (kFive) q += (__ldg(qh + l) >> w) & 1 ? 16 : 0;
      v[l] = __fsub_rn(__fmul_rn(d1, float(q)), m1);
    }
  } else {
    static_assert(T == DType::kQ6_K, "a GGUF block type");
    // Super-block u / 8; eighth w: 128-value half w / 4, quarter w % 4 of that half.
    const int w = u & 7, half = w >> 2, qq = w & 3;
    const uint8_t* b = row + size_t(u >> 3) * 210;
    const uint8_t* ql = b + 64 * half + 32 * (qq & 1);
    const uint8_t* qh = b + 128 + 32 * half;
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * half);
    const float d = half_at(b + 208);
    const int lo_shift = 4 * (qq >> 1), hi_shift = 2 * qq;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int q = ((__ldg(ql + l) >> lo_shift) & 0xF) | (((__ldg(qh + l) >> hi_shift) & 3) << 4);
      v[l] = d * float(__ldg(sc + l / 16 + 2 * qq)) * float(q - 32);
    }
  }
}

// Calls f.template operator()<T>() for the GGUF block type t; false for any other type.
template <class F>
bool dispatch(DType t, F&& f) {
  switch (t) {
    case DType::kQ8_0:
      f.template operator()<DType::kQ8_0>();
      return true;
    case DType::kQ4_0:
      f.template operator()<DType::kQ4_0>();
      return true;
    case DType::kQ4_1:
      f.template operator()<DType::kQ4_1>();
      return true;
    case DType::kQ4_K:
      f.template operator()<DType::kQ4_K>();
      return true;
    case DType::kQ5_K:
      f.template operator()<DType::kQ5_K>();
      return true;
    case DType::kQ6_K:
      f.template operator()<DType::kQ6_K>();
      return true;
    default:
      return false;
  }
}

}  // namespace tessera::cuda::gguf
