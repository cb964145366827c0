#include "model/tp_model.h"

#include <numeric>

#include "kernels/weight_scheme.h"
#include "model/quant_online.h"

namespace tessera {

// The MLP split must not cut a storage block or a quantization group of the down projection
// (the row-parallel weight sliced by columns).
int64_t tp_ffn_alignment(const WeightSet& w) {
  const std::string name = "blk.0.ffn_down.weight";
  if (!w.has(name)) return 1;
  const HostTensor& t = w.get(name);
  int64_t a = 1;
  switch (t.scheme.kind) {
    case QuantKind::kInt4:
    case QuantKind::kInt8:
      a = t.g_idx == nullptr && t.scheme.group_size > 0 ? t.scheme.group_size : 2;
      break;
    case QuantKind::kFp8:
      a = 1;
      break;
    default:
      a = dtype_block_elems(t.dtype);
  }
  return a;
}

TpModel load_tp_model(const std::string& path, const std::string& quantization, Ops& ops, int rank,
                      int world) {
  TpModel m;
  m.loaded = load_model(path);
  if (!quantization.empty() && quantization != "none")
    quantize_loaded_model(m.loaded, parse_online_quant(quantization));
  if (world > 1) {
    m.shard = make_tp_shard(m.loaded.config, rank, world, tp_ffn_alignment(m.loaded.weights));
    m.model = std::make_unique<LlamaModel>(m.loaded.config, m.loaded.weights, ops,
                                           LlamaModel::LayerProgress{}, &m.shard);
  } else {
    m.shard.num_heads = m.loaded.config.num_heads;
    m.shard.num_kv_heads = m.loaded.config.num_kv_heads;
    m.model = std::make_unique<LlamaModel>(m.loaded.config, m.loaded.weights, ops);
  }
  return m;
}

}  // namespace tessera
