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
using GgufValue = std::variant<uint64_t, int64_t, double, bool, std::string,
                               std::shared_ptr<GgufArray>>;
struct GgufArray {
  uint32_t elem_type = 0;  // GGUF value type id of the elements
  std::vector<GgufValue> values;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  DType dtype = DType::kF32;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the innermost (contiguous) axis
  uint64_t offset = 0;        // relative to the data section
  size_t nbytes = 0;
  const uint8_t* data = nullptr;
};

class GgufFile {
 public:
  // mmaps the file; throws Error naming the path on any problem.
  static std::shared_ptr<GgufFile> open(const std::string& path);
  // Parses bytes already in memory (used by the fuzzer); `bytes` must outlive the result.
  static std::shared_ptr<GgufFile> parse(std::span<const uint8_t> bytes, const std::string& name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
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
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::shared_ptr<void> mapping_;  // keeps the mmap alive
  friend class GgufParser;
};

}  // namespace tessera
