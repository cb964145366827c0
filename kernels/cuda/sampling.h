#pragma once
// Token sampling on the GPU: one CTA per logits row; the row never leaves the device.
// Greedy is an argmax (lowest id on ties). Otherwise weights w = exp((x - max) / T); min_p,
// top-k and top-p cut the vocabulary at a threshold found by radix selection over the float
// keys (4 histogram passes of 8 bits each; ties at the threshold are kept), then one draw u*Z
// is located by a block prefix scan.
//
// Rows with penalties are first copied and penalized (launch_penalize) into a scratch row
// that the sampler reads instead; logprobs (launch_logprobs) are taken afterwards from the
// raw rows, as the host sampler reports them.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/sampled_logprobs.h"

namespace tessera::cuda {

struct DeviceSampleSpec {
  float temperature = 1.0f;  // <= 0: greedy
  int top_k = 0;             // 0 or >= vocab: no cut
  float top_p = 1.0f;        // >= 1: no cut
  float uniform = 0.0f;      // the draw in [0, 1), made on the host from (seed, offset)
  float min_p = 0.0f;        // 0: no cut
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // >= 0: this row's slot in the penalized rows and their count scratch; -1: no penalties.
  int pen_slot = -1;
  int num_prompt = 0;  // history: num_prompt prompt tokens, then num_output output tokens
  int num_output = 0;
  int pending_row = -1;  // one more output token: the previous sampling's token at this row
  int64_t history = 0;   // offset of the row's history in the history array
  int logprobs = -1;     // >= 0: alternatives to report
  int pad_ = 0;
};

// logits: [rows, vocab] f32; specs, out: [rows] (device memory). penalized: [slots, vocab],
// the rows launch_penalize wrote (may be null when no spec has a pen_slot).
cudaError_t launch_sample(const float* logits, const float* penalized, int rows, int vocab,
                          const DeviceSampleSpec* specs, int32_t* out, cudaStream_t stream);

// For each spec with a pen_slot: penalized[slot] = the row with repetition, presence and
// frequency penalties applied over its history (tokens outside [0, vocab) are ignored).
// counts: [slots, vocab] int32, all zero on entry, and left all zero.
// previous: the previous sampling's tokens (for pending_row).
cudaError_t launch_penalize(const float* logits, int rows, int vocab, const DeviceSampleSpec* specs,
                            const int32_t* history, const int32_t* previous, float* penalized,
                            int32_t* counts, cudaStream_t stream);

// For each spec with logprobs >= 0: the raw log-softmax of its logits row at the sampled
// token, and the best `logprobs` alternatives (ties: lower id first).
cudaError_t launch_logprobs(const float* logits, int rows, int vocab, const DeviceSampleSpec* specs,
                            const int32_t* sampled, SampledLogprobs* out, cudaStream_t stream);

// The host-side draw: common/sampling_rng.h's sampling_uniform(seed, offset), the same
// number the host sampler (engine/sampler.cpp) draws for that token.
float sample_uniform(uint64_t seed, uint64_t offset);

}  // namespace tessera::cuda
