#pragma once
// Which models the CUDA backend can run (CudaOps::unsupported_reason), as a plain function
// so it is testable without a GPU.
#include <string>

#include "kernels/ops.h"

namespace tessera::cuda {

// Empty when supported, else the model's offending value and what is supported.
std::string unsupported_reason(const ModelNeeds& needs, bool deterministic);

}  // namespace tessera::cuda
