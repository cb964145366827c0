#pragma once
// Quantized Hugging Face checkpoints: the quantization_config of config.json, and the
// conversion of each quantized Linear's tensors into Tessera's canonical layouts
// (kernels/weight_scheme.h). Supported: FP8 E4M3 (compressed-tensors "float-quantized" and
// the "fp8" quant_method; per-tensor or per-channel weight scales, static or dynamic
// activation scales), AWQ GEMM (4-bit, zero points) and GPTQ (4-bit, sym / asym, act order,
// v1 and v2 zero formats).
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "model/safetensors_file.h"
#include "model/weights.h"

namespace tessera {

struct HfQuantConfig {
  enum class Method { kNone, kFp8, kAwq, kGptq };
  Method method = Method::kNone;
  int bits = 0;
  int group_size = 0;             // AWQ / GPTQ: inputs per group (0 = whole row)
  bool static_act = false;        // FP8: activation scales read from input_scale
  bool gptq_zero_offset = false;  // GPTQ v1: stored zeros are one less than the real ones
};

// Throws Error(kUnsupported) naming the method or option Tessera cannot load.
HfQuantConfig parse_hf_quant_config(const nlohmann::json& config);

// A tensor of the checkpoint and the shard it lives in (for messages).
struct HfTensorRef {
  const SafetensorsFile* file = nullptr;
  const SafetensorsTensor* tensor = nullptr;
};
using HfTensorMap = std::map<std::string, HfTensorRef>;

// Converts every quantized Linear in `tensors` (FP8 .weight + .weight_scale [+ .input_scale];
// AWQ / GPTQ .qweight + .qzeros + .scales [+ .g_idx]) into canonical HostTensors under its
// canonical name, owned by weights.storage, and erases the tensors it consumed.
void load_hf_quantized(const HfQuantConfig& config, HfTensorMap& tensors, WeightSet& weights);

// Internals, one file per format.
void load_hf_fp8(const HfQuantConfig& config, HfTensorMap& tensors, WeightSet& weights);
void load_hf_int4(const HfQuantConfig& config, HfTensorMap& tensors, WeightSet& weights);

}  // namespace tessera
