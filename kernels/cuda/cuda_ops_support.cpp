// Which models the CUDA backend can run, checked before anything is allocated (the engine
// factory calls Ops::check_supported), so an unsupported model fails at load with its value
// and what is supported instead of at its first step.
#include <string>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/model_support.h"

namespace tessera::cuda {

std::string CudaOps::unsupported_reason(const ModelNeeds& needs) const {
  return cuda::unsupported_reason(needs, deterministic_);
}

std::string unsupported_reason(const ModelNeeds& m, bool deterministic) {
  const auto n = [](int64_t v) { return std::to_string(v); };
  if (m.head_dim != 64 && m.head_dim != 128) {
    return "head_dim " + n(m.head_dim) + " (the CUDA attention kernels support 64 and 128)";
  }
  const int rotary = m.rotary_dim > 0 ? m.rotary_dim : m.head_dim;
  if (rotary % 2 != 0 || rotary > m.head_dim) {
    return "rotary_dim " + n(rotary) + " (must be even and at most head_dim " + n(m.head_dim) + ")";
  }
  if (m.num_kv_heads <= 0 || m.num_heads % m.num_kv_heads != 0) {
    return "num_heads " + n(m.num_heads) + " is not a multiple of num_kv_heads " +
           n(m.num_kv_heads);
  }
  if (m.hidden_size % 8 != 0) {
    return "hidden_size " + n(m.hidden_size) +
           " (the CUDA norm and embedding kernels need a multiple of 8)";
  }
  if (deterministic && m.intermediate_size % 8 != 0) {
    return "intermediate_size " + n(m.intermediate_size) +
           " with --deterministic (its GEMM needs row lengths that are multiples of 8)";
  }
  for (const ModelNeeds::WeightFormat& f : m.weight_formats) {
    const QuantKind kind = f.scheme.kind;
    if (kind == QuantKind::kInt4 && f.cols % 2 != 0) {
      return "int4 weight " + f.example + " with an odd row length " + n(f.cols);
    }
  }
  return {};
}

}  // namespace tessera::cuda
