#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera {

// Storage types of weights and activations. Quantized types follow the GGUF block layouts:
//   Q8_0: 32 values = fp16 scale + 32 x int8                      (34 bytes)
//   Q4_0: 32 values = fp16 scale + 16 bytes of 4-bit (v - 8)      (18 bytes)
//   Q4_1: 32 values = fp16 scale + fp16 min + 16 bytes of 4-bit   (20 bytes)
// In a Q4 block, byte j holds value j in its low nibble and value j + 16 in its high nibble.
// K-quants: 256-value super-blocks of 8 or 16 sub-blocks with their own 6- or 8-bit scales
// (llama.cpp's k_quants; kernels/dequant.cpp decodes them, following ggml-quants.c):
//   Q4_K: fp16 d, fp16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles   (144 bytes)
//   Q5_K: as Q4_K plus 32 bytes of fifth bits before the nibbles                   (176 bytes)
//   Q6_K: 128 bytes low nibbles, 64 bytes high 2 bits, 16 int8 scales, fp16 d       (210 bytes)
enum class DType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1, kQ4_K, kQ5_K, kQ6_K };

int dtype_block_elems(DType t);                 // values per block (1 for float types)
int dtype_block_bytes(DType t);                 // bytes per block
size_t dtype_row_bytes(DType t, int64_t cols);  // cols must be a multiple of the block
bool dtype_is_quantized(DType t);
bool dtype_is_kquant(DType t);  // Q4_K, Q5_K, Q6_K: 256-value super-blocks
const char* dtype_name(DType t);

}  // namespace tessera
