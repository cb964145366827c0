#pragma once
// Paged attention over the KV cache, tensor cores (mma.sync m16n8k16), GQA-packed rows.
//
// A CTA computes one work item for one KV head: a tile of "query rows", where a row is one
// (query token, query head of this KV head's group) pair, against a range of cached tokens.
// Packing the group's heads into rows means each K/V tile is loaded once for the whole group.
//   decode mode:  16 rows per CTA (e.g. one token x 8 heads); the 4 warps split each K/V tile
//                 and merge their softmax states at the end (FlashDecoding within a CTA);
//   prefill mode: 64 rows per CTA, one 16-row slice per warp (FlashAttention-2).
// Work items whose sequence is split over several items (split-K) write f32 partial results
// with their log-sum-exp; attention_merge then reduces them. Items and merges are computed on
// the host (attention_plan.h) and uploaded in begin_step, so the launch is graph-capturable.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace tessera::cuda {

struct AttentionWorkItem {
  int32_t seq = 0;
  int32_t row_start = 0;  // first packed row (row = token_in_query * group + head_in_group)
  int32_t kv_start = 0;   // cached positions [kv_start, kv_end) this item reads
  int32_t kv_end = 0;
  int32_t partial = -1;  // -1: write the output directly; else the partial slot
};

struct AttentionMerge {
  int32_t seq = 0;
  int32_t row_start = 0;
  int32_t first_partial = 0;  // slots [first_partial, first_partial + num_splits)
  int32_t num_splits = 0;
};

struct PagedAttentionArgs {
  const void* q = nullptr;       // q:   [num_tokens, num_heads, head_dim] bf16
  void* out = nullptr;           // out: [num_tokens, num_heads, head_dim] bf16
  const void* k_pool = nullptr;  // [num_blocks, block_size, num_kv_heads, head_dim]
  const void* v_pool = nullptr;
  const int32_t* query_start = nullptr;        // [num_seqs + 1]
  const int32_t* context_len = nullptr;        // [num_seqs]
  const int32_t* block_table_start = nullptr;  // [num_seqs + 1]
  const int32_t* block_tables = nullptr;
  const AttentionWorkItem* items = nullptr;
  int num_items = 0;
  float* partial_o = nullptr;    // [num_partials, num_kv_heads, rows_per_item, head_dim]
  float* partial_lse = nullptr;  // [num_partials, num_kv_heads, rows_per_item] (log2 units)
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;
  float scale = 1.0f;
  int sliding_window = 0;
  // 8-bit caches (kernels/kv_cache.h): kv_quant 1 = e4m3, 2 = int8, with one f32 scale per
  // (slot, kv head) in k_scales / v_scales; 0 = a 16-bit cache.
  int kv_quant = 0;
  const float* k_scales = nullptr;  // [num_blocks * block_size, num_kv_heads]
  const float* v_scales = nullptr;
};

enum class AttentionMode { kDecode, kPrefill };

constexpr int kDecodeRows = 16;   // query rows per decode work item
constexpr int kPrefillRows = 64;  // query rows per prefill work item
constexpr int kKvTile = 64;       // cached tokens per K/V tile
inline int attention_rows(AttentionMode m) {
  return m == AttentionMode::kDecode ? kDecodeRows : kPrefillRows;
}

// kv_dtype: kBF16 or kF16 (q is bf16 and is converted to fp16 on load for an fp16 cache),
// or kBF16 with args.kv_quant set (an 8-bit cache, decoded to bf16 as tiles are loaded);
// head_dim: 64 or 128. Returns cudaErrorInvalidValue for other combinations.
cudaError_t launch_paged_attention(const PagedAttentionArgs& args, AttentionMode mode,
                                   DType kv_dtype, cudaStream_t stream);

// Reduces split-K partials into out (bf16) for each merge: grid (num_merges, num_kv_heads).
cudaError_t launch_attention_merge(const PagedAttentionArgs& args, AttentionMode mode,
                                   const AttentionMerge* merges, int num_merges,
                                   cudaStream_t stream);

}  // namespace tessera::cuda
