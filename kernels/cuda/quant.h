#pragma once
// Kernels for weights kept quantized on the GPU (kernels/weight_scheme.h: fp8 e4m3 per
// tensor / per channel, int8 and int4 group-wise with optional zero points and act-order
// g_idx), in the canonical layouts as uploaded:
//   - a weight-streaming GEMV for decode-sized batches that dequantizes in registers;
//   - a dequantizer to bf16 (larger int8 / int4 batches: dequantize, then cuBLASLt);
//   - per-token dynamic FP8 quantization of activations and the output scaling that
//     completes a cuBLASLt FP8 GEMM (W8A8 for larger batches).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/weight_scheme.h"

namespace tessera::cuda {

constexpr int kMaxQuantGemvRows = 8;

// A quantized weight [n, k] in device memory.
struct QuantWeightArgs {
  const void* data = nullptr;      // fp8 / int8: [n, k] bytes; int4: [n, k / 2]
  const float* scales = nullptr;   // fp8: [1] or [n]; ints: [n, num_groups]
  const uint8_t* zeros = nullptr;  // int4 with has_zeros: [n, num_groups]
  const int32_t* g_idx = nullptr;  // act order: [k]
  QuantKind kind = QuantKind::kFp8;
  int group_size = 0;  // ints without g_idx: columns per group (0 = the whole row)
  int num_groups = 1;
  bool per_channel = false;
  bool has_zeros = false;
  int n = 0;
  int k = 0;
};

// True when the GEMV takes this weight: k a multiple of the values in 16 bytes (16 for the
// 8-bit kinds, 32 for int4).
bool gemv_quant_supported(const QuantWeightArgs& w);

// x: [m, k] bf16, 1 <= m <= kMaxQuantGemvRows -> out: [m, n] bf16 (or f32 when out_f32).
cudaError_t launch_gemv_quant(const void* x, int m, const QuantWeightArgs& w, void* out,
                              bool out_f32, cudaStream_t stream);

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
