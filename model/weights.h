#pragma once
// Host-side weights of a loaded model, keyed by canonical (GGUF) tensor names:
//   token_embd.weight, output_norm.weight, output.weight (absent when tied),
//   blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_up,ffn_down}.weight
// Q/K rows follow the layout named by ModelConfig::rope.neox (GGUF llama: pairs; HF: halves).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/model_config.h"

namespace tessera {

class Tokenizer;

struct WeightSet {
  std::map<std::string, HostTensor> tensors;
  std::vector<std::shared_ptr<void>> storage;  // mmaps and buffers the views point into

  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  // Throws Error(kCorruptFile) naming the missing tensor.
  const HostTensor& get(const std::string& name) const;
};

struct LoadedModel {
  std::string source;  // path or spec it was loaded from
  ModelConfig config;
  WeightSet weights;
  std::shared_ptr<Tokenizer> tokenizer;  // null for dummy models without a tokenizer
};

// path: a .gguf file, a Hugging Face folder (config.json + safetensors), or
// "dummy:<model config json>" for random weights (seed fixed, std 0.02).
LoadedModel load_model(const std::string& path);

}  // namespace tessera
