#pragma once
// Read-only memory map of a whole file, shared by the GGUF and safetensors readers.
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace tessera {

struct MappedFile {
  std::shared_ptr<void> mapping;  // munmaps when the last owner goes; empty for empty files
  std::span<const uint8_t> bytes;
};

// Throws Error(kNotFound) for a missing file, Error(kInvalidArgument) for a non-regular one.
MappedFile map_file(const std::string& path);

}  // namespace tessera
