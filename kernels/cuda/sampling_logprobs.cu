// Raw logprobs on the device (what the host sampler reports; engine/sampler.h): one CTA per
// row that asks for them computes log Z in f64, the sampled token's logprob and the best
// `logprobs` alternatives (radix selection, then the ties at the threshold in id order).
#include <cfloat>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/sampling_select.cuh"

namespace tessera::cuda {
namespace {

using namespace sampling_detail;

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kTieCap = 64;  // ties at the threshold sorted directly; more take an ordered scan

struct LogprobShared {
  SampleShared select;
  double warp_sum[kWarps];
  float warp_max[kWarps];
  int warp_count[kWarps];
  int warp_offset[kWarps];
  int have;
  int ties;
  int32_t tie_ids[kTieCap];
  int32_t ids[kMaxSampleLogprobs];
  float values[kMaxSampleLogprobs];
};

__device__ float block_max(float v, LogprobShared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (lane == 0) sh.warp_max[warp] = v;
  __syncthreads();
  v = sh.warp_max[0];
  for (int w = 1; w < kWarps; ++w) v = fmaxf(v, sh.warp_max[w]);
  __syncthreads();
  return v;
}

__device__ double block_sum(double v, LogprobShared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (lane == 0) sh.warp_sum[warp] = v;
  __syncthreads();
  v = 0.0;
  for (int w = 0; w < kWarps; ++w) v += sh.warp_sum[w];
  __syncthreads();
  return v;
}

__global__ void __launch_bounds__(kThreads)
    logprobs_kernel(const float* logits, int vocab, const DeviceSampleSpec* specs,
                    const int32_t* sampled, SampledLogprobs* out) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ LogprobShared sh;
  const DeviceSampleSpec s = specs[blockIdx.x];
  if (s.logprobs < 0) return;
  const float* row = logits + int64_t(blockIdx.x) * vocab;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  float mx = -INFINITY;
  for (int i = tid; i < vocab; i += blockDim.x) mx = fmaxf(mx, row[i]);
  mx = block_max(mx, sh);
  double sum = 0.0;
  for (int i = tid; i < vocab; i += blockDim.x) sum += exp(double(row[i]) - double(mx));
  const double log_z = double(mx) + log(block_sum(sum, sh));

  const int k = min(s.logprobs, min(kMaxSampleLogprobs, vocab));
  if (tid == 0) sh.have = 0, sh.ties = 0;
  __syncthreads();
  if (k > 0) {
    const uint32_t tau = radix_select(row, vocab, 0, static_cast<unsigned long long>(k), 0.f, true,
                                      0.f, 0.f, sh.select);
    // Fewer than k keys lie above tau: gather them in any order; note the ties at tau.
    for (int i = tid; i < vocab; i += blockDim.x) {
      const uint32_t key = float_key(row[i]);
      if (key > tau) {
        const int at = atomicAdd(&sh.have, 1);
        sh.ids[at] = i;
        sh.values[at] = row[i];
      } else if (key == tau) {
        const int t = atomicAdd(&sh.ties, 1);
        if (t < kTieCap) sh.tie_ids[t] = i;
      }
    }
    __syncthreads();
    // Then the ties, lowest ids first, until k are held: sorted here when few, else by an
    // ordered scan of the row.
    if (sh.ties <= kTieCap) {
      if (tid == 0) {
        for (int a = 1; a < sh.ties; ++a) {
          const int32_t id = sh.tie_ids[a];
          int b = a - 1;
          for (; b >= 0 && sh.tie_ids[b] > id; --b) sh.tie_ids[b + 1] = sh.tie_ids[b];
          sh.tie_ids[b + 1] = id;
        }
        for (int t = 0; t < sh.ties && sh.have < k; ++t, ++sh.have) {
          sh.ids[sh.have] = sh.tie_ids[t];
          sh.values[sh.have] = row[sh.tie_ids[t]];
        }
      }
      __syncthreads();
    }
    for (int base = 0; base < vocab && sh.have < k; base += blockDim.x) {
      const int i = base + tid;
      const bool tie = i < vocab && float_key(row[i]) == tau;
      const unsigned ballot = __ballot_sync(0xffffffffu, tie);
      if (lane == 0) sh.warp_count[warp] = __popc(ballot);
      __syncthreads();
      if (tid == 0) {
        int acc = 0;
        for (int w = 0; w < kWarps; ++w) sh.warp_offset[w] = acc, acc += sh.warp_count[w];
      }
      __syncthreads();
      const int at = sh.have + sh.warp_offset[warp] + __popc(ballot & ((1u << lane) - 1u));
      if (tie && at < k) sh.ids[at] = i, sh.values[at] = row[i];
      __syncthreads();
      if (tid == 0)
        sh.have = min(k, sh.have + sh.warp_offset[kWarps - 1] + sh.warp_count[kWarps - 1]);
      __syncthreads();
    }
  }
  if (tid != 0) return;
  SampledLogprobs& o = out[blockIdx.x];
  const int n = min(k, sh.have);
  // Best first, ties by lower id (insertion sort of at most 20).
  for (int a = 1; a < n; ++a) {
    const int32_t id = sh.ids[a];
    const float v = sh.values[a];
    int b = a - 1;
    while (b >= 0 && (sh.values[b] < v || (sh.values[b] == v && sh.ids[b] > id))) {
      sh.ids[b + 1] = sh.ids[b], sh.values[b + 1] = sh.values[b];
      --b;
    }
    sh.ids[b + 1] = id, sh.values[b + 1] = v;
  }
  for (int a = 0; a < n; ++a) {
    o.top_ids[a] = sh.ids[a];
    o.top_logprobs[a] = float(double(sh.values[a]) - log_z);
  }
  o.num_top = n;
  const int32_t chosen = sampled[blockIdx.x];
  o.chosen = chosen >= 0 && chosen < vocab ? float(double(row[chosen]) - log_z) : -INFINITY;
}

}  // namespace

cudaError_t launch_logprobs(const float* logits, int rows, int vocab, const DeviceSampleSpec* specs,
                            const int32_t* sampled, SampledLogprobs* out, cudaStream_t stream) {
  if (vocab <= 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  return launch_kernel(logprobs_kernel, dim3(rows), dim3(kThreads), 0, stream, logits, vocab, specs,
                       sampled, out);
}

}  // namespace tessera::cuda
