#pragma once
// Online quantization at load (`--quantization fp8|int8|int4`): every projection weight of a
// loaded model (attention Q/K/V/O, MLP gate/up/down; not the embedding or norms) is decoded
// (bf16 / f16 / f32 or GGUF blocks) and requantized by kernels/quantize.h into a canonical
// scheme. The LM head follows the embedding when tied, else stays as loaded unless asked.
// f32 / f16 / bf16 instead convert the projections and the embedding / LM head to that
// dense type (to compare schemes against one dense baseline).
#include <string>

#include "kernels/dtype.h"
#include "kernels/weight_scheme.h"
#include "model/weights.h"

namespace tessera {

struct OnlineQuant {
  QuantKind kind = QuantKind::kDense;  // kDense with convert = false: weights as loaded
  int group_size = 0;                  // int8 / int4: inputs per group (0 = whole row)
  bool lm_head = false;                // also quantize an untied output.weight
  bool convert = false;                // kDense: convert to dense_dtype
  DType dense_dtype = DType::kF32;
  // Decode the quantized weights back to f32 after quantizing: the scheme's rounding with
  // dense kernels, for backends that lack the scheme's own (accuracy studies only).
  bool simulate = false;
};

// "none" | "f32" | "f16" | "bf16" | "fp8" (per output channel) | "int8" (per output channel)
// | "int4" (groups of 128, zero points); "int8:G" / "int4:G" pick the group size G (0 = whole
// row). Throws Error(kInvalidArgument) otherwise.
OnlineQuant parse_online_quant(const std::string& name);

// Replaces the weights in place; the new storage joins model.weights.storage. A weight that
// is already quantized by its checkpoint (FP8 / AWQ / GPTQ) is left alone. Returns the count
// of weights replaced.
int quantize_loaded_model(LoadedModel& model, const OnlineQuant& q);

}  // namespace tessera
