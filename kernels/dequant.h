#pragma once
// Host conversions between f32 and the storage types of kernels/dtype.h. Scalar, portable
// code: the CUDA backend converts uploaded weights with it; the loaders and tests compare
// weights across formats with it.
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/ops.h"

namespace tessera {

float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);  // round to nearest even; overflow -> inf
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);  // round to nearest even; NaN stays NaN

// dst[0..n) = values of the first n elements stored at src in `type`.
// n must be a multiple of dtype_block_elems(type).
void dequantize(DType type, const void* src, float* dst, int64_t n);
// Inverse for building test weights: ggml's reference quantizers (round to nearest); the
// K-quants throw kUnsupported (read-only).
// src.size() must be a multiple of dtype_block_elems(type); returns the stored bytes.
std::vector<uint8_t> quantize(DType type, std::span<const float> src);

// Whole tensor [rows, cols] as f32, row-major.
std::vector<float> dequantize_tensor(const HostTensor& t);

}  // namespace tessera
