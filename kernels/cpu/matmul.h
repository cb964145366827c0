#pragma once
// out[r, n] = sum_k x[r, k] * W[n, k] for f32 activations x and a weight W stored in any
// DType. Quantized groups are decoded to f32 on the fly and FMA-accumulated in f32, so the
// result equals "dequantize, then f32 matmul" up to summation order. Nothing is dequantized
// ahead of time: few rows (decode) decode each group in registers and use it for all rows;
// many rows (prefill) decode a panel of weight rows once into a small per-thread buffer and
// sweep every activation row over it.
#include <cstdint>

#include "kernels/dtype.h"

namespace tessera::cpu {

class ThreadPool;

struct MatmulArgs {
  const float* x = nullptr;  // [rows, cols]
  int64_t rows = 0;
  DType w_dtype = DType::kF32;
  const void* w = nullptr;  // [n, cols], rows of dtype_row_bytes(w_dtype, cols)
  int64_t n = 0;
  int64_t cols = 0;
  float* out = nullptr;  // [rows, n]
};

void matmul(ThreadPool& pool, const MatmulArgs& a);

}  // namespace tessera::cpu
