#pragma once
// The default model (models/SmolLM2-135M-Instruct.Q4_1.gguf, made by scripts/setup.sh) loaded
// on the CPU backend, for unit tests that need real weights. A missing file fails the test
// (REQUIRE), it never skips it.
#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <string>

#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/weights.h"

namespace tessera::test {

struct DefaultModel {
  LoadedModel loaded;
  std::unique_ptr<Ops> ops;
  std::unique_ptr<LlamaModel> model;
};

// threads: CPU threads (0 = all cores); deterministic: set on the backend before upload.
inline std::unique_ptr<DefaultModel> load_default_model(int threads = 0,
                                                        bool deterministic = false) {
  const std::string path =
      std::string(TESSERA_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  INFO("needs " << path << " (scripts/setup.sh makes it)");
  REQUIRE((std::filesystem::exists(path)));
  auto m = std::make_unique<DefaultModel>();
  m->loaded = load_model(path);
  m->ops = make_cpu_ops(threads);
  m->ops->set_deterministic(deterministic);
  m->model = std::make_unique<LlamaModel>(m->loaded.config, m->loaded.weights, *m->ops);
  return m;
}

}  // namespace tessera::test
