#pragma once
// The layers a Llama-family model is built from. Each holds its uploaded weights and issues
// its ops; LlamaModel strings them together. Activation buffers belong to the caller (one
// set per model, sized for the largest step), so the layers are stateless between steps.
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/linear.h"
#include "model/model_config.h"
#include "model/tp_shard.h"
#include "model/weights.h"

namespace tessera {

// The named tensor after checking its shape ([1, cols] for vectors); throws kCorruptFile.
const HostTensor& checked_weight(const WeightSet& weights, const std::string& name, int64_t rows,
                                 int64_t cols);
// Uploads the named tensor after checking its shape.
Weight load_weight(Ops& ops, const WeightSet& weights, const std::string& name, int64_t rows,
                   int64_t cols);

// Token embedding into the residual stream (residual_dtype()).
struct Embedding {
  Weight table;  // [vocab, dim]
  void forward(Ops& ops, void* residual) const { ops.embedding(table, residual); }
};

// residual += pending (when not null), then out = rms_norm(residual) * gamma.
struct RmsNorm {
  Weight gamma;  // [1, dim]
  float eps = 1e-5f;
  void forward(Ops& ops, void* residual, const void* pending, void* out) const {
    ops.add_rms_norm(residual, pending, gamma, eps, out);
  }
};

// Per-step activation buffers the layers write through (backend memory).
struct LayerScratch {
  void* q = nullptr;     // [T, num_heads * head_dim]
  void* k = nullptr;     // [T, num_kv_heads * head_dim]
  void* v = nullptr;     // [T, num_kv_heads * head_dim]
  void* attn = nullptr;  // [T, num_heads * head_dim]
  void* gate = nullptr;  // [T, ffn]
  void* up = nullptr;    // [T, ffn]
};

// GQA attention: Q/K/V projections, RoPE, the paged KV store and read, output projection.
struct Attention {
  Linear wq, wk, wv, wo;
  AttentionParams params;
  RopeConfig rope;
  bool all_reduce = false;  // tensor parallel: sum the ranks' partial output projections
  // xn: [T, dim] -> out: [T, dim]; layer indexes the cache's pools.
  void forward(Ops& ops, KvCache& kv, int layer, const void* xn, int rows, const LayerScratch& s,
               void* out) const;
};

// SwiGLU MLP: down(silu(gate x) * up x).
struct Mlp {
  Linear gate, up, down;
  bool all_reduce = false;  // tensor parallel: sum the ranks' partial down projections
  void forward(Ops& ops, const void* xn, int rows, const LayerScratch& s, void* out) const;
};

struct DecoderLayer {
  RmsNorm attn_norm;
  Attention attn;
  RmsNorm ffn_norm;
  Mlp mlp;
};

// Loads decoder layer i ("blk.<i>.*" tensors) for this (whole-model) config. With a shard,
// only this rank's slices are uploaded (model/tp_shard.h); `keep` holds the host copies that
// column slices needed, for backends that borrow host memory.
DecoderLayer load_decoder_layer(Ops& ops, const WeightSet& weights, const ModelConfig& c, int i,
                                const TpShard* shard = nullptr,
                                std::vector<std::shared_ptr<void>>* keep = nullptr);

}  // namespace tessera
