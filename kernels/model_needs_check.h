#pragma once
// The model checks every backend shares (RoPE pairs, the GQA ratio, packed int4 rows); each
// backend's unsupported_reason adds its own limits on top.
#include <string>

#include "kernels/ops.h"

namespace tessera {

// Empty when the shapes are sound, else the offending value and why.
std::string common_unsupported_reason(const ModelNeeds& needs);

}  // namespace tessera
