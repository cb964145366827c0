// Repetition, presence and frequency penalties on the device: one CTA per penalized row
// copies the raw row to its scratch slot and penalizes the tokens of its history there.
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/sampling.h"

namespace tessera::cuda {
namespace {

constexpr int kThreads = 512;
// A count with this bit set: the token is in the prompt (repetition penalty only).
constexpr int32_t kInPrompt = 1 << 30;

// Explicitly rounded operations (no contraction into FMA), so a penalized logit is the same
// float the host sampler (engine/sampler.cpp) computes.
__device__ __forceinline__ float penalize(float l, int32_t count, const DeviceSampleSpec& s) {
  if (s.repetition_penalty != 1.0f)
    l = l > 0.0f ? __fdiv_rn(l, s.repetition_penalty) : __fmul_rn(l, s.repetition_penalty);
  const int32_t in_output = count & ~kInPrompt;
  if (in_output > 0 && (s.presence_penalty != 0.0f || s.frequency_penalty != 0.0f)) {
    const float drop =
        __fadd_rn(s.presence_penalty, __fmul_rn(s.frequency_penalty, float(in_output)));
    l = __fsub_rn(l, drop);
  }
  return l;
}

__global__ void __launch_bounds__(kThreads)
    penalize_kernel(const float* logits, int vocab, const DeviceSampleSpec* specs,
                    const int32_t* history, const int32_t* previous, float* penalized,
                    int32_t* counts) {
  pdl_wait();
  pdl_launch_dependents();
  const DeviceSampleSpec s = specs[blockIdx.x];
  if (s.pen_slot < 0) return;
  const float* src = logits + int64_t(blockIdx.x) * vocab;
  float* dst = penalized + int64_t(s.pen_slot) * vocab;
  int32_t* count = counts + int64_t(s.pen_slot) * vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) dst[i] = src[i];

  const int32_t* h = history + s.history;
  const int n = s.num_prompt + s.num_output;
  const int32_t pending = s.pending_row >= 0 ? previous[s.pending_row] : -1;
  auto token = [&](int i) { return i < n ? h[i] : pending; };
  const int total = n + (s.pending_row >= 0 ? 1 : 0);
  for (int i = threadIdx.x; i < total; i += blockDim.x) {
    const int32_t t = token(i);
    if (t < 0 || t >= vocab) continue;
    if (i < s.num_prompt) {
      atomicOr(&count[t], kInPrompt);
    } else {
      atomicAdd(&count[t], 1);
    }
  }
  __syncthreads();
  // Each distinct token is penalized once: by the thread whose exchange takes its count
  // (which also leaves the scratch zero for the next step).
  for (int i = threadIdx.x; i < total; i += blockDim.x) {
    const int32_t t = token(i);
    if (t < 0 || t >= vocab) continue;
    const int32_t c = atomicExch(&count[t], 0);
    if (c != 0) dst[t] = penalize(dst[t], c, s);
  }
}

}  // namespace

cudaError_t launch_penalize(const float* logits, int rows, int vocab, const DeviceSampleSpec* specs,
                            const int32_t* history, const int32_t* previous, float* penalized,
                            int32_t* counts, cudaStream_t stream) {
  if (vocab <= 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  return launch_kernel(penalize_kernel, dim3(rows), dim3(kThreads), 0, stream, logits, vocab, specs,
                       history, previous, penalized, counts);
}

}  // namespace tessera::cuda
