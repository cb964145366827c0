#pragma once
// Host launchers of the small CUDA kernels (one concern per .cu file). Each takes device
// pointers, shapes and a stream and returns the launch status. Activations are bf16; the
// residual stream (embedding's output, add_rms_norm's residual) is f32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace tessera::cuda {

// table: [vocab, dim] bf16; tokens: [num_tokens] -> out: [num_tokens, dim] f32. Ids outside
// [0, vocab) give zero rows (the host validates ids before launching). dim % 8 == 0.
cudaError_t launch_embedding(const __nv_bfloat16* table, int64_t vocab, int dim,
                             const int32_t* tokens, int num_tokens, float* out,
                             cudaStream_t stream);

// residual: [rows, dim] f32 (+= x in f32 when x != nullptr); x: [rows, dim] bf16;
// out (bf16) = residual * rsqrt(mean(residual^2) + eps) * gamma, gamma f32 [dim]. dim % 8 == 0.
cudaError_t launch_add_rms_norm(float* residual, const __nv_bfloat16* x, const float* gamma,
                                int rows, int dim, float eps, __nv_bfloat16* out,
                                cudaStream_t stream);

// out = silu(gate) * up over `count` elements.
cudaError_t launch_silu_mul(const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t count,
                            __nv_bfloat16* out, cudaStream_t stream);

// out[i, :] = x[rows[i], :], x: [*, dim] -> out: [num_rows, dim].
cudaError_t launch_gather_rows(const __nv_bfloat16* x, int dim, const int32_t* rows, int num_rows,
                               __nv_bfloat16* out, cudaStream_t stream);

// tokens[pairs[i].x] = sampled[pairs[i].y]: a pipelined step's inputs from the previous
// step's sampler output, without a trip to the host.
cudaError_t launch_feed_tokens(int32_t* tokens, const int2* pairs, int num_pairs,
                               const int32_t* sampled, cudaStream_t stream);

// dst[updates[i].x] = updates[i].y (block table entries kept on the device).
cudaError_t launch_scatter_i32(int32_t* dst, const int2* updates, int num_updates,
                               cudaStream_t stream);

struct RopeStoreArgs {
  __nv_bfloat16* q = nullptr;        // [num_tokens, num_heads, head_dim], rotated in place
  __nv_bfloat16* k = nullptr;        // [num_tokens, num_kv_heads, head_dim], rotated in place
  const __nv_bfloat16* v = nullptr;  // [num_tokens, num_kv_heads, head_dim]
  const int32_t* positions = nullptr;
  const int32_t* slot_mapping = nullptr;  // < 0: padding token, not stored
  const float* inv_freq = nullptr;        // [rotary_dim / 2], scaling already applied
  void* k_pool = nullptr;                 // [num_blocks * block_size, num_kv_heads, head_dim]
  void* v_pool = nullptr;
  DType kv_dtype = DType::kBF16;  // kBF16 or kF16; kBF16 with kv_quant for an 8-bit cache
  // 8-bit caches (kernels/kv_cache.h): 1 = e4m3, 2 = int8; each (slot, kv head) row of k and v
  // is stored as row / scale with scale = amax / 448 (or / 127) written to k_scales / v_scales.
  int kv_quant = 0;
  float* k_scales = nullptr;  // [num_blocks * block_size, num_kv_heads]
  float* v_scales = nullptr;
  int num_tokens = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int rotary_dim = 0;
  bool neox = false;
};
cudaError_t launch_rope_store_kv(const RopeStoreArgs& args, cudaStream_t stream);

// Copies whole KV blocks for every layer, K and V. pools: one allocation laid out as
// [num_layers][2][num_blocks][block_bytes]; pairs: [num_pairs] (src, dst) block ids.
cudaError_t launch_copy_kv_blocks(void* pools, int num_layers, int num_blocks, size_t block_bytes,
                                  const int2* pairs, int num_pairs, cudaStream_t stream);

}  // namespace tessera::cuda
