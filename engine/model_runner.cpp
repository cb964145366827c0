#include "engine/model_runner.h"

#include <string>
#include <utility>

#include "common/error.h"
#include "model/llama_model.h"

namespace tessera {

ModelRunner::ModelRunner(LlamaModel& model, int block_size, const SamplingSource& source)
    : model_(model), block_size_(block_size), source_(source) {}

StepOutput ModelRunner::execute(const StepPlan& plan) {
  StepOutput out;
  if (!plan.copies.empty()) {
    std::vector<std::pair<int32_t, int32_t>> pairs;
    pairs.reserve(plan.copies.size());
    for (const BlockCopy& c : plan.copies) pairs.emplace_back(c.src, c.dst);
    model_.ops().copy_kv_blocks(pairs);
  }
  if (plan.empty()) return out;

  const StepLayout layout = build_step_layout(plan, block_size_);
  model_.forward(layout, out.logits);
  const size_t rows = layout.logit_rows.size();
  if (rows == 0) return out;
  out.vocab = static_cast<int>(out.logits.size() / rows);
  if (out.vocab <= 0 || out.logits.size() != rows * static_cast<size_t>(out.vocab))
    throw Error(ErrorKind::kInternal, "forward returned " + std::to_string(out.logits.size()) +
                                          " logits for " + std::to_string(rows) + " rows");

  out.sampled.reserve(rows);
  out.logprobs.reserve(rows);
  for (const ScheduledSeq& s : plan.seqs) {
    if (!s.sample) continue;
    const SeqSampling view = source_.sampling_for(s.id);
    const SampleResult r = sample_token(out.row(out.sampled.size()), *view.params,
                                        {view.prompt, view.output}, view.seed);
    out.sampled.push_back({s.id, r.token});
    out.logprobs.push_back(r.logprob);
  }
  return out;
}

}  // namespace tessera
