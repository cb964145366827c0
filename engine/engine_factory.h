#pragma once
#include <memory>

#include "engine/engine.h"
#include "engine/engine_config.h"

namespace tessera {

// Validates the config, loads the model (logging progress), picks the backend (device auto:
// CUDA when a GPU is available, else CPU), sizes the KV cache (logging the arithmetic, and
// failing fast with it when not even one max_model_len sequence fits) and starts the engine
// thread. Throws Error on any failure.
std::unique_ptr<Engine> create_engine(const EngineConfig& config);

}  // namespace tessera
