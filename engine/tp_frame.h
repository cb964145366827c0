#pragma once
// What rank 0 sends the tensor-parallel workers each step: the block copies to run first
// (copy-on-write forks) and the step's layout, so every rank issues the same ops in the same
// order with the same block ids. Encoded as a flat little-endian byte string.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/ops.h"

namespace tessera {

struct TpStepFrame {
  enum class Kind : uint8_t { kStep = 1, kShutdown = 2 };
  Kind kind = Kind::kStep;
  std::vector<std::pair<int32_t, int32_t>> copies;  // (src block, dst block)
  StepLayout layout;
};

std::string encode_frame(const TpStepFrame& f);
// Throws Error(kInternal) on a frame that is truncated or inconsistent.
TpStepFrame decode_frame(const std::string& bytes);

}  // namespace tessera
