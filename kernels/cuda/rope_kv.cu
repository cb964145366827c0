// RoPE on q and k, fused with storing k and v into the paged cache.
#include <cuda_fp8.h>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch.cuh"

namespace tessera::cuda {
namespace {

// Element pair i of a head: adjacent (2i, 2i+1) or NeoX halves (i, i + rotary/2); pairs
// past rotary_dim / 2 cover the unrotated tail two elements at a time.
__device__ __forceinline__ void pair_index(int i, int rotary, bool neox, int* a, int* b) {
  if (i < rotary / 2) {
    *a = neox ? i : 2 * i;
    *b = neox ? i + rotary / 2 : 2 * i + 1;
  } else {
    *a = rotary + 2 * (i - rotary / 2);
    *b = *a + 1;
  }
}

// One warp per (kv head, K or V) row of token t: amax, scale, then the 8-bit codes.
template <int kQ>
__device__ __forceinline__ void store_rows_8bit(const RopeStoreArgs& a, int t, int slot) {
  const int lane = threadIdx.x & 31, warps = blockDim.x >> 5, d = a.head_dim;
  for (int job = threadIdx.x >> 5; job < 2 * a.num_kv_heads; job += warps) {
    const bool is_v = job >= a.num_kv_heads;
    const int head = job % a.num_kv_heads;
    const __nv_bfloat16* src = (is_v ? a.v : a.k) + (size_t(t) * a.num_kv_heads + head) * d;
    float amax = 0.f;
    for (int i = lane; i < d; i += 32) amax = fmaxf(amax, fabsf(__bfloat162float(src[i])));
    amax = warp_max(amax);
    const float scale = amax > 0.f ? amax / (kQ == 1 ? 448.f : 127.f) : 1.f;
    const float inv = 1.f / scale;
    const size_t row = size_t(slot) * a.num_kv_heads + head;
    uint8_t* dst = static_cast<uint8_t*>(is_v ? a.v_pool : a.k_pool) + row * d;
    for (int i = lane; i < d; i += 32) {
      const float x = __bfloat162float(src[i]) * inv;
      if constexpr (kQ == 1) {
        dst[i] = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
      } else {
        dst[i] = static_cast<uint8_t>(static_cast<int8_t>(fminf(fmaxf(rintf(x), -127.f), 127.f)));
      }
    }
    if (lane == 0) (is_v ? a.v_scales : a.k_scales)[row] = scale;
  }
}

// kQ 0: the cache holds TKV values, stored as they are produced; kQ 1 / 2: an 8-bit cache,
// stored by store_rows_8bit once the whole token's k is rotated.
template <typename TKV, int kQ = 0>
__global__ void rope_store_kernel(RopeStoreArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  const int t = blockIdx.x;
  const float pos = static_cast<float>(a.positions[t]);
  const int half = a.head_dim / 2;
  const int slot = a.slot_mapping[t];
  TKV* kp = static_cast<TKV*>(a.k_pool);
  TKV* vp = static_cast<TKV*>(a.v_pool);
  const int q_pairs = a.num_heads * half, k_pairs = a.num_kv_heads * half;
  for (int idx = threadIdx.x; idx < q_pairs + k_pairs; idx += blockDim.x) {
    const bool is_q = idx < q_pairs;
    const int j = is_q ? idx : idx - q_pairs;
    const int head = j / half, i = j % half;
    int ea = 0, eb = 0;
    pair_index(i, a.rotary_dim, a.neox, &ea, &eb);
    __nv_bfloat16* base = is_q ? a.q + (size_t(t) * a.num_heads + head) * a.head_dim
                               : a.k + (size_t(t) * a.num_kv_heads + head) * a.head_dim;
    float x0 = __bfloat162float(base[ea]), x1 = __bfloat162float(base[eb]);
    if (i < a.rotary_dim / 2) {
      float s, c;
      sincosf(pos * a.inv_freq[i], &s, &c);
      const float r0 = x0 * c - x1 * s, r1 = x0 * s + x1 * c;
      x0 = r0, x1 = r1;
      base[ea] = __float2bfloat16(x0);
      base[eb] = __float2bfloat16(x1);
    }
    if (kQ == 0 && !is_q && slot >= 0) {
      // Store the bf16-rounded value: the cache holds exactly what k now holds.
      TKV* dst = kp + (size_t(slot) * a.num_kv_heads + head) * a.head_dim;
      dst[ea] = from_float<TKV>(__bfloat162float(base[ea]));
      dst[eb] = from_float<TKV>(__bfloat162float(base[eb]));
    }
  }
  if (slot < 0) return;
  if constexpr (kQ != 0) {
    __syncthreads();  // this block's rotated k (global memory) is visible to all its threads
    store_rows_8bit<kQ>(a, t, slot);
    return;
  }
  const int v_elems = a.num_kv_heads * a.head_dim;
  const __nv_bfloat16* v = a.v + size_t(t) * v_elems;
  TKV* dst = vp + size_t(slot) * v_elems;
  for (int i = threadIdx.x; i < v_elems; i += blockDim.x) {
    dst[i] = from_float<TKV>(__bfloat162float(v[i]));
  }
}

}  // namespace

cudaError_t launch_rope_store_kv(const RopeStoreArgs& a, cudaStream_t stream) {
  if (a.head_dim % 2 != 0 || a.rotary_dim % 2 != 0 || a.rotary_dim > a.head_dim) {
    return cudaErrorInvalidValue;
  }
  if (a.num_tokens == 0) return cudaSuccess;
  const int threads = 256;
  if (a.kv_quant != 0) {
    if (a.kv_dtype != DType::kBF16 || !a.k_scales || !a.v_scales) return cudaErrorInvalidValue;
    return a.kv_quant == 1 ? launch_kernel(rope_store_kernel<__nv_bfloat16, 1>, dim3(a.num_tokens),
                                           dim3(threads), 0, stream, a)
                           : launch_kernel(rope_store_kernel<__nv_bfloat16, 2>, dim3(a.num_tokens),
                                           dim3(threads), 0, stream, a);
  }
  switch (a.kv_dtype) {
    case DType::kBF16:
      return launch_kernel(rope_store_kernel<__nv_bfloat16>, dim3(a.num_tokens), dim3(threads), 0,
                           stream, a);
    case DType::kF16:
      return launch_kernel(rope_store_kernel<__half>, dim3(a.num_tokens), dim3(threads), 0, stream,
                           a);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace tessera::cuda
