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
};

AttentionPlan plan_attention(const StepLayout& layout, const AttentionPlanOptions& options);

// Split count for `num_decode_seqs` decode sequences (exposed for tests).
int decode_split_count(int num_decode_seqs, const AttentionPlanOptions& options);

}  // namespace tessera::cuda
