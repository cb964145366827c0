#pragma once
// The backend of the commands that run a model in-process without the engine (`generate`,
// `perplexity`): their shared --device / --threads / --gguf-weights handling.
#include <memory>
#include <string>

#include "kernels/ops.h"

namespace CLI {
class App;
}

namespace tessera {

struct LocalBackendArgs {
  std::string device = "auto";        // auto | cpu | cuda
  int threads = 0;                    // CPU threads (0 = all cores)
  std::string gguf_weights = "bf16";  // GPU: bf16 | blocks (EngineConfig::gguf_weights)
};

// Registers --device, --threads and --gguf-weights on cmd.
void add_local_backend_options(CLI::App& cmd, LocalBackendArgs& args);
// The backend the options name, GGUF handling set (before any upload).
std::unique_ptr<Ops> make_local_backend(const LocalBackendArgs& args);

}  // namespace tessera
