#include "model/llama_layers.h"

#include <cmath>

#include "common/error.h"

namespace tessera {

const HostTensor& checked_weight(const WeightSet& weights, const std::string& name, int64_t rows,
                                 int64_t cols) {
  const HostTensor& t = weights.get(name);
  if (t.rows != rows || t.cols != cols) {
    throw Error(ErrorKind::kCorruptFile,
                "tensor '" + name + "' has shape [" + std::to_string(t.rows) + ", " +
                    std::to_string(t.cols) + "], expected [" + std::to_string(rows) + ", " +
                    std::to_string(cols) + "]");
  }
  return t;
}

Weight load_weight(Ops& ops, const WeightSet& weights, const std::string& name, int64_t rows,
                   int64_t cols) {
  return ops.upload(checked_weight(weights, name, rows, cols));
}

void Attention::forward(Ops& ops, KvCache& kv, int layer, const void* xn, int rows,
                        const LayerScratch& s, void* out) const {
  const Linear* qkv[] = {&wq, &wk, &wv};
  void* const qkv_out[] = {s.q, s.k, s.v};
  linear_multi(ops, xn, rows, qkv, qkv_out);
  ops.rope_store_kv(kv, s.q, s.k, s.v, layer, params, rope);
  ops.paged_attention(kv, s.q, layer, params, s.attn);
  wo.forward(ops, s.attn, rows, out);
  if (all_reduce) ops.all_reduce_sum(out, int64_t{rows} * wo.out_features());
}

void Mlp::forward(Ops& ops, const void* xn, int rows, const LayerScratch& s, void* out) const {
  ops.gate_up_silu(xn, rows, gate.weight(), up.weight(), s.up, s.gate);
  down.forward(ops, s.gate, rows, out);
  if (all_reduce) ops.all_reduce_sum(out, int64_t{rows} * down.out_features());
}

DecoderLayer load_decoder_layer(Ops& ops, const WeightSet& weights, const ModelConfig& c, int i,
                                const TpShard* shard, std::vector<std::shared_ptr<void>>* keep) {
  const int64_t dim = c.hidden_size, hd = c.head_dim;
  const int64_t qdim = int64_t{c.num_heads} * hd, kvdim = int64_t{c.num_kv_heads} * hd;
  const int64_t ffn = c.intermediate_size;
  const std::string p = "blk." + std::to_string(i) + ".";
  auto load = [&](const std::string& name, int64_t rows, int64_t cols) {
    return load_weight(ops, weights, p + name, rows, cols);
  };
  // Column-parallel weights keep some output rows, row-parallel ones some input columns.
  enum class Cut { kRows, kCols };
  auto load_part = [&](const std::string& name, int64_t rows, int64_t cols, Cut cut, int64_t begin,
                       int64_t end) {
    if (shard == nullptr) return load(name, rows, cols);
    const HostTensor& t = checked_weight(weights, p + name, rows, cols);
    TensorSlice s = cut == Cut::kRows ? slice_rows(t, begin, end) : slice_cols(t, begin, end);
    Weight w = ops.upload(s.view);
    if (keep != nullptr && s.storage) keep->push_back(s.storage);
    return w;
  };
  const int heads = shard ? shard->num_heads : c.num_heads;
  const int kv_heads = shard ? shard->num_kv_heads : c.num_kv_heads;
  const int64_t q0 = shard ? shard->head_begin * hd : 0, q1 = q0 + heads * hd;
  const int64_t k0 = shard ? shard->kv_head_begin * hd : 0, k1 = k0 + kv_heads * hd;
  const int64_t f0 = shard ? shard->ffn_begin : 0, f1 = shard ? shard->ffn_end : ffn;
  DecoderLayer L;
  L.attn_norm = {load("attn_norm.weight", 1, dim), c.rms_norm_eps};
  L.attn.wq = Linear(load_part("attn_q.weight", qdim, dim, Cut::kRows, q0, q1));
  L.attn.wk = Linear(load_part("attn_k.weight", kvdim, dim, Cut::kRows, k0, k1));
  L.attn.wv = Linear(load_part("attn_v.weight", kvdim, dim, Cut::kRows, k0, k1));
  L.attn.wo = Linear(load_part("attn_output.weight", dim, qdim, Cut::kCols, q0, q1));
  L.attn.params.num_heads = heads;
  L.attn.params.num_kv_heads = kv_heads;
  L.attn.params.head_dim = c.head_dim;
  L.attn.params.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  L.attn.params.sliding_window = c.sliding_window;
  L.attn.rope = c.rope;
  L.attn.all_reduce = shard != nullptr && shard->world > 1;
  L.ffn_norm = {load("ffn_norm.weight", 1, dim), c.rms_norm_eps};
  L.mlp.gate = Linear(load_part("ffn_gate.weight", ffn, dim, Cut::kRows, f0, f1));
  L.mlp.up = Linear(load_part("ffn_up.weight", ffn, dim, Cut::kRows, f0, f1));
  L.mlp.down = Linear(load_part("ffn_down.weight", dim, ffn, Cut::kCols, f0, f1));
  L.mlp.all_reduce = L.attn.all_reduce;
  return L;
}

}  // namespace tessera
