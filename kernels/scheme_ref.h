#pragma once
// The readable reference of every weight scheme in kernels/weight_scheme.h: validation of a
// quantized tensor's side tensors and its dequantization to f32, row by row. The CPU backend
// decodes with it; the CUDA backend checks and falls back with it; tests compare against an
// independent decoder of their own.
#include <cstdint>
#include <vector>

#include "kernels/ops.h"

namespace tessera {

// A quantized (kFp8 / kInt8 / kInt4) weight as its pointers and its group count.
struct SchemeView {
  QuantScheme scheme;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t num_groups = 1;  // scales per row (fp8: 1; fp8 per-tensor: one for all rows)
  const uint8_t* data = nullptr;
  const float* scales = nullptr;
  const uint8_t* zeros = nullptr;
  const int32_t* g_idx = nullptr;

  size_t data_bytes() const;  // bytes of data
  size_t scale_count() const;
  size_t zero_count() const;  // 0 unless kInt4 with has_zeros
  // Group of column c.
  int64_t group(int64_t c) const {
    return g_idx != nullptr ? g_idx[c] : (scheme.group_size > 0 ? c / scheme.group_size : 0);
  }
};

// Throws Error(kInvalidArgument) when the scheme is not kFp8 / kInt8 / kInt4, a side tensor
// it needs is missing, cols is odd for kInt4, or a g_idx entry is negative.
SchemeView scheme_view(const HostTensor& t);
SchemeView scheme_view(const Weight& w);

// out: [n, cols] f32 = rows [r0, r0 + n) of the weight, dequantized.
void dequantize_scheme_rows(const SchemeView& v, int64_t r0, int64_t n, float* out);

// Any weight (dense, GGUF blocks or a quantization scheme) as f32 [rows, cols].
std::vector<float> dequantize_weight(const HostTensor& t);

}  // namespace tessera
