#include "kernels/weight_scheme.h"

#include <algorithm>

namespace tessera {

const char* quant_kind_name(QuantKind k) {
  switch (k) {
    case QuantKind::kDense:
      return "dense";
    case QuantKind::kGguf:
      return "gguf";
    case QuantKind::kFp8:
      return "fp8";
    case QuantKind::kInt8:
      return "int8";
    case QuantKind::kInt4:
      return "int4";
  }
  return "?";
}

int64_t quant_num_groups(const QuantScheme& s, int64_t cols, const int32_t* g_idx) {
  if (s.kind != QuantKind::kInt8 && s.kind != QuantKind::kInt4) return 1;
  if (s.act_order && g_idx != nullptr) {
    int32_t m = 0;
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, g_idx[c]);
    return int64_t{m} + 1;
  }
  if (s.group_size <= 0) return 1;
  return (cols + s.group_size - 1) / s.group_size;
}

}  // namespace tessera
