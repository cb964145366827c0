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

constexpr int kMaxGemvRows = 8;  // what the kernels accept
constexpr int kMaxGemvGroup = 4;

// Rows up to which CudaOps takes these kernels rather than cuBLASLt. The GEMV does its dot
// products in fp32 FMAs, whose count per weight byte grows with the rows, while cuBLASLt's
// tensor-core GEMM costs about the same from 1 to 16 rows. Measured on an H200 with the
// Llama-3.1-8B shapes (per-launch us, GEMV vs cuBLASLt):
//   Wo 4096x4096:          10.1 / 12.2 at 2 rows, 10.9 / 12.2 at 3, 12.8 / 12.1 at 4
//   Wdown 4096x14336:      28.8 / 30.3 at 2 rows, 30.2 / 30.4 at 3, 36.7 / 30.5 at 4
//   gate/up+SiLU (fused):  58.6 / 59.4 + silu_mul at 2, 61.0 / 59.3 + silu_mul at 3, 66.7 at 4
//   Q/K/V (one grouped launch vs three GEMMs): 17.7 / 26.3 at 4, 23.9 / 26.4 at 5, 25.7 at 6
//   LM head 128256x4096:   240 / 248 at 1 row, 240 / 239 at 2, 253 / 240 at 3
constexpr int kGemvRowsPlain = 3;    // matmul
constexpr int kGemvRowsGateUp = 3;   // gate_up_silu
constexpr int kGemvRowsGrouped = 5;  // matmul_multi
constexpr int kGemvRowsLmHead = 1;   // lm_head

// A small weight (a small model's projections: the default model's largest holds 0.9M
// elements) costs less to stream than a launch, and cuBLASLt's fixed cost per call dominates
// there; the GEMV takes such weights up to kMaxGemvRows rows (the 2-5-row verify steps of
// speculative decoding, batches up to 8). TESSERA_SMALL_GEMV=0 keeps the measured cutoffs
// above for every weight (A/B measurements).
constexpr int64_t kSmallGemvElements = int64_t(2) << 20;
int gemv_row_cutoff(int measured, int64_t weight_rows, int64_t weight_cols);

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
