#pragma once
// The one random-number contract of every sampler (engine/sampler.cpp on the host,
// kernels/cuda/sampling.cu on the device): a token draw is a pure function of
// (choice seed, index of the output token being drawn), so the same seed gives the same
// tokens whichever path samples, however the request was batched, preempted or recomputed.
// The engine gives choice i of a request the seed (request seed + i); an unseeded request
// gets a random base. Counter-based (SplitMix64 finalizer, as in Java's SplittableRandom):
// no state to carry between steps or to keep per device thread.
//
// The draw has 24 random bits, so it is exactly representable as a float: the host (double
// arithmetic) and the device (float) compare the very same u against their cumulative mass.
#include <cstdint>

#if defined(__CUDACC__)
#define TESSERA_HOST_DEVICE __host__ __device__
#else
#define TESSERA_HOST_DEVICE
#endif

namespace tessera {

TESSERA_HOST_DEVICE constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// 64 random bits for draw `step` of the stream `seed`.
TESSERA_HOST_DEVICE constexpr uint64_t sampling_bits(uint64_t seed, uint64_t step) {
  return splitmix64(splitmix64(seed) ^ step);
}

// Uniform in [0, 1): the top 24 bits of sampling_bits, times 2^-24.
TESSERA_HOST_DEVICE constexpr float sampling_uniform(uint64_t seed, uint64_t step) {
  return static_cast<float>(sampling_bits(seed, step) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace tessera
