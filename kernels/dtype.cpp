#include "kernels/dtype.h"

namespace tessera {

int dtype_block_elems(DType t) {
  switch (t) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
      return 32;
    default:
      return 1;
  }
}

int dtype_block_bytes(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kQ8_0:
      return 34;
    case DType::kQ4_0:
      return 18;
    case DType::kQ4_1:
      return 20;
  }
  return 0;
}

size_t dtype_row_bytes(DType t, int64_t cols) {
  return static_cast<size_t>(cols / dtype_block_elems(t)) * dtype_block_bytes(t);
}

bool dtype_is_quantized(DType t) {
  return dtype_block_elems(t) > 1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
    case DType::kQ8_0:
      return "q8_0";
    case DType::kQ4_0:
      return "q4_0";
    case DType::kQ4_1:
      return "q4_1";
  }
  return "?";
}

}  // namespace tessera
