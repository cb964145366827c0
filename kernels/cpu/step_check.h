#pragma once
// Validation of a StepLayout against the KV pool, so a malformed step is rejected with a
// clear Error(kInvalidArgument) before any kernel reads through its indices.
#include "kernels/ops.h"

namespace tessera::cpu {

void check_step_layout(const StepLayout& layout, int num_blocks, int block_size);

}  // namespace tessera::cpu
