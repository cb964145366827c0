#pragma once
// Host decoding of llama.cpp's K-quant super-blocks (Q4_K, Q5_K, Q6_K), used by dequantize()
// in kernels/dequant.h. Written from ggml-quants.c (dequantize_row_q{4,5,6}_K); checked
// against the gguf package's Python decoder in tests/unit/test_loader_kquant.cpp.
#include <cstdint>

#include "kernels/dtype.h"

namespace tessera {

// n: a multiple of 256. type: one of the K-quants (dtype_is_kquant).
void dequantize_kquant(DType type, const uint8_t* src, float* dst, int64_t n);

}  // namespace tessera
