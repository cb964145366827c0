#pragma once
// safetensors reader: u64 header length N | N bytes of JSON | data. The JSON maps each tensor
// name to {dtype, shape, data_offsets: [begin, end)} relative to the data, plus an optional
// "__metadata__" map of strings. mmap'd; every offset is checked against the file.
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace tessera {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;
  size_t nbytes = 0;
  const uint8_t* data = nullptr;
};

class SafetensorsFile {
 public:
  // Throws Error(kCorruptFile) naming the file, the tensor and the reason on bad input.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // `bytes` must outlive the result.
  static std::shared_ptr<SafetensorsFile> parse(std::span<const uint8_t> bytes,
                                                const std::string& name);

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::shared_ptr<void> mapping() const { return mapping_; }

 private:
  std::string path_;
  std::map<std::string, SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
  std::shared_ptr<void> mapping_;
};

// Bytes per element of a safetensors dtype name; 0 when unknown.
size_t safetensors_dtype_size(const std::string& dtype);

}  // namespace tessera
