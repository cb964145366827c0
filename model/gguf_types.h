#pragma once
// Type tables shared by the GGUF reader, the GGUF config reader and tests that write GGUFs.
#include <cstddef>
#include <cstdint>

#include "kernels/dtype.h"
#include "model/gguf_file.h"

namespace tessera {

struct GgmlTypeTraits {
  const char* name;
  int block_elems;  // values per block
  int block_bytes;  // bytes per block
  bool supported;   // Tessera computes with it (dtype is meaningful)
  DType dtype;
};

// nullptr for a type id ggml does not define (or no longer defines).
const GgmlTypeTraits* ggml_type_traits(uint32_t ggml_type);
// The ggml type id that stores `dtype`.
uint32_t ggml_type_of(DType dtype);
// Bytes of one scalar of a GGUF value type; 0 for string, array and unknown types.
size_t gguf_scalar_size(uint32_t type);

}  // namespace tessera
