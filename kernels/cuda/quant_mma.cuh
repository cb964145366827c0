#pragma once
// Device pieces shared by the tensor-core kernels over quantized weights (gemv_quant_mma.cu for
// decode batches of 1-8 rows, gemm_int4_mma.cu for 9-64): the exact weight decoders, the order
// the mma's B operand takes x in, and weight streaming.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/quant.h"
#include "kernels/cuda/weight_group.h"

namespace tessera::cuda::quant_mma {

using bf16 = __nv_bfloat16;

constexpr int kTileRows = 16;  // output rows per warp tile (the mma's M)

template <QuantKind K>
constexpr int block_values() {
  return K == QuantKind::kInt4 ? 128 : 64;  // 4 lanes x 16 bytes
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

__device__ __forceinline__ uint32_t bits(__nv_bfloat162 v) {
  return *reinterpret_cast<uint32_t*>(&v);
}
__device__ __forceinline__ __nv_bfloat162 as_bf162(uint32_t v) {
  return *reinterpret_cast<__nv_bfloat162*>(&v);
}

template <QuantKind K>
constexpr int x_vecs() {
  return block_values<K>() / 4 / 8;  // x uint4s per lane and k-block
}

// Eight x values (one uint4: words (x0,x1) (x2,x3) (x4,x5) (x6,x7)) in the order the B operand
// takes them, matching the pairs the weight decoders below produce:
//   int4: (x0,x4) (x1,x5) | (x2,x6) (x3,x7)   -> b0, b1 of the word's first | second mma
//   fp8:  (x0,x2) (x1,x3) | (x4,x6) (x5,x7)   -> b0, b1 of word 2i | word 2i + 1
template <QuantKind K>
__device__ __forceinline__ uint4 to_mma_order(const uint4& v) {
  if constexpr (K == QuantKind::kInt4) {
    return make_uint4(prmt(v.x, v.z, 0x5410), prmt(v.x, v.z, 0x7632), prmt(v.y, v.w, 0x5410),
                      prmt(v.y, v.w, 0x7632));
  } else {
    return make_uint4(prmt(v.x, v.y, 0x5410), prmt(v.x, v.y, 0x7632), prmt(v.z, v.w, 0x5410),
                      prmt(v.z, v.w, 0x7632));
  }
}

// (v & 0x000F000F) | 0x43004300 in one instruction (the compiler splits it in two otherwise):
// nibbles 0 and 4 of v as bf16 128 + q.
__device__ __forceinline__ uint32_t nibbles_as_bf16(uint32_t v) {
  uint32_t r;
  asm("lop3.b32 %0, %1, 0x000F000F, 0x43004300, 0xEA;" : "=r"(r) : "r"(v));
  return r;
}

// Nibble pairs (0,4) (1,5) (2,6) (3,7) of a word as bf16 128 + q; minus 128 + zero point unless
// kRaw (then the caller takes (128 + zero) times the block's x sum off the result).
template <bool kRaw>
__device__ __forceinline__ void int4_pairs(uint32_t v, __nv_bfloat162 zero128, uint32_t (&p)[4]) {
  p[0] = nibbles_as_bf16(v);
  p[1] = nibbles_as_bf16(v >> 4);
  p[2] = nibbles_as_bf16(v >> 8);
  p[3] = nibbles_as_bf16(v >> 12);
  if constexpr (!kRaw) {
#pragma unroll
    for (int i = 0; i < 4; ++i) p[i] = bits(__hsub2(as_bf162(p[i]), zero128));
  }
}

// This lane's 16 bytes of blocks first .. first + U - 1 of one row (zeros from `end` on);
// `stride` is the distance between one block and the next in uint4s.
template <int U>
__device__ __forceinline__ void load_round(uint4 (&r)[U], const uint4* w, int first, int end,
                                           int stride) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int b = first + u;
    r[u] = b < end ? __ldcs(w + size_t(b) * stride) : make_uint4(0u, 0u, 0u, 0u);
  }
}

}  // namespace tessera::cuda::quant_mma
