#include "kernels/cpu/model_support.h"

namespace tessera::cpu {

std::string unsupported_reason(const ModelNeeds& m) {
  const auto n = [](int64_t v) { return std::to_string(v); };
  if (m.head_dim <= 0 || m.head_dim % 2 != 0) {
    return "head_dim " + n(m.head_dim) + " (RoPE rotates pairs: it must be even)";
  }
  const int rotary = m.rotary_dim > 0 ? m.rotary_dim : m.head_dim;
  if (rotary % 2 != 0 || rotary > m.head_dim) {
    return "rotary_dim " + n(rotary) + " (must be even and at most head_dim " + n(m.head_dim) + ")";
  }
  if (m.num_kv_heads <= 0 || m.num_heads % m.num_kv_heads != 0) {
    return "num_heads " + n(m.num_heads) + " is not a multiple of num_kv_heads " +
           n(m.num_kv_heads);
  }
  for (const ModelNeeds::WeightFormat& f : m.weight_formats) {
    if (f.scheme.kind == QuantKind::kInt4 && f.cols % 2 != 0) {
      return "int4 weight " + f.example + " with an odd row length " + n(f.cols);
    }
    const bool blocks = !f.scheme.quantized() || f.scheme.kind == QuantKind::kGguf;
    if (blocks && f.cols % dtype_block_elems(f.dtype) != 0) {
      return std::string("weight ") + f.example + " of type " + dtype_name(f.dtype) + " with " +
             n(f.cols) + " columns (a multiple of its block of " + n(dtype_block_elems(f.dtype)) +
             " is needed)";
    }
  }
  return {};
}

}  // namespace tessera::cpu
