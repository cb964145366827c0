#pragma once
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "kernels/ops.h"

namespace tessera {

// Shape and hyper-parameters of a Llama-family model. configs/models/*.json use the keys of
// a Hugging Face config.json, so one parser serves the dummy and the safetensors loaders.
struct ModelConfig {
  std::string name;
  std::string architecture = "llama";
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int max_position_embeddings = 2048;
  float rms_norm_eps = 1e-5f;
  RopeConfig rope;
  bool tied_embeddings = false;
  int sliding_window = 0;
  int bos_token_id = -1;
  int eos_token_id = -1;

  // Parses HF config.json keys; throws Error(kInvalidArgument) naming a missing/bad key.
  static ModelConfig from_hf_json(const nlohmann::json& j);
  void validate() const;  // throws on inconsistent shapes
  int64_t num_parameters() const;
  // K and V for all layers, per token, at the given element size.
  size_t kv_bytes_per_token(size_t elem_bytes) const;
};

}  // namespace tessera
