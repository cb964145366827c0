#pragma once
// Weight-streaming GEMV for decode-sized batches: out[m, n] = sum_k x[m, k] * W[n, k] for
// m < kMaxGemvRows. Each warp owns one weight row and streams it once with 16-byte loads
// (evict-first), so the whole weight matrix is read exactly once per call; x is tiny and
// stays in L1. bf16 inputs, fp32 accumulation, bf16 or f32 output.
#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::cuda {

constexpr int kMaxGemvRows = 8;

// x: [m, k] bf16; w: [n, k] bf16; out: [m, n] (bf16, or f32 when out_f32). k % 8 == 0.
cudaError_t launch_gemv(const void* x, int m, const void* w, int n, int k, void* out, bool out_f32,
                        cudaStream_t stream);

}  // namespace tessera::cuda
