#pragma once
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "kernels/ops.h"
#include "model/model_config.h"
#include "model/tp_shard.h"
#include "model/weights.h"

namespace tessera {

// Llama-family model written against Ops as a short list of layers (model/llama_layers.h):
// embedding, per block RMSNorm + GQA attention over the paged KV cache + RMSNorm + SwiGLU
// MLP, final norm, tied or untied LM head. Every projection is a Linear whose weight carries
// its quantization scheme. The model owns its KV cache (kernels/kv_cache.h), so a second
// model on the same Ops (a draft) keeps its own. Not thread-safe: one engine thread calls it.
class LlamaModel {
 public:
  // on_layer(done, total) after each layer's weights reach the backend (load progress).
  using LayerProgress = std::function<void(int done, int total)>;
  // shard: this rank's part under tensor parallelism (model/tp_shard.h); config() is then
  // the shard's (its heads and MLP rows). Rank 0 alone computes logits (the LM head whole);
  // other ranks return no logits. ops must have joined the collectives already.
  LlamaModel(const ModelConfig& config, const WeightSet& weights, Ops& ops,
             const LayerProgress& on_layer = {}, const TpShard* shard = nullptr);
  ~LlamaModel();

  // Creates this model's paged KV cache through the backend (replacing any earlier one).
  // Must be called before forward. dtype kAuto: the backend's default.
  // max_seq_len: the longest sequence it will hold (0 = unknown; see KvCacheShape).
  void init_kv_cache(int num_blocks, int block_size, KvDtype dtype = KvDtype::kAuto,
                     int max_seq_len = 0);
  KvCache& kv_cache();
  // Copy-on-write block copies in this model's cache.
  void copy_kv_blocks(std::span<const std::pair<int32_t, int32_t>> src_dst);
  // Runs one step; logits: [layout.logit_rows.size(), vocab] on the host.
  void forward(const StepLayout& layout, std::vector<float>& logits);
  // Runs one step and leaves the logits in backend memory: [layout.logit_rows.size(), vocab]
  // f32, valid until the next forward. The work may still be in flight (the backend's own
  // stream orders what follows); nullptr when the step has no logit rows.
  // num_layers > 0 runs only the first num_layers decoder layers before the final norm and
  // LM head: the early-exit draft of self-speculative decoding (it writes those layers' KV).
  const float* forward_on_device(const StepLayout& layout, int num_layers = 0);

  const ModelConfig& config() const { return config_; }
  Ops& ops() { return ops_; }
  // KV bytes per token (all layers, K and V, scales) for a cache of this dtype on this backend.
  size_t kv_bytes_per_token(KvDtype dtype = KvDtype::kAuto) const;

 private:
  struct Impl;
  void run_step(const StepLayout& layout, int num_layers);
  ModelConfig config_;
  Ops& ops_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
