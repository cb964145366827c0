#pragma once
// Host quantizer for online quantization (`--quantization fp8|int8|int4`): turns any weight
// (dense or GGUF blocks, decoded first) into one of the canonical layouts of
// kernels/weight_scheme.h. Round to nearest; scales from each group's range:
//   fp8   per output row: scale = amax / 448, e4m3fn values (nearest, ties to even)
//   int8  symmetric per group: scale = amax / 127, q in [-127, 127]
//   int4  asymmetric per group: scale = (max - min) / 15 over a range that includes 0,
//         zero = round(-min / scale) in [0, 15]
// REFERENCE version (formats branch): the quant branch owns this API and its tuned version;
// the two are reconciled at merge.
#include <cstdint>
#include <vector>

#include "kernels/ops.h"

namespace tessera {

// Owns the quantized storage; `view` points into it (vectors keep their buffers when moved,
// so a moved QuantizedTensor's view stays valid; never copied).
struct QuantizedTensor {
  HostTensor view;
  std::vector<uint8_t> data;
  std::vector<float> scales;
  std::vector<uint8_t> zeros;
  std::vector<int32_t> g_idx;

  QuantizedTensor() = default;
  QuantizedTensor(QuantizedTensor&&) = default;
  QuantizedTensor& operator=(QuantizedTensor&&) = default;
  QuantizedTensor(const QuantizedTensor&) = delete;
  QuantizedTensor& operator=(const QuantizedTensor&) = delete;
};

// fp8 per channel; int8 symmetric; int4 with zero points. group_size: values per group along
// cols for int8 / int4 (0 = one group per row); ignored for fp8. Throws
// Error(kInvalidArgument) for kDense / kGguf, or an odd column count with int4.
QuantizedTensor quantize_weight(const HostTensor& src, QuantKind kind, int group_size);

// Any weight (dense, GGUF, or a canonical FP8 / INT8 / INT4 scheme) decoded to f32
// [rows, cols], following kernels/weight_scheme.h.
std::vector<float> dequantize_weight(const HostTensor& t);

// Nearest e4m3fn byte to x (saturating at +-448; NaN stays NaN).
uint8_t f32_to_e4m3(float x);
float e4m3_to_f32(uint8_t b);

}  // namespace tessera
