#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera {

// Storage types of weights and activations. Quantized types follow the GGUF block layouts:
//   Q8_0: 32 values = fp16 scale + 32 x int8                      (34 bytes)
//   Q4_0: 32 values = fp16 scale + 16 bytes of 4-bit (v - 8)      (18 bytes)
//   Q4_1: 32 values = fp16 scale + fp16 min + 16 bytes of 4-bit   (20 bytes)
// In a Q4 block, byte j holds value j in its low nibble and value j + 16 in its high nibble.
enum class DType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1 };

int dtype_block_elems(DType t);                 // values per block (1 for float types)
int dtype_block_bytes(DType t);                 // bytes per block
size_t dtype_row_bytes(DType t, int64_t cols);  // cols must be a multiple of the block
bool dtype_is_quantized(DType t);
const char* dtype_name(DType t);

}  // namespace tessera
