#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "kernels/ops.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace tessera {

// Llama-family forward pass (RMSNorm, RoPE, GQA attention over the paged KV cache, SwiGLU,
// tied or untied LM head) written against Ops. Not thread-safe: one engine thread calls it.
class LlamaModel {
 public:
  // on_layer(done, total) after each layer's weights reach the backend (load progress).
  using LayerProgress = std::function<void(int done, int total)>;
  LlamaModel(const ModelConfig& config, const WeightSet& weights, Ops& ops,
             const LayerProgress& on_layer = {});
  ~LlamaModel();

  // Allocates the paged KV cache in the backend. Must be called before forward.
  void init_kv_cache(int num_blocks, int block_size);
  // Runs one step; logits: [layout.logit_rows.size(), vocab] on the host.
  void forward(const StepLayout& layout, std::vector<float>& logits);
  // Runs one step and leaves the logits in backend memory: [layout.logit_rows.size(), vocab]
  // f32, valid until the next forward. The work may still be in flight (the backend's own
  // stream orders what follows); nullptr when the step has no logit rows.
  const float* forward_on_device(const StepLayout& layout);

  const ModelConfig& config() const { return config_; }
  Ops& ops() { return ops_; }
  size_t kv_bytes_per_token() const;

 private:
  struct Impl;
  void run_step(const StepLayout& layout, bool capturing);
  ModelConfig config_;
  Ops& ops_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
