#pragma once
// Token sampling on the GPU: one CTA per logits row; the row never leaves the device.
// Greedy is an argmax (lowest id on ties). Otherwise weights w = exp((x - max) / T); top-k and
// top-p cut the vocabulary at a threshold found by radix selection over the float keys
// (4 histogram passes of 8 bits each; ties at the threshold are kept), then one draw u*Z is
// located by a block prefix scan.
#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::cuda {

struct DeviceSampleSpec {
  float temperature = 1.0f;  // <= 0: greedy
  int top_k = 0;             // 0 or >= vocab: no cut
  float top_p = 1.0f;        // >= 1: no cut
  float uniform = 0.0f;      // the draw in [0, 1), made on the host from (seed, offset)
};

// logits: [rows, vocab] f32; specs, out: [rows] (device memory).
cudaError_t launch_sample(const float* logits, int rows, int vocab, const DeviceSampleSpec* specs,
                          int32_t* out, cudaStream_t stream);

// The host-side draw: common/sampling_rng.h's sampling_uniform(seed, offset), the same
// number the host sampler (engine/sampler.cpp) draws for that token.
float sample_uniform(uint64_t seed, uint64_t offset);

}  // namespace tessera::cuda
