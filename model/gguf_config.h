#pragma once
// ModelConfig of a GGUF `llama` model from its metadata (llama.* keys) and tensor table.
#include "model/gguf_file.h"
#include "model/model_config.h"

namespace tessera {

// Throws Error(kUnsupported) for other architectures or RoPE scalings we cannot express,
// Error(kCorruptFile) naming the file and key for missing or inconsistent metadata.
ModelConfig model_config_from_gguf(const GgufFile& gguf);

}  // namespace tessera
