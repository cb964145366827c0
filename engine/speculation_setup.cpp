#include "engine/speculation_setup.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "engine/model_proposer.h"
#include "engine/ngram_proposer.h"
#include "model/llama_model.h"

namespace tessera {
namespace {

// Measured step costs (bench/results/speculative.md). On the H200 (8B shape) a verified
// draft token costs ~7% of a decode step up to ~128 tokens per step. On the CPU a step's
// cost grows almost linearly with its rows (one row takes the fast matrix-vector path), so
// a draft token costs ~0.8 of a step and speculation rarely pays there.
int default_max_step_tokens(const std::string& device) {
  return device == "cuda" ? 128 : 8;
}
double default_verify_cost(const std::string& device) {
  return device == "cuda" ? 0.07 : 0.8;
}

}  // namespace

Speculation make_speculation(const EngineConfig& c, LlamaModel& target, LlamaModel* draft,
                             const std::string& device) {
  Speculation s;
  if (c.speculative == "none") return s;
  s.control.max_draft = c.num_speculative_tokens;
  s.control.max_step_tokens = c.speculative_max_step_tokens > 0 ? c.speculative_max_step_tokens
                                                                : default_max_step_tokens(device);
  s.control.adaptive = c.speculative_adaptive;
  s.control.verify_cost = default_verify_cost(device);
  const bool pad = device == "cuda";
  const ModelConfig& tc = target.config();
  if (c.speculative == "ngram") {
    s.proposer = std::make_unique<NgramProposer>(c.speculative_ngram_min, c.speculative_ngram_max);
  } else if (c.speculative == "early-exit") {
    int layers = c.speculative_early_exit_layers > 0 ? c.speculative_early_exit_layers
                                                     : std::max(1, tc.num_layers / 4);
    if (layers >= tc.num_layers)
      throw Error(ErrorKind::kInvalidArgument,
                  "speculative_early_exit_layers " + std::to_string(layers) +
                      " must be below the model's " + std::to_string(tc.num_layers) + " layers");
    s.proposer = std::make_unique<ModelProposer>(target, layers, false, c.block_size, pad,
                                                 static_cast<double>(layers) / tc.num_layers);
  } else if (c.speculative == "draft") {
    if (draft == nullptr) throw Error(ErrorKind::kInternal, "speculative draft without a model");
    const ModelConfig& dc = draft->config();
    if (dc.vocab_size != tc.vocab_size)
      throw Error(ErrorKind::kInvalidArgument,
                  "draft model vocabulary (" + std::to_string(dc.vocab_size) +
                      " tokens) differs from the served model's (" + std::to_string(tc.vocab_size) +
                      "); they must share the tokenizer");
    // Cost by parameter count: decode is bound by reading the weights.
    const double cost = static_cast<double>(dc.num_parameters()) /
                        std::max<double>(1.0, static_cast<double>(tc.num_parameters()));
    s.proposer = std::make_unique<ModelProposer>(*draft, 0, true, c.block_size, pad, cost,
                                                 c.max_num_batched_tokens);
  }
  s.control.draft_cost = s.proposer->draft_cost();
  spdlog::info(
      "speculative decoding: {} proposer, up to {} tokens per step ({}), off above {} step "
      "tokens",
      s.proposer->name(), s.control.max_draft, s.control.adaptive ? "adaptive" : "fixed",
      s.control.max_step_tokens);
  return s;
}

}  // namespace tessera
