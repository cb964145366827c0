#pragma once
// Tensor-parallel sharding arithmetic: which attention heads, MLP rows and vocabulary rows a
// rank owns, and the slices of a weight that rank loads. Megatron-style: Q/K/V and gate/up
// are column-parallel (each rank keeps some output rows), attention-output and down are
// row-parallel (each rank keeps the matching input columns, partial sums all-reduced), the
// LM head is vocabulary-parallel. When there are fewer KV heads than ranks, each rank keeps
// the one KV head its query heads read (KV heads replicated).
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/ops.h"
#include "model/model_config.h"

namespace tessera {

struct TpShard {
  int rank = 0;
  int world = 1;
  int head_begin = 0;  // first global query head of this rank
  int num_heads = 0;   // query heads on this rank
  int kv_head_begin = 0;
  int num_kv_heads = 0;                    // KV heads on this rank (1 when replicated)
  int64_t ffn_begin = 0, ffn_end = 0;      // intermediate rows [begin, end)
  int64_t vocab_begin = 0, vocab_end = 0;  // LM-head rows [begin, end)
};

// Throws Error(kInvalidArgument) with one line naming what does not divide.
// ffn_align: the MLP split is a multiple of this many columns (quantization blocks/groups).
TpShard make_tp_shard(const ModelConfig& c, int rank, int world, int64_t ffn_align = 1);

// The model as one rank sees it: heads and intermediate size of its shard (vocab unchanged).
ModelConfig shard_config(const ModelConfig& c, const TpShard& s);

// A slice of a weight: a view into the source when rows are sliced (no copy), a compact copy
// when columns are (held by `storage`).
struct TensorSlice {
  HostTensor view;
  std::shared_ptr<void> storage;
};
// Rows [begin, end) of t (output features).
TensorSlice slice_rows(const HostTensor& t, int64_t begin, int64_t end);
// Columns [begin, end) of t (input features); begin and end must fall on block and group
// boundaries of t's storage.
TensorSlice slice_cols(const HostTensor& t, int64_t begin, int64_t end);

}  // namespace tessera
