#pragma once
// Builds GGUF bytes in memory: small test models, fuzzer seeds, and unit tests of the reader.
// Values are written with the GGUF type the caller names, so every value type can be produced.
#include <cstdint>
#include <string>
#include <vector>

#include "model/gguf_file.h"

namespace tessera {

class GgufWriter {
 public:
  // A scalar or string; `type` picks the on-disk width (uint8 .. float64).
  void set(const std::string& key, GgufType type, const GgufValue& value);
  // An array whose elements (possibly arrays themselves) carry their own type in elem_type.
  void set_array(const std::string& key, const GgufArray& array);
  void set_u32(const std::string& key, uint32_t v) { set(key, GgufType::kUint32, uint64_t{v}); }
  void set_f32(const std::string& key, float v) { set(key, GgufType::kFloat32, double{v}); }
  void set_string(const std::string& key, const std::string& v) { set(key, GgufType::kString, v); }
  void set_string_array(const std::string& key, const std::vector<std::string>& v);

  // dims in GGUF order (dims[0] innermost); data must hold the whole tensor.
  void add_tensor(const std::string& name, std::vector<int64_t> dims, uint32_t ggml_type,
                  std::vector<uint8_t> data);

  std::vector<uint8_t> build(uint32_t version = 3, uint32_t alignment = 32) const;
  // Writes build() to a file; throws Error on I/O failure.
  void write(const std::string& path, uint32_t version = 3, uint32_t alignment = 32) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    uint32_t ggml_type;
    std::vector<uint8_t> data;
  };
  std::vector<uint8_t> kv_bytes_;
  uint64_t num_kv_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace tessera
