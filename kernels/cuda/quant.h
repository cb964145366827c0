#pragma once
// Kernels for weights kept quantized on the GPU (kernels/weight_scheme.h: fp8 e4m3 per
// tensor / per channel, int8 and int4 group-wise with optional zero points and act-order
// g_idx), in the canonical layouts as uploaded:
//   - a weight-streaming GEMV for decode-sized batches that dequantizes in registers;
//   - for tiled int4 at 9-64 rows, a tensor-core GEMM that reads each weight once;
//   - a dequantizer to bf16 (larger int8 / int4 batches: dequantize, then cuBLASLt);
//   - per-token dynamic FP8 quantization of activations and the output scaling that
//     completes a cuBLASLt FP8 GEMM (W8A8 for larger batches).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/weight_scheme.h"

namespace tessera::cuda {

constexpr int kMaxQuantGemvRows = 8;

// A quantized weight [n, k] in device memory.
struct QuantWeightArgs {
  const void* data = nullptr;      // fp8 / int8: [n, k] bytes; int4: [n, k / 2]
  const float* scales = nullptr;   // fp8: [1] or [n]; ints: [n, num_groups]
  const uint8_t* zeros = nullptr;  // int4 with has_zeros: [n, num_groups]
  const int32_t* g_idx = nullptr;  // act order: [k]
  DType gguf_type = DType::kF32;   // kGguf: the block type of data ([n] rows of blocks)
  QuantKind kind = QuantKind::kFp8;
  int group_size = 0;  // ints without g_idx: columns per group (0 = the whole row)
  int num_groups = 1;
  bool per_channel = false;
  bool has_zeros = false;
  // int4 data in the warp-tile order of gemv_quant_mma.cu (int4_tiled below) instead of
  // [n, k / 2]: every kernel here reads both.
  bool tiled = false;
  int n = 0;
  int k = 0;
};

// int4 weights that the tensor-core GEMV takes are kept tiled on the GPU: per 16 output rows
// and 128 values of k, the two 512-byte loads of one warp (rows 0-7, then rows 8-15), each in
// lane order (lane 4g + j holds row g's bytes [16j, 16j + 16) of the block), so every load is
// 512 contiguous bytes. Rows are padded to a multiple of 16 with zeros.
bool int4_tiled(const QuantWeightArgs& w);
size_t int4_tiled_bytes(int n, int k);
// src: [n, k / 2] canonical int4 bytes -> dst: int4_tiled_bytes(n, k) bytes, tiled.
void tile_int4(const uint8_t* src, int n, int k, uint8_t* dst);
// The byte of tiled int4 data that holds value (row, col), k values per row.
__host__ __device__ inline size_t int4_tiled_offset(int row, int col, int k) {
  const size_t blocks = size_t(k) / 128;
  const int w = col % 128;
  return ((size_t(row / 16) * blocks + col / 128) * 64 + (row % 16) * 4 + w / 32) * 16 +
         (w % 32) / 2;
}

// True when the GEMV takes this weight: k a multiple of the values in 16 bytes (16 for the
// 8-bit kinds, 32 for int4).
bool gemv_quant_supported(const QuantWeightArgs& w);

// x: [m, k] bf16, 1 <= m <= kMaxQuantGemvRows -> out: [m, n] bf16 (or f32 when out_f32).
// Takes the tensor-core GEMV below where it applies, else the CUDA-core one.
cudaError_t launch_gemv_quant(const void* x, int m, const QuantWeightArgs& w, void* out,
                              bool out_f32, cudaStream_t stream);

// The tensor-core GEMV for decode-sized batches (gemv_quant_mma.cu): int4 with groups of
// 128 * 2^s (or one per row) and no act order, k % 128 == 0; fp8 with k % 64 == 0.
// TESSERA_QUANT_GEMV=simt leaves every weight to the CUDA-core kernel (measurements).
bool gemv_quant_mma_supported(const QuantWeightArgs& w);
cudaError_t launch_gemv_quant_mma(const void* x, int m, const QuantWeightArgs& w, void* out,
                                  bool out_f32, cudaStream_t stream);
// Up to 3 weights of one kind and k (Q, K, V) in one launch, bf16 outputs.
bool gemv_quant_mma_multi_supported(const QuantWeightArgs* ws, int count);
cudaError_t launch_gemv_quant_mma_multi(const void* x, int m, const QuantWeightArgs* ws,
                                        void* const* outs, int count, cudaStream_t stream);
// out: [m, n] bf16 = silu(x gate^T) * (x up^T), one launch.
bool gemv_quant_mma_gate_up_supported(const QuantWeightArgs& gate, const QuantWeightArgs& up);
cudaError_t launch_gemv_quant_mma_gate_up(const void* x, int m, const QuantWeightArgs& gate,
                                          const QuantWeightArgs& up, void* out,
                                          cudaStream_t stream);

// Batches of 9..kMaxInt4GemmRows rows over tiled int4 weights (gemm_int4_mma.cu): the same
// operations as the three GEMV launches above, each weight read once for all rows.
// workspace: gemm_int4_workspace_bytes() of device memory, zeroed once and then owned by one
// stream (split-k partials and counters that every launch leaves at zero); nullptr: no split.
// TESSERA_INT4_GEMM=0 leaves these batches to the GEMV in chunks of 8 rows (measurements).
constexpr int kMaxInt4GemmRows = 64;
size_t gemm_int4_workspace_bytes();
bool gemm_int4_mma_supported(const QuantWeightArgs& w);
cudaError_t launch_gemm_int4_mma(const void* x, int m, const QuantWeightArgs& w, void* out,
                                 bool out_f32, void* workspace, cudaStream_t stream);
bool gemm_int4_mma_multi_supported(const QuantWeightArgs* ws, int count);
cudaError_t launch_gemm_int4_mma_multi(const void* x, int m, const QuantWeightArgs* ws,
                                       void* const* outs, int count, void* workspace,
                                       cudaStream_t stream);
bool gemm_int4_mma_gate_up_supported(const QuantWeightArgs& gate, const QuantWeightArgs& up);
cudaError_t launch_gemm_int4_mma_gate_up(const void* x, int m, const QuantWeightArgs& gate,
                                         const QuantWeightArgs& up, void* out, void* workspace,
                                         cudaStream_t stream);

// GGUF weights kept as blocks (gguf.cu): QuantKind::kGguf, gguf_type one of Q8_0, Q4_0, Q4_1,
// Q4_K, Q5_K, Q6_K. launch_gemv_quant and launch_dequant_weight take them; the embedding
// lookup decodes the rows it gathers.
bool gguf_blocks_supported(DType type, int64_t cols);
cudaError_t launch_gguf_gemv(const void* x, int m, const QuantWeightArgs& w, void* out,
                             bool out_f32, cudaStream_t stream);
// Up to 3 weights of one block type and k (Q, K, V) in one launch, bf16 outputs; and
// out = silu(x gate^T) * (x up^T) in one launch. 1..kMaxQuantGemvRows rows.
bool gguf_gemv_multi_supported(const QuantWeightArgs* ws, int count);
cudaError_t launch_gguf_gemv_multi(const void* x, int m, const QuantWeightArgs* ws,
                                   void* const* outs, int count, cudaStream_t stream);
bool gguf_gemv_gate_up_supported(const QuantWeightArgs& gate, const QuantWeightArgs& up);
cudaError_t launch_gguf_gemv_gate_up(const void* x, int m, const QuantWeightArgs& gate,
                                     const QuantWeightArgs& up, void* out, cudaStream_t stream);
cudaError_t launch_gguf_dequant(const QuantWeightArgs& w, void* out, cudaStream_t stream);
// table: [vocab, dim] blocks of `type`; as launch_embedding (elementwise.h) otherwise.
cudaError_t launch_gguf_embedding(const void* table, DType type, int64_t vocab, int dim,
                                  const int32_t* tokens, int num_tokens, float* out,
                                  cudaStream_t stream);

// out: [n, k] bf16 = the weight's values.
cudaError_t launch_dequant_weight(const QuantWeightArgs& w, void* out, cudaStream_t stream);

// Per-token dynamic FP8: x: [m, k] bf16 -> q: [m, k] e4m3 = x / scale, scales: [m] f32 with
// scale = amax(row) / 448 (1 for an all-zero row).
cudaError_t launch_quantize_fp8_rows(const void* x, int m, int k, void* q, float* scales,
                                     cudaStream_t stream);

// out: [m, n] bf16, in place: out[i, j] *= row_scale[i] * col_scale[per_channel ? j : 0].
cudaError_t launch_scale_output(void* out, int m, int n, const float* row_scale,
                                const float* col_scale, bool per_channel, cudaStream_t stream);

}  // namespace tessera::cuda
