#pragma once
// Host-side conversion of weights to what the CUDA backend keeps: bf16 matrices (quantized
// GGUF blocks are dequantized; a later quantized-GEMM path would keep them packed) and f32
// vectors (norm weights).
#include <cstdint>
#include <vector>

#include "kernels/ops.h"

namespace tessera::cuda {

uint16_t float_to_bf16(float f);  // round to nearest even; NaN stays NaN
float bf16_to_float(uint16_t h);
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

// Dequantizes/converts any supported HostTensor to f32, row-major [rows, cols].
std::vector<float> to_f32(const HostTensor& t);
// Same, to bf16 bits.
std::vector<uint16_t> to_bf16(const HostTensor& t);

}  // namespace tessera::cuda
