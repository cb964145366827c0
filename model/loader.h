#pragma once
// Internals of load_model (model/weights.h): one entry point per source kind, and the
// canonical weight list every loader must produce.
#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/weights.h"

namespace tessera {

LoadedModel load_gguf_model(const std::string& path);
LoadedModel load_hf_model(const std::string& dir);
// spec: "<config.json>[?dtype=f32|f16|bf16|q8_0|q4_0|q4_1][&seed=N]" (after "dummy:").
LoadedModel load_dummy_model(const std::string& spec);

// A weight the forward pass reads: canonical (GGUF) name and row-major [rows, cols].
struct WeightSpec {
  std::string name;
  int64_t rows = 0;
  int64_t cols = 0;
  bool is_norm = false;  // 1-D RMSNorm gamma (rows == 1)
};
std::vector<WeightSpec> expected_weights(const ModelConfig& config);

// Throws Error(kCorruptFile) naming `source` and the first missing or misshapen weight.
void check_weights(const ModelConfig& config, const WeightSet& weights, const std::string& source);

// Hugging Face Llama tensor name -> canonical name ("" when it is not a Llama weight).
std::string canonical_weight_name(const std::string& hf_name);

}  // namespace tessera
