#include <cfloat>

#include "common/sampling_rng.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/sampling_select.cuh"

namespace tessera::cuda {
namespace {

constexpr int kThreads = 1024;

using namespace sampling_detail;

__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* logits, const float* penalized, int vocab,
                  const DeviceSampleSpec* specs, int32_t* out) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ SampleShared sh;
  const DeviceSampleSpec spec = specs[blockIdx.x];
  const float* row = spec.pen_slot >= 0 ? penalized + int64_t(spec.pen_slot) * vocab
                                        : logits + int64_t(blockIdx.x) * vocab;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  // Argmax, lowest id on ties; NaN logits never win.
  // kLoads independent loads per lane in flight: a loop of one load per trip waits a full
  // memory latency each time (24 us for a 49k row).
  constexpr int kLoads = 8;
  float best = -INFINITY;
  int best_i = 0x7fffffff;
  for (int base = tid; base < vocab; base += kLoads * blockDim.x) {
    float x[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int i = base + u * blockDim.x;
      x[u] = i < vocab ? row[i] : -INFINITY;
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int i = base + u * blockDim.x;
      if (i < vocab && (x[u] > best || (x[u] == best && i < best_i))) best = x[u], best_i = i;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (ob > best || (ob == best && oi < best_i)) best = ob, best_i = oi;
  }
  __shared__ float s_best[32];
  __shared__ int s_best_i[32];
  if (lane == 0) s_best[warp] = best, s_best_i[warp] = best_i;
  __syncthreads();
  if (warp == 0) {
    best = lane < blockDim.x / 32 ? s_best[lane] : -INFINITY;
    best_i = lane < blockDim.x / 32 ? s_best_i[lane] : 0x7fffffff;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
      if (ob > best || (ob == best && oi < best_i)) best = ob, best_i = oi;
    }
    if (lane == 0) {
      sh.result = best_i == 0x7fffffff ? 0 : best_i;
      sh.row_max = best;  // the block-wide max, for every thread's branch below
    }
  }
  __syncthreads();
  const int argmax = sh.result;
  // Block-uniform decision: every thread must take the same branch (the scans below use
  // __syncthreads and every warp's slot).
  if (spec.temperature <= 0.f || spec.top_k == 1 || sh.row_max == -INFINITY) {
    if (tid == 0) out[blockIdx.x] = argmax;
    return;
  }
  const float max_val = row[argmax];
  const float inv_t = 1.f / spec.temperature;

  uint32_t floor_key = 0;
  if (spec.min_p > 0.f) {
    // The host keeps exp((x - max) / T) >= min_p, i.e. x >= max + T * log(min_p).
    const double cut = double(max_val) + double(spec.temperature) * log(double(spec.min_p));
    floor_key = float_key(cut < -double(FLT_MAX) ? -INFINITY : __double2float_ru(cut));
  }
  if (spec.top_k > 0 && spec.top_k < vocab) {
    floor_key = radix_select(row, vocab, floor_key, static_cast<unsigned long long>(spec.top_k),
                             0.f, true, max_val, inv_t, sh);
  }
  if (spec.top_p < 1.f) {
    floor_key = radix_select(row, vocab, floor_key, 0, spec.top_p, false, max_val, inv_t, sh);
  }

  // Locate u * Z in index order: per-thread contiguous chunk sums, block exclusive scan.
  const int chunk = (vocab + blockDim.x - 1) / blockDim.x;
  const int lo = min(vocab, tid * chunk), hi = min(vocab, lo + chunk);
  float mine = 0.f;
  for (int i = lo; i < hi; ++i) {
    const float x = row[i];
    if (float_key(x) >= floor_key) mine += __expf((x - max_val) * inv_t);
  }
  float incl = mine;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += v;
  }
  if (lane == 31) sh.warp_sums[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    float w = lane < blockDim.x / 32 ? sh.warp_sums[lane] : 0.f;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const float v = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += v;
    }
    sh.warp_sums[lane] = w;  // inclusive totals per warp
  }
  __syncthreads();
  const float total = sh.warp_sums[blockDim.x / 32 - 1];
  const float excl = (warp > 0 ? sh.warp_sums[warp - 1] : 0.f) + incl - mine;
  const float target = spec.uniform * total;
  if (tid == 0) sh.result = argmax;  // fallback if rounding puts target past every chunk
  __syncthreads();
  if (mine > 0.f && target >= excl && target < excl + mine) {
    float acc = excl;
    int pick = -1, last = -1;
    for (int i = lo; i < hi; ++i) {
      const float x = row[i];
      if (float_key(x) < floor_key) continue;
      last = i;
      acc += __expf((x - max_val) * inv_t);
      if (acc > target) {
        pick = i;
        break;
      }
    }
    sh.result = pick >= 0 ? pick : last;
  }
  __syncthreads();
  if (tid == 0) out[blockIdx.x] = sh.result;
}

}  // namespace

cudaError_t launch_sample(const float* logits, const float* penalized, int rows, int vocab,
                          const DeviceSampleSpec* specs, int32_t* out, cudaStream_t stream) {
  if (vocab <= 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  return launch_kernel(sample_kernel, dim3(rows), dim3(kThreads), 0, stream, logits, penalized,
                       vocab, specs, out);
}

float sample_uniform(uint64_t seed, uint64_t offset) {
  return sampling_uniform(seed, offset);  // the host sampler's draw, bit for bit
}

}  // namespace tessera::cuda
