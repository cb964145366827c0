// Split-K reduction for paged attention, and the dtype dispatch of the attention launch.
#include <cuda_bf16.h>

#include "kernels/cuda/attention.h"

namespace tessera::cuda {

cudaError_t launch_paged_attention_bf16(const PagedAttentionArgs& a, AttentionMode mode,
                                        cudaStream_t stream);
cudaError_t launch_paged_attention_f16(const PagedAttentionArgs& a, AttentionMode mode,
                                       cudaStream_t stream);

cudaError_t launch_paged_attention(const PagedAttentionArgs& args, AttentionMode mode,
                                   DType kv_dtype, cudaStream_t stream) {
  if (args.num_kv_heads <= 0 || args.num_heads % args.num_kv_heads != 0) {
    return cudaErrorInvalidValue;
  }
  switch (kv_dtype) {
    case DType::kBF16:
      return launch_paged_attention_bf16(args, mode, stream);
    case DType::kF16:
      return launch_paged_attention_f16(args, mode, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

namespace {

// One CTA per (merge, KV head); a thread owns one (row, 8-wide column chunk) at a time.
__global__ void attention_merge_kernel(const PagedAttentionArgs a, const AttentionMerge* merges,
                                       int rows_per_item) {
  const AttentionMerge mg = merges[blockIdx.x];
  const int kvh = blockIdx.y;
  const int d_chunks = a.head_dim / 8;
  const int group = a.num_heads / a.num_kv_heads;
  const int q0 = a.query_start[mg.seq];
  const int num_rows = (a.query_start[mg.seq + 1] - q0) * group;
  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(a.out);
  for (int c = threadIdx.x; c < rows_per_item * d_chunks; c += blockDim.x) {
    const int r = c / d_chunks, d = (c % d_chunks) * 8;
    const int row = mg.row_start + r;
    if (row >= num_rows) continue;
    float m = -INFINITY;
    for (int s = 0; s < mg.num_splits; ++s) {
      const size_t base = (size_t(mg.first_partial + s) * a.num_kv_heads + kvh) * rows_per_item + r;
      m = fmaxf(m, a.partial_lse[base]);
    }
    const float ref = m == -INFINITY ? 0.f : m;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, total = 0.f;
    for (int s = 0; s < mg.num_splits; ++s) {
      const size_t base = (size_t(mg.first_partial + s) * a.num_kv_heads + kvh) * rows_per_item + r;
      const float w = exp2f(a.partial_lse[base] - ref);
      if (w == 0.f) continue;  // empty split: its partial output is zeros anyway
      total += w;
      const float4* src = reinterpret_cast<const float4*>(a.partial_o + base * a.head_dim + d);
      const float4 x = src[0], y = src[1];
      acc[0] += w * x.x, acc[1] += w * x.y, acc[2] += w * x.z, acc[3] += w * x.w;
      acc[4] += w * y.x, acc[5] += w * y.y, acc[6] += w * y.z, acc[7] += w * y.w;
    }
    const float inv = total > 0.f ? 1.f / total : 0.f;
    const int head = kvh * group + row % group;
    __nv_bfloat16* dst = out + (size_t(q0 + row / group) * a.num_heads + head) * a.head_dim + d;
    alignas(16) __nv_bfloat16 v[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = __float2bfloat16(acc[i] * inv);
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
  }
}

}  // namespace

cudaError_t launch_attention_merge(const PagedAttentionArgs& args, AttentionMode mode,
                                   const AttentionMerge* merges, int num_merges,
                                   cudaStream_t stream) {
  if (num_merges == 0) return cudaSuccess;
  if (args.head_dim % 8 != 0) return cudaErrorInvalidValue;
  dim3 grid(num_merges, args.num_kv_heads);
  attention_merge_kernel<<<grid, 128, 0, stream>>>(args, merges, attention_rows(mode));
  return cudaGetLastError();
}

}  // namespace tessera::cuda
