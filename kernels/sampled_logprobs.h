#pragma once
// The log-probabilities a backend's sampler reports for one sampled row (plain data: the CUDA
// kernel writes it as is). Raw model log-softmax, before penalties and temperature.
#include <cstdint>

namespace tessera {

inline constexpr int kMaxSampleLogprobs = 20;

struct SampledLogprobs {
  float chosen = 0.0f;  // the sampled token's
  int32_t num_top = 0;  // alternatives below, best first (ties: lower id first)
  int32_t top_ids[kMaxSampleLogprobs] = {};
  float top_logprobs[kMaxSampleLogprobs] = {};
};

}  // namespace tessera
