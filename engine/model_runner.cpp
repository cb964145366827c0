#include "engine/model_runner.h"

#include <algorithm>
#include <string>
#include <utility>

#include "common/error.h"
#include "model/llama_model.h"

namespace tessera {

std::span<const float> StepOutput::row(size_t i) const {
  const int64_t r = host_row.empty() ? static_cast<int64_t>(i) : host_row.at(i);
  const auto v = static_cast<size_t>(vocab);
  if (r < 0 || (static_cast<size_t>(r) + 1) * v > logits.size())
    throw Error(ErrorKind::kInternal, "logits row " + std::to_string(i) + " is not on the host");
  return {logits.data() + static_cast<size_t>(r) * v, v};
}

bool samples_on_device(const SamplingParams& p) {
  return p.logprobs < 0 && p.n == 1 && !p.use_beam_search && p.min_p <= 0.0f &&
         p.repetition_penalty == 1.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f;
}

SampleSpec device_sample_spec(const SeqSampling& view) {
  const SamplingParams& p = *view.params;
  SampleSpec spec;
  spec.temperature = p.temperature < kGreedyEpsilon ? 0.0f : p.temperature;
  spec.top_k = std::max(0, p.top_k);  // -1 and 0 both mean off
  spec.top_p = p.top_p;
  spec.seed = view.seed;
  spec.offset = view.output.size();  // the host sampler's draw index for this token
  return spec;
}

ModelRunner::ModelRunner(LlamaModel& model, int block_size, const SamplingSource& source,
                         bool pad_decode_batches)
    : model_(model),
      block_size_(block_size),
      source_(source),
      pad_decode_batches_(pad_decode_batches) {}

StepOutput ModelRunner::execute(const StepPlan& plan) {
  StepOutput out;
  std::vector<std::pair<int32_t, int32_t>> pairs;
  pairs.reserve(plan.copies.size());
  for (const BlockCopy& c : plan.copies) pairs.emplace_back(c.src, c.dst);
  if (!pairs.empty()) model_.copy_kv_blocks(pairs);
  if (plan.empty()) {
    if (forward_step_ && !pairs.empty()) forward_step_(pairs, StepLayout{});
    return out;
  }

  StepLayout layout = build_step_layout(plan, block_size_);
  const size_t rows = layout.logit_rows.size();
  if (pad_decode_batches_ && is_decode_only(layout))
    pad_decode_step(layout, padded_decode_batch(layout.num_seqs()) - layout.num_seqs());
  if (forward_step_) forward_step_(pairs, layout);
  const float* logits = model_.forward_on_device(layout);
  if (rows == 0) return out;
  Ops& ops = model_.ops();
  out.vocab = model_.config().vocab_size;
  const auto vocab = static_cast<size_t>(out.vocab);

  std::vector<SeqSampling> views;
  std::vector<SeqId> ids;
  views.reserve(rows);
  for (const ScheduledSeq& s : plan.seqs) {
    if (!s.sample) continue;
    views.push_back(source_.sampling_for(s.id));
    ids.push_back(s.id);
  }
  if (views.size() != rows)
    throw Error(ErrorKind::kInternal, "step has " + std::to_string(rows) + " logit rows for " +
                                          std::to_string(views.size()) + " sampling sequences");

  // Rows the device sampler covers never leave the device; the others get a greedy spec there
  // (cheap, ignored) and only their logits rows come to the host.
  std::vector<char> on_device(rows, 0);
  std::vector<SampleSpec> specs(rows);
  std::vector<int32_t> device_tokens(rows, -1);
  for (size_t i = 0; i < rows; ++i) {
    on_device[i] = samples_on_device(*views[i].params);
    if (on_device[i])
      specs[i] = device_sample_spec(views[i]);
    else
      specs[i].temperature = 0.0f;
  }
  const bool any_device = std::find(on_device.begin(), on_device.end(), 1) != on_device.end();
  if (!any_device ||
      !ops.sample_on_device(logits, static_cast<int>(rows), out.vocab, specs, device_tokens)) {
    std::fill(on_device.begin(), on_device.end(), 0);
    out.logits.resize(rows * vocab);
    ops.to_host(out.logits.data(), logits, out.logits.size() * sizeof(float));
  } else {
    out.host_row.assign(rows, -1);
    for (size_t i = 0; i < rows; ++i) {
      if (on_device[i]) continue;
      out.host_row[i] = static_cast<int32_t>(out.logits.size() / vocab);
      out.logits.resize(out.logits.size() + vocab);
      ops.to_host(out.logits.data() + out.logits.size() - vocab, logits + i * vocab,
                  vocab * sizeof(float));
    }
  }

  out.sampled.reserve(rows);
  out.logprobs.reserve(rows);
  for (size_t i = 0; i < rows; ++i) {
    const SeqSampling& view = views[i];
    if (on_device[i]) {
      out.sampled.push_back({ids[i], device_tokens[i]});
      out.logprobs.emplace_back();
      continue;
    }
    const SampleResult r =
        sample_token(out.row(i), *view.params, {view.prompt, view.output}, view.seed);
    out.sampled.push_back({ids[i], r.token});
    out.logprobs.push_back(r.logprob);
  }
  return out;
}

}  // namespace tessera
