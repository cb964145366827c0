#pragma once
// RoPE and paged attention on the CPU.
//
// KV pool of one layer (K and V alike), f32:
//   [num_blocks, block_size, num_kv_heads, head_dim]
//   token at position p of a sequence lives in block block_table[p / block_size],
//   row p % block_size.
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/ops.h"

namespace tessera::cpu {

class ThreadPool;

// Per-pair inverse frequencies (rotary_dim / 2 values), Llama-3 scaling applied if enabled.
std::vector<double> rope_inv_freq(const RopeConfig& rope, int head_dim);

// cos/sin per (token, pair): [num_tokens, rotary_dim / 2] each.
struct RopeTable {
  int pairs = 0;
  std::vector<float> cos;
  std::vector<float> sin;
};
void build_rope_table(const RopeConfig& rope, int head_dim, std::span<const int32_t> positions,
                      RopeTable& table);

// x: [num_tokens, num_heads, head_dim], rotated in place. neox: pairs (i, i + rot/2);
// otherwise adjacent pairs (2i, 2i + 1). Dims past rotary_dim are left as they are.
void apply_rope(const RopeTable& table, bool neox, float* x, int64_t num_tokens, int num_heads,
                int head_dim);

// One layer's pools in the cache's dtype: f32, or 8-bit (e4m3 / int8) with one f32 scale per
// (slot, kv head) row in k_scale / v_scale (kernels/kv_cache.h).
struct PagedKv {
  KvDtype dtype = KvDtype::kF32;
  void* k = nullptr;  // this layer's pools
  void* v = nullptr;
  float* k_scale = nullptr;
  float* v_scale = nullptr;
  int block_size = 16;
  int num_kv_heads = 0;
  int head_dim = 0;
};

// Reads n consecutive (slot, head) rows of an 8-bit or f32 pool back to f32.
void load_kv_rows(KvDtype dtype, const void* pool, const float* scales, int64_t first_row,
                  int64_t n, int head_dim, float* out);

// Writes k/v rows [num_tokens, num_kv_heads, head_dim] at slot_mapping (slot < 0: skipped);
// 8-bit caches quantize each (token, head) row with its own scale.
void store_kv(const PagedKv& kv, const float* k, const float* v, std::span<const int32_t> slots);

// q: [T, num_heads, head_dim] -> out: [T, num_heads, head_dim]. Query row r of sequence s
// attends to its sequence's positions max(0, pos - window + 1) .. min(pos, context_len - 1).
void paged_attention(ThreadPool& pool, const PagedKv& kv, const StepLayout& layout,
                     const AttentionParams& attn, const float* q, float* out);

}  // namespace tessera::cpu
