#include "model/llama_layers.h"

#include <cmath>

#include "common/error.h"

namespace tessera {

Weight load_weight(Ops& ops, const WeightSet& weights, const std::string& name, int64_t rows,
                   int64_t cols) {
  const HostTensor& t = weights.get(name);
  if (t.rows != rows || t.cols != cols) {
    throw Error(ErrorKind::kCorruptFile,
                "tensor '" + name + "' has shape [" + std::to_string(t.rows) + ", " +
                    std::to_string(t.cols) + "], expected [" + std::to_string(rows) + ", " +
                    std::to_string(cols) + "]");
  }
  return ops.upload(t);
}

void Attention::forward(Ops& ops, KvCache& kv, int layer, const void* xn, int rows,
                        const LayerScratch& s, void* out) const {
  const Linear* qkv[] = {&wq, &wk, &wv};
  void* const qkv_out[] = {s.q, s.k, s.v};
  linear_multi(ops, xn, rows, qkv, qkv_out);
  ops.rope_store_kv(kv, s.q, s.k, s.v, layer, params, rope);
  ops.paged_attention(kv, s.q, layer, params, s.attn);
  wo.forward(ops, s.attn, rows, out);
}

void Mlp::forward(Ops& ops, const void* xn, int rows, const LayerScratch& s, void* out) const {
  ops.gate_up_silu(xn, rows, gate.weight(), up.weight(), s.up, s.gate);
  down.forward(ops, s.gate, rows, out);
}

DecoderLayer load_decoder_layer(Ops& ops, const WeightSet& weights, const ModelConfig& c, int i) {
  const int64_t dim = c.hidden_size, qdim = int64_t{c.num_heads} * c.head_dim;
  const int64_t kvdim = int64_t{c.num_kv_heads} * c.head_dim, ffn = c.intermediate_size;
  const std::string p = "blk." + std::to_string(i) + ".";
  auto load = [&](const std::string& name, int64_t rows, int64_t cols) {
    return load_weight(ops, weights, p + name, rows, cols);
  };
  DecoderLayer L;
  L.attn_norm = {load("attn_norm.weight", 1, dim), c.rms_norm_eps};
  L.attn.wq = Linear(load("attn_q.weight", qdim, dim));
  L.attn.wk = Linear(load("attn_k.weight", kvdim, dim));
  L.attn.wv = Linear(load("attn_v.weight", kvdim, dim));
  L.attn.wo = Linear(load("attn_output.weight", dim, qdim));
  L.attn.params.num_heads = c.num_heads;
  L.attn.params.num_kv_heads = c.num_kv_heads;
  L.attn.params.head_dim = c.head_dim;
  L.attn.params.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  L.attn.params.sliding_window = c.sliding_window;
  L.attn.rope = c.rope;
  L.ffn_norm = {load("ffn_norm.weight", 1, dim), c.rms_norm_eps};
  L.mlp.gate = Linear(load("ffn_gate.weight", ffn, dim));
  L.mlp.up = Linear(load("ffn_up.weight", ffn, dim));
  L.mlp.down = Linear(load("ffn_down.weight", dim, ffn));
  return L;
}

}  // namespace tessera
