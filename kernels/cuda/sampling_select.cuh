#pragma once
// Shared by the sampling kernels: an order-preserving float key and radix selection of a
// threshold over one logits row by count (top-k, top logprobs) or by softmax mass (top-p).
#include <cstdint>

namespace tessera::cuda::sampling_detail {

// Order-preserving map from float to uint32 (larger float -> larger key).
__device__ __forceinline__ uint32_t float_key(float x) {
  const uint32_t b = __float_as_uint(x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Top-k / top-p histograms count in fixed point: a weight w in (0, 1] adds w * 2^32 as an
// integer. Integer sums do not depend on the order the threads add in, so the threshold (and
// the token) is the same on every run; float atomics would make top-p nondeterministic.
constexpr float kFixedOne = 4294967296.0f;  // 2^32; a row of 2^31 weights of 1 still fits

// Copies of the histogram, one per group of warps, so that warps rarely contend for a bin.
constexpr int kHistCopies = 4;

struct SampleShared {
  unsigned long long hist[kHistCopies][256];
  float warp_sums[32];
  uint32_t prefix;
  unsigned long long above;
  unsigned long long target;
  int result;
  float row_max;
};

// Largest key tau (>= floor) with W(key >= tau) >= target, where W sums weight(i) over
// elements with key >= floor. by_count: weight 1 and target = count; else weight
// exp((x - max) * inv_t) in fixed point and target = mass_fraction of the total mass above
// floor (read off the first pass's histogram, which covers all of it).
__device__ inline uint32_t radix_select(const float* row, int vocab, uint32_t floor_key,
                                        unsigned long long count, float mass_fraction,
                                        bool by_count, float max_val, float inv_t,
                                        SampleShared& sh) {
  uint32_t prefix = 0, mask = 0;
  unsigned long long above = 0;
  const int lane = threadIdx.x & 31;
  unsigned long long* my_hist = sh.hist[(threadIdx.x >> 5) % kHistCopies];
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < kHistCopies * 256; b += blockDim.x) sh.hist[b / 256][b % 256] = 0;
    __syncthreads();
    // Most of a row falls into a few bins: the lanes of a warp that share a bin add their
    // weights first (exactly, in integers) and one of them adds the sum to the histogram.
    for (int base = 0; base < vocab; base += blockDim.x) {
      const int i = base + threadIdx.x;
      bool in = false;
      uint32_t bin = 0x100u;
      unsigned long long w = 0;
      if (i < vocab) {
        const float x = row[i];
        const uint32_t k = float_key(x);
        if (k >= floor_key && (k & mask) == prefix) {
          in = true;
          bin = (k >> shift) & 255u;
          w = by_count ? 1ull
                       : static_cast<unsigned long long>(__expf((x - max_val) * inv_t) * kFixedOne);
        }
      }
      if (__ballot_sync(0xffffffffu, in) == 0u) continue;
      const unsigned peers = __match_any_sync(0xffffffffu, bin);
      if (!in) continue;
      unsigned long long sum;
      if (by_count) {
        sum = __popc(peers);
      } else {  // w <= 2^32: 21 low bits and 12 high bits, each summed over <= 32 lanes in 32 bits
        const unsigned lo = __reduce_add_sync(peers, static_cast<unsigned>(w & 0x1FFFFFull));
        const unsigned hi = __reduce_add_sync(peers, static_cast<unsigned>(w >> 21));
        sum = (static_cast<unsigned long long>(hi) << 21) + lo;
      }
      if (__ffs(peers) - 1 == lane) atomicAdd(&my_hist[bin], sum);
    }
    __syncthreads();
    for (int b = threadIdx.x; b < 256; b += blockDim.x)
      for (int c = 1; c < kHistCopies; ++c) sh.hist[0][b] += sh.hist[c][b];
    __syncthreads();
    if (threadIdx.x == 0) {
      if (shift == 24) {
        unsigned long long total = 0;
        for (int b = 0; b < 256; ++b) total += sh.hist[0][b];
        sh.target = by_count ? count
                             : static_cast<unsigned long long>(static_cast<double>(mass_fraction) *
                                                               static_cast<double>(total));
        if (sh.target == 0) sh.target = 1;
      }
      const unsigned long long target = sh.target;
      unsigned long long cum = above;
      int chosen = -1;
      for (int b = 255; b >= 0; --b) {
        if (sh.hist[0][b] > 0 && cum + sh.hist[0][b] >= target) {
          chosen = b;
          break;
        }
        cum += sh.hist[0][b];
      }
      if (chosen < 0) {  // the target is past everything: take the lowest non-empty bin
        cum = above;
        for (int b = 255; b >= 0; --b) {
          if (sh.hist[0][b] > 0) chosen = b;
        }
        for (int b = 255; b > chosen; --b) cum += sh.hist[0][b];
        if (chosen < 0) chosen = 0;
      }
      sh.prefix = prefix | (uint32_t(chosen) << shift);
      sh.above = cum;
    }
    __syncthreads();
    prefix = sh.prefix;
    above = sh.above;
    mask |= 0xFFu << shift;
  }
  return prefix > floor_key ? prefix : floor_key;
}

}  // namespace tessera::cuda::sampling_detail
