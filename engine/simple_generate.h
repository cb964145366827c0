#pragma once
// One prompt through the Engine on an already-built LlamaModel: the same scheduler, model
// runner, sampler (host or device) and stop rules as `tessera serve`, so every fix to the
// serving path reaches `tessera generate` and the forward-pass tests too.
// SequenceRunner is the bare forward loop the model tests compare against.
// Not thread-safe: one caller at a time (each call (re)initializes the model's KV cache).
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

// on_token(id) sees every generated id as soon as the engine streams it; returning false
// cancels the request. Throws Error when the engine fails the request.
GenerateResult simple_generate(LlamaModel& model, std::span<const int32_t> prompt,
                               const GenerateOptions& options,
                               const std::function<bool(int32_t)>& on_token = {});

}  // namespace tessera
