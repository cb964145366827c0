#pragma once
// How many KV blocks fit, and the arithmetic behind it, for the start-up log line and the
// fail-fast message:
//   KV cache: N blocks x 16 tokens = T tokens (B bytes/token = layers x 2 x kv_heads x
//   head_dim x elem bytes; budget X bytes)
#include <cstdint>
#include <string>

namespace tessera {

struct KvSizingInput {
  int64_t budget_bytes = 0;
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int elem_bytes = 0;
  int64_t bytes_per_token = 0;  // from the model; 0: layers x 2 x kv_heads x head_dim x elem
  int block_size = 16;
  int requested_max_model_len = 0;  // 0: the model's context, capped to what fits
  int model_context_len = 0;
};

struct KvSizing {
  int num_blocks = 0;       // including the reserved block 0
  int capacity_tokens = 0;  // (num_blocks - 1) x block_size
  int64_t bytes_per_token = 0;
  int max_model_len = 0;  // effective
  bool capped = false;    // max_model_len lowered to the capacity (not user-set)
  std::string summary;    // the log line
};

// Throws Error(kResourceExhausted) with the arithmetic when not one block fits, or when a
// user-set max_model_len sequence cannot fit; Error(kInvalidArgument) when max_model_len
// exceeds the model's context.
KvSizing size_kv_cache(const KvSizingInput& in);

}  // namespace tessera
