// Which models the CUDA backend can run, checked before anything is allocated (the engine
// factory calls Ops::check_supported), so an unsupported model fails at load with its value
// and what is supported instead of at its first step.
#include <string>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/model_support.h"
#include "kernels/model_needs_check.h"

namespace tessera::cuda {

std::string CudaOps::unsupported_reason(const ModelNeeds& needs) const {
  return cuda::unsupported_reason(needs, deterministic_);
}

std::string unsupported_reason(const ModelNeeds& m, bool deterministic) {
  const auto n = [](int64_t v) { return std::to_string(v); };
  if (m.head_dim != 64 && m.head_dim != 128) {
    return "head_dim " + n(m.head_dim) + " (the CUDA attention kernels support 64 and 128)";
  }
  if (std::string common = common_unsupported_reason(m); !common.empty()) return common;
  if (m.hidden_size % 8 != 0) {
    return "hidden_size " + n(m.hidden_size) +
           " (the CUDA norm and embedding kernels need a multiple of 8)";
  }
  if (deterministic && m.intermediate_size % 8 != 0) {
    return "intermediate_size " + n(m.intermediate_size) +
           " with --deterministic (its GEMM needs row lengths that are multiples of 8)";
  }
  return {};
}

}  // namespace tessera::cuda
