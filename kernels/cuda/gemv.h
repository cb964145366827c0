#pragma once
// Weight-streaming GEMV for decode-sized batches: out[m, n] = sum_k x[m, k] * W[n, k] for
// m <= kMaxGemvRows. Each warp owns one output row and streams its weight row(s) once with
// 16-byte loads (evict-first), several in flight per lane, so every weight byte is read
// exactly once per call; x is tiny and stays in L1. bf16 inputs, fp32 accumulation, bf16 or
// f32 output.
//
// Small matrices (the 8 MB K and V projections of an 8B model) cannot fill the GPU alone and
// each launch pays ramp-up and tail, so two fused forms exist:
//   - a group: up to kMaxGemvGroup weights with the same k, streamed by one launch as if
//     stacked along rows, each writing its own output (Q, K and V of a layer);
//   - gate/up + SiLU: out[m, j] = silu(x gate_j) * (x up_j), both rows read with the same x
//     loads, no intermediate buffers.
#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::cuda {

constexpr int kMaxGemvRows = 8;
constexpr int kMaxGemvGroup = 4;

// Weights of one grouped launch; entries [0, count) are used.
struct GemvGroup {
  const void* w[kMaxGemvGroup] = {};  // [n[i], k] bf16
  void* out[kMaxGemvGroup] = {};      // [m, n[i]]
  int n[kMaxGemvGroup] = {};
  int count = 0;
};

// x: [m, k] bf16; w: [n, k] bf16; out: [m, n] (bf16, or f32 when out_f32). k % 8 == 0.
cudaError_t launch_gemv(const void* x, int m, const void* w, int n, int k, void* out, bool out_f32,
                        cudaStream_t stream);

// x: [m, k] bf16; g.w[i]: [g.n[i], k] bf16; g.out[i]: [m, g.n[i]] bf16. k % 8 == 0.
cudaError_t launch_gemv_group(const void* x, int m, const GemvGroup& g, int k, cudaStream_t stream);

// x: [m, k] bf16; gate, up: [n, k] bf16; out: [m, n] bf16 = silu(x gate^T) * (x up^T), with
// both projections kept in fp32 until the product. k % 8 == 0.
cudaError_t launch_gemv_gate_up_silu(const void* x, int m, const void* gate, const void* up, int n,
                                     int k, void* out, cudaStream_t stream);

}  // namespace tessera::cuda
