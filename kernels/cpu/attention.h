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

struct PagedKv {
  float* k = nullptr;  // this layer's pools
  float* v = nullptr;
  int block_size = 16;
  int num_kv_heads = 0;
  int head_dim = 0;
};

// Writes k/v rows [num_tokens, num_kv_heads, head_dim] at slot_mapping (slot < 0: skipped).
void store_kv(const PagedKv& kv, const float* k, const float* v, std::span<const int32_t> slots);

// q: [T, num_heads, head_dim] -> out: [T, num_heads, head_dim]. Query row r of sequence s
// attends to its sequence's positions max(0, pos - window + 1) .. min(pos, context_len - 1).
void paged_attention(ThreadPool& pool, const PagedKv& kv, const StepLayout& layout,
                     const AttentionParams& attn, const float* q, float* out);

}  // namespace tessera::cpu
