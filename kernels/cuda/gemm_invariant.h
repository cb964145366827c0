#pragma once
// Batch-invariant GEMM for deterministic mode: out[m, n] = sum_k x[m, k] * W[n, k], bf16
// inputs, fp32 accumulation (tensor-core mma.sync), bf16 or f32 output.
//
// Every output element is reduced in one fixed order that depends on k alone: k is cut into
// 32-wide chunks, the 4 warps of a CTA take chunks round-robin (warp w: chunks w, w + 4, ...),
// each accumulating its chunks in increasing order, and the 4 warp sums are added in warp
// order. Row and column tile sizes vary with m and n (they only decide which CTA computes an
// element, not how), and no k is ever split across CTAs. So a row's result is bitwise the
// same alone, in a batch of any size, or at any position in the batch; cuBLAS (an algorithm
// per m, split-K) and the GEMV kernels (another order) give no such guarantee.
#include <cuda_runtime.h>

namespace tessera::cuda {

// x: [m, k] bf16; w: [n, k] bf16; out: [m, n] bf16 (or f32 when out_f32). k % 8 == 0.
// Returns cudaErrorInvalidValue for other shapes.
cudaError_t launch_gemm_invariant(const void* x, int m, const void* w, int n, int k, void* out,
                                  bool out_f32, cudaStream_t stream);

}  // namespace tessera::cuda
