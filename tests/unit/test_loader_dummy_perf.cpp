// Hidden (run with "[loader-perf]"): how long a dummy Llama-3.1-8B takes to build, and that
// its host memory stays near one tensor (the shared pool), not the model's 16 GB.
#include <catch2/catch.hpp>

#include <chrono>

#include "model/loader.h"

TEST_CASE("loader: dummy Llama-3.1-8B build time", "[.][loader-perf]") {
  const auto start = std::chrono::steady_clock::now();
  const tessera::LoadedModel m =
      tessera::load_model(std::string("dummy:") + TESSERA_SOURCE_DIR +
                          "/configs/models/llama-3.1-8b.json?dtype=bf16");
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(m.weights.tensors.size() == 3 + 9 * 32);
  CHECK(m.config.num_parameters() == 8030261248LL);
  WARN("dummy llama-3.1-8b bf16: " << secs << " s");
}
