// Split-K reduction for paged attention, and the dtype dispatch of the attention launch.
#include <cuda_bf16.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/launch.cuh"

namespace tessera::cuda {

cudaError_t launch_paged_attention_bf16(const PagedAttentionArgs& a, AttentionMode mode,
                                        cudaStream_t stream);
cudaError_t launch_paged_attention_f16(const PagedAttentionArgs& a, AttentionMode mode,
                                       cudaStream_t stream);
cudaError_t launch_paged_attention_q8(const PagedAttentionArgs& a, AttentionMode mode,
                                      cudaStream_t stream);

cudaError_t launch_paged_attention(const PagedAttentionArgs& args, AttentionMode mode,
                                   DType kv_dtype, cudaStream_t stream) {
  if (args.num_kv_heads <= 0 || args.num_heads % args.num_kv_heads != 0) {
    return cudaErrorInvalidValue;
  }
  if (args.kv_quant != 0) {
    if (kv_dtype != DType::kBF16 || !args.k_scales || !args.v_scales) return cudaErrorInvalidValue;
    return launch_paged_attention_q8(args, mode, stream);
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

constexpr int kMergeThreads = 256;
constexpr int kMergeSub = 8;     // threads sharing one output chunk, splitting the splits
constexpr int kMergeSlice = 32;  // head_dim columns per CTA (grid.z covers head_dim)
constexpr int kMergeMaxSplits = 64;
constexpr int kMergeMaxRows = 64;

// Grid (merge, KV head, head_dim / 32). Split weights are computed once per row into shared
// memory; then groups of 8 threads each reduce one 4-column chunk over the splits with
// independent loads in flight (a serial loop over splits is latency-bound).
__global__ void __launch_bounds__(kMergeThreads)
    attention_merge_kernel(const PagedAttentionArgs a, const AttentionMerge* merges,
                           int rows_per_item) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ float s_w[kMergeMaxRows][kMergeMaxSplits];
  const AttentionMerge mg = merges[blockIdx.x];
  const int kvh = blockIdx.y;
  const int group = a.num_heads / a.num_kv_heads;
  const int q0 = a.query_start[mg.seq];
  const int num_rows = (a.query_start[mg.seq + 1] - q0) * group;
  const int rows = min(rows_per_item, num_rows - mg.row_start);  // valid rows of this tile
  const int ns = mg.num_splits;
  auto lse_at = [&](int s, int r) {
    return a.partial_lse[(size_t(mg.first_partial + s) * a.num_kv_heads + kvh) * rows_per_item + r];
  };
  for (int i = threadIdx.x; i < rows * ns; i += blockDim.x)
    s_w[i / ns][i % ns] = lse_at(i % ns, i / ns);
  __syncthreads();
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    float m = -INFINITY;
    for (int s = 0; s < ns; ++s) m = fmaxf(m, s_w[r][s]);
    const float ref = m == -INFINITY ? 0.f : m;
    float total = 0.f;
    for (int s = 0; s < ns; ++s) total += exp2f(s_w[r][s] - ref);
    const float inv = total > 0.f ? 1.f / total : 0.f;
    for (int s = 0; s < ns; ++s) s_w[r][s] = exp2f(s_w[r][s] - ref) * inv;
  }
  __syncthreads();
  const int sub = threadIdx.x % kMergeSub;
  constexpr int kChunks = kMergeSlice / 4;  // float4 chunks per row in this CTA's slice
  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(a.out);
  // rows * kChunks is a multiple of 8, so whole warps iterate together (for the shuffles).
  for (int task = threadIdx.x / kMergeSub; task < rows * kChunks;
       task += kMergeThreads / kMergeSub) {
    const int r = task / kChunks;
    const int d = blockIdx.z * kMergeSlice + (task % kChunks) * 4;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    if (d < a.head_dim) {
      for (int s = sub; s < ns; s += kMergeSub) {
        const float w = s_w[r][s];
        if (w == 0.f) continue;  // empty split
        const size_t base =
            (size_t(mg.first_partial + s) * a.num_kv_heads + kvh) * rows_per_item + r;
        const float4 x = *reinterpret_cast<const float4*>(a.partial_o + base * a.head_dim + d);
        acc.x += w * x.x, acc.y += w * x.y, acc.z += w * x.z, acc.w += w * x.w;
      }
    }
#pragma unroll
    for (int o = 1; o < kMergeSub; o <<= 1) {
      acc.x += __shfl_xor_sync(0xffffffffu, acc.x, o);
      acc.y += __shfl_xor_sync(0xffffffffu, acc.y, o);
      acc.z += __shfl_xor_sync(0xffffffffu, acc.z, o);
      acc.w += __shfl_xor_sync(0xffffffffu, acc.w, o);
    }
    if (sub == 0 && d < a.head_dim) {
      const int row = mg.row_start + r;
      const int head = kvh * group + row % group;
      __nv_bfloat16* dst = out + (size_t(q0 + row / group) * a.num_heads + head) * a.head_dim + d;
      __nv_bfloat162 lo = __floats2bfloat162_rn(acc.x, acc.y),
                     hi = __floats2bfloat162_rn(acc.z, acc.w);
      reinterpret_cast<__nv_bfloat162*>(dst)[0] = lo;
      reinterpret_cast<__nv_bfloat162*>(dst)[1] = hi;
    }
  }
}

}  // namespace

cudaError_t launch_attention_merge(const PagedAttentionArgs& args, AttentionMode mode,
                                   const AttentionMerge* merges, int num_merges,
                                   cudaStream_t stream) {
  if (num_merges == 0) return cudaSuccess;
  if (args.head_dim % 4 != 0 || attention_rows(mode) > kMergeMaxRows) return cudaErrorInvalidValue;
  dim3 grid(num_merges, args.num_kv_heads, (args.head_dim + kMergeSlice - 1) / kMergeSlice);
  return launch_kernel(attention_merge_kernel, grid, dim3(kMergeThreads), 0, stream, args, merges,
                       attention_rows(mode));
}

}  // namespace tessera::cuda
