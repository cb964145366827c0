#pragma once
// Builds the proposer and the draft-length controller that EngineConfig's speculative
// options ask for (engine/proposer.h, engine/spec_decode.h).
#include <memory>
#include <string>

#include "engine/engine_config.h"
#include "engine/proposer.h"
#include "engine/spec_decode.h"

namespace tessera {

class LlamaModel;

struct Speculation {
  std::unique_ptr<Proposer> proposer;  // nullptr: speculation off
  SpecControlConfig control;
};

// target: the served model; draft: the loaded --draft-model (speculative == "draft" only).
// device: "cpu" or "cuda" (picks the measured default for max_step_tokens).
Speculation make_speculation(const EngineConfig& config, LlamaModel& target, LlamaModel* draft,
                             const std::string& device);

}  // namespace tessera
