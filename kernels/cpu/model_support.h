#pragma once
// Which models the CPU backend can run (Ops::unsupported_reason for CpuOps).
#include <string>

#include "kernels/ops.h"

namespace tessera::cpu {

// Empty when supported, else the model's offending value and what is supported.
std::string unsupported_reason(const ModelNeeds& needs);

}  // namespace tessera::cpu
