#pragma once
// out[r, n] = sum_k x[r, k] * W[n, k] for f32 activations x and a weight W stored in any
// DType. Quantized groups are decoded to f32 on the fly and FMA-accumulated in f32, so the
// result equals "dequantize, then f32 matmul" up to summation order. Nothing is dequantized
// ahead of time: few rows (decode) decode each group in registers and use it for all rows;
// many rows (prefill) decode a panel of weight rows once into a small per-thread buffer and
// sweep every activation row over it.
#include <cstdint>
#include <functional>

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
  // Deterministic mode: every row reduced in the same order at every row count (no batch-1
  // quantized matvec, whose order differs). Threads split n, never a row's sum, so the
  // thread count never changes a result.
  bool batch_invariant = false;
};

void matmul(ThreadPool& pool, const MatmulArgs& a);

// A weight [n, cols] whose rows a decoder produces in f32 (the quantization schemes of
// kernels/weight_scheme.h, decoded by kernels/scheme_ref.h): every task decodes panels of
// rows into a small per-thread buffer and runs the f32 kernels over them, so the result is
// "dequantize, then f32 matmul" up to summation order. decode may run on several threads.
using RowDecoder = std::function<void(int64_t first_row, int64_t n, float* out)>;
void matmul_decoded(ThreadPool& pool, const float* x, int64_t rows, int64_t n, int64_t cols,
                    const RowDecoder& decode, float* out);

}  // namespace tessera::cpu
