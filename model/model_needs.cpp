#include "model/model_needs.h"

#include <algorithm>

namespace tessera {

ModelNeeds model_needs(const std::string& model_name, const ModelConfig& c,
                       const WeightSet& weights) {
  ModelNeeds n;
  n.model = model_name;
  n.hidden_size = c.hidden_size;
  n.intermediate_size = c.intermediate_size;
  n.num_heads = c.num_heads;
  n.num_kv_heads = c.num_kv_heads;
  n.head_dim = c.head_dim;
  n.rotary_dim = c.rope.rotary_dim;
  n.sliding_window = c.sliding_window;
  for (const auto& [name, t] : weights.tensors) {
    if (t.rows <= 1) continue;  // norm vectors: every backend converts them to f32
    // One entry per (storage, row length): the few shapes of a model, each checked once.
    const bool seen = std::any_of(
        n.weight_formats.begin(), n.weight_formats.end(), [&t](const ModelNeeds::WeightFormat& f) {
          return f.dtype == t.dtype && f.scheme.kind == t.scheme.kind && f.cols == t.cols;
        });
    if (!seen) n.weight_formats.push_back({t.dtype, t.scheme, name, t.cols});
  }
  return n;
}

}  // namespace tessera
