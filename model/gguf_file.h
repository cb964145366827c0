#pragma once
// GGUF (v2, v3) reader: header, metadata key/values, tensor infos, aligned data, mmap.
// Every malformed input throws Error(kCorruptFile or kUnsupported) whose message names the
// file, the key/tensor or byte offset, and the reason. Never reads out of bounds.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "kernels/dtype.h"

namespace tessera {

struct GgufArray;
using GgufValue =
    std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>>;
struct GgufArray {
  uint32_t elem_type = 0;  // GGUF value type id of the elements
  std::vector<GgufValue> values;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::string type_name;  // ggml's name for ggml_type, e.g. "q4_1", "q6_K"
  bool supported = true;  // false: a known ggml type Tessera cannot compute with (dtype unset)
  DType dtype = DType::kF32;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the innermost (contiguous) axis
  uint64_t offset = 0;        // relative to the data section
  size_t nbytes = 0;
  const uint8_t* data = nullptr;

  int64_t num_elements() const;
};

// GGUF metadata value type ids (the spec's gguf_metadata_value_type).
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* gguf_type_name(uint32_t type);
// ggml's name for a tensor type id ("f32", "q4_1", "q6_K", ...); nullptr when unknown.
const char* ggml_type_name(uint32_t ggml_type);

class GgufFile {
 public:
  // mmaps the file; throws Error naming the path on any problem.
  static std::shared_ptr<GgufFile> open(const std::string& path);
  // Parses bytes already in memory (used by the fuzzer); `bytes` must outlive the result.
  static std::shared_ptr<GgufFile> parse(std::span<const uint8_t> bytes, const std::string& name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  uint64_t file_size() const { return file_size_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  // Typed getters return nullopt when the key is absent and throw when it has the wrong type.
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;

 private:
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  uint64_t file_size_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
  std::shared_ptr<void> mapping_;  // keeps the mmap alive
  friend class GgufParser;
};

}  // namespace tessera
