#pragma once
// Host-side split planning for paged attention (pure function, no CUDA calls). Decode items
// get a split count that depends only on (number of decode sequences, KV heads, SMs), so a
// decode step at a padded batch size always has the same launch shape and can be replayed
// from a CUDA graph while contexts grow; empty splits are legal and cost one tiny CTA.
#include <vector>

#include "kernels/cuda/attention.h"
#include "kernels/ops.h"

namespace tessera::cuda {

struct AttentionModePlan {
  std::vector<AttentionWorkItem> items;
  std::vector<AttentionMerge> merges;
  int num_partials = 0;
};

struct AttentionPlan {
  AttentionModePlan decode;
  AttentionModePlan prefill;
};

struct AttentionPlanOptions {
  int group_size = 1;  // query heads per KV head
  int num_kv_heads = 1;
  int num_sms = 132;
  int ctas_per_sm = 2;  // resident decode CTAs per SM (3-stage pipeline): one full wave
  int sliding_window = 0;
  // > 0: deterministic (batch-invariant) plan. Every sequence takes the prefill kernel, its
  // cached range is cut at multiples of this many positions (a multiple of kKvTile) counted
  // from 0, and every row tile goes through split partials and the merge, so a row's
  // reduction order depends on its own position alone, not on the batch, the chunking of
  // its prompt or the other rows of its tile.
  int fixed_kv_chunk = 0;
};

// The fixed chunk for deterministic plans: at least kMinDeterministicChunk positions and
// few enough chunks for the merge (kMaxDeterministicSplits) at max_seq_len.
constexpr int kMinDeterministicChunk = 1024;
constexpr int kMaxDeterministicSplits = 64;
int deterministic_kv_chunk(int max_seq_len);

AttentionPlan plan_attention(const StepLayout& layout, const AttentionPlanOptions& options);

// Split count for `num_decode_seqs` decode sequences (exposed for tests).
int decode_split_count(int num_decode_seqs, const AttentionPlanOptions& options);

}  // namespace tessera::cuda
