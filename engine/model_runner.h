#pragma once
// ModelRunner: executes one StepPlan on the model. It turns the plan into the backend's
// StepLayout (tokens, positions, slot mapping from block tables, CSR offsets, the rows that
// need logits), runs copy-on-write block copies and the forward pass, and samples one token
// for every sequence whose plan entry says `sample`.
//
// Not thread-safe: the engine thread owns it.
#include <optional>
#include <span>
#include <vector>

#include "engine/request.h"
#include "engine/sampler.h"
#include "engine/step_layout.h"
#include "kernels/ops.h"
#include "scheduler/scheduler.h"

namespace tessera {

class LlamaModel;

// What the sampler needs to know about one sequence; spans must stay valid during execute().
struct SeqSampling {
  const SamplingParams* params = nullptr;
  std::span<const int32_t> prompt;
  std::span<const int32_t> output;  // generated so far by this sequence (choice)
  uint64_t seed = 0;                // the choice's seed
};

// Implemented by the engine's request table.
class SamplingSource {
 public:
  virtual ~SamplingSource() = default;
  virtual SeqSampling sampling_for(SeqId id) const = 0;
};

struct StepOutput {
  std::vector<SampledToken> sampled;                  // plan order, one per sampling seq
  std::vector<std::optional<TokenLogprob>> logprobs;  // aligned with sampled
  std::vector<float> logits;                          // [sampled.size(), vocab], raw
  int vocab = 0;

  // Raw logits of the i-th sampled sequence (n > 1 samples its other choices from it).
  std::span<const float> row(size_t i) const {
    return {logits.data() + i * static_cast<size_t>(vocab), static_cast<size_t>(vocab)};
  }
};

// What the engine loop calls: `out = executor.execute(plan)`. ModelRunner is the real one;
// tests substitute a scripted executor to drive the loop without a model.
class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  virtual StepOutput execute(const StepPlan& plan) = 0;
};

class ModelRunner final : public StepExecutor {
 public:
  ModelRunner(LlamaModel& model, int block_size, const SamplingSource& source);

  // Runs the plan's copies and forward pass, then samples. An empty plan does nothing.
  StepOutput execute(const StepPlan& plan) override;

 private:
  LlamaModel& model_;
  int block_size_;
  const SamplingSource& source_;
};

}  // namespace tessera
