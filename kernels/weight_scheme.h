#pragma once
// How a projection's weight is stored: its quantization scheme and the side tensors the
// scheme needs. A HostTensor / Weight carries one of these; the backend's Linear (matmul,
// matmul_multi, gate_up_silu, lm_head) dispatches on it.
//
// Tessera's canonical layouts (loaders convert AWQ / GPTQ / FP8 checkpoints into them; the
// CPU backend's dequantization is the readable reference for each):
//   kDense   data: f32 / f16 / bf16 [rows, cols]                     (dtype says which)
//   kGguf    data: GGUF blocks along cols (dtype = Q8_0, Q4_0, Q4_1, Q4_K, ...)
//   kFp8     data: e4m3fn bytes [rows, cols]; w = fp8 * scales[per_channel ? row : 0]
//   kInt8    data: int8 [rows, cols];         w = q * scales[row, g(col)]
//   kInt4    data: 4-bit, two per byte along cols (col 2j in the low nibble of byte j,
//            col 2j+1 in the high one) [rows, cols / 2];
//            w = (q - zero[row, g(col)]) * scales[row, g(col)], zero = 8 when !has_zeros
// where g(col) = g_idx ? g_idx[col] : col / group_size, and there are
// num_groups = ceil(cols / group_size) groups per row (or max(g_idx) + 1 with act order).
// scales are f32 [rows, num_groups] (fp8: [1] or [rows]); zeros are one uint8 per group
// [rows, num_groups]; g_idx is int32 [cols].
#include <cstdint>

namespace tessera {

enum class QuantKind : uint8_t { kDense, kGguf, kFp8, kInt8, kInt4 };

struct QuantScheme {
  QuantKind kind = QuantKind::kDense;
  int group_size = 0;        // kInt8 / kInt4: values per group along cols (0 = whole row)
  bool per_channel = false;  // kFp8: one scale per output row, else one per tensor
  bool has_zeros = false;    // kInt4: asymmetric (zero points stored)
  bool act_order = false;    // kInt4 / kInt8: g_idx present (GPTQ desc_act)
  // kFp8 W8A8: the activation scale; 0 = dynamic (per token, computed at run time).
  float act_scale = 0.0f;

  bool quantized() const { return kind != QuantKind::kDense; }
};

const char* quant_kind_name(QuantKind k);
// Groups per row for a [rows, cols] weight of this scheme (1 for per-tensor/per-channel).
int64_t quant_num_groups(const QuantScheme& s, int64_t cols, const int32_t* g_idx);

}  // namespace tessera
