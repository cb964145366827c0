#pragma once
// A plain single-sequence generation loop over LlamaModel: chunked prefill, then one decode
// step per token, sampled by the engine's sampler (greedy / temperature / top-k / top-p,
// seeded).
// Used by `tessera generate` and by the forward-pass tests; the serving path uses Engine.
// Not thread-safe: one caller at a time.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/request.h"

namespace tessera {

class LlamaModel;

// One sequence's KV blocks and position: feeds tokens, returns the last position's logits.
class SequenceRunner {
 public:
  // Allocates a KV cache for max_len tokens in the model's backend.
  SequenceRunner(LlamaModel& model, int max_len, int block_size = 16, int prefill_chunk = 512);
  // Appends tokens (in chunks of prefill_chunk) and returns the logits after the last one.
  std::vector<float> feed(std::span<const int32_t> tokens);
  int length() const { return length_; }
  int max_len() const { return max_len_; }

 private:
  LlamaModel& model_;
  int max_len_;
  int block_size_;
  int prefill_chunk_;
  int length_ = 0;
  std::vector<int32_t> blocks_;
};

struct GenerateOptions {
  int max_tokens = 256;
  // Greedy unless set; its max_tokens, stop strings and n are not used here.
  SamplingParams sampling = greedy();

  static SamplingParams greedy() {
    SamplingParams p;
    p.temperature = 0.0f;
    return p;
  }
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (including a final stop id)
  bool stopped = false;         // ended on a stop id (else max_tokens or the callback)
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // from the first generated token to the last
};

// on_token(id) sees every generated id as soon as it is sampled; returning false stops.
GenerateResult simple_generate(LlamaModel& model, std::span<const int32_t> prompt,
                               const GenerateOptions& options,
                               const std::function<bool(int32_t)>& on_token = {});

}  // namespace tessera
