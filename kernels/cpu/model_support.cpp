#include "kernels/cpu/model_support.h"

#include "kernels/model_needs_check.h"

namespace tessera::cpu {

std::string unsupported_reason(const ModelNeeds& m) {
  const auto n = [](int64_t v) { return std::to_string(v); };
  if (m.head_dim <= 0 || m.head_dim % 2 != 0) {
    return "head_dim " + n(m.head_dim) + " (RoPE rotates pairs: it must be even)";
  }
  if (std::string common = common_unsupported_reason(m); !common.empty()) return common;
  for (const ModelNeeds::WeightFormat& f : m.weight_formats) {
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
