#pragma once
// Host quantizer for online quantization (`--quantization fp8|int8|int4`) and for tests and
// benchmarks: turns a dense (or GGUF) weight into one of the canonical layouts of
// kernels/weight_scheme.h. Round to nearest; scales from each group's range:
//   fp8   per output row (per_channel) or per tensor: scale = amax / 448, e4m3fn values
//   int8  symmetric per group: scale = amax / 127, q in [-127, 127]
//   int4  asymmetric per group (has_zeros): scale = (max - min) / 15, zero = round(-min /
//         scale) in [0, 15]; symmetric (zero point 8): scale = amax / 7, q - 8 in [-7, 7]
// act_order: columns are ranked by their largest magnitude (a stand-in for GPTQ's Hessian
// order) and assigned to groups of group_size in that order; g_idx records each column's.
#include <cstdint>
#include <vector>

#include "kernels/ops.h"

namespace tessera {

// Owns the quantized storage; `view` points into it (and stays valid when moved, never
// copied). view.dtype is kept as the source's (unused for these schemes).
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

// The common form: fp8 per channel; int8 symmetric; int4 with zero points. group_size: values
// per group along cols for int8 / int4 (0 = one group per row); ignored for fp8.
// Throws Error(kInvalidArgument) for kDense / kGguf or an odd column count with int4.
QuantizedTensor quantize_weight(const HostTensor& src, QuantKind kind, int group_size);
// Every variant: scheme.kind, group_size, per_channel, has_zeros, act_order are honoured.
QuantizedTensor quantize_weight(const HostTensor& src, const QuantScheme& scheme);

}  // namespace tessera
