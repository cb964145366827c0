#include "engine/model_proposer.h"

#include <algorithm>

#include "engine/sampler.h"
#include "engine/step_layout.h"
#include "model/llama_model.h"

namespace tessera {

ModelProposer::ModelProposer(LlamaModel& model, int num_layers, bool own_kv, int block_size,
                             bool pad_decode_batches, double cost)
    : model_(model),
      num_layers_(num_layers),
      own_kv_(own_kv),
      block_size_(block_size),
      pad_(pad_decode_batches),
      cost_(cost) {}

std::vector<int32_t> ModelProposer::run_pass(StepPlan& pass) {
  StepLayout layout = build_step_layout(pass, block_size_);
  const int rows = static_cast<int>(layout.logit_rows.size());
  if (pad_ && is_decode_only(layout))
    pad_decode_step(layout, padded_decode_batch(layout.num_seqs()) - layout.num_seqs());
  const float* logits = model_.forward_on_device(layout, num_layers_);
  std::vector<int32_t> tokens(static_cast<size_t>(rows), 0);
  if (rows == 0) return tokens;
  Ops& ops = model_.ops();
  const int vocab = model_.config().vocab_size;
  std::vector<SampleSpec> greedy(static_cast<size_t>(rows));
  for (SampleSpec& s : greedy) s.temperature = 0.0f;
  if (ops.sample_on_device(logits, rows, vocab, greedy, tokens, {})) return tokens;
  std::vector<float> host(static_cast<size_t>(rows) * vocab);
  ops.to_host(host.data(), logits, host.size() * sizeof(float));
  for (int r = 0; r < rows; ++r)
    tokens[static_cast<size_t>(r)] =
        argmax_token(std::span<const float>(host).subspan(static_cast<size_t>(r) * vocab, vocab));
  return tokens;
}

std::vector<std::vector<int32_t>> ModelProposer::propose(
    const StepPlan& plan, const StepLayout&, std::span<const std::pair<int32_t, int32_t>> copies) {
  std::vector<std::vector<int32_t>> drafts(plan.seqs.size());
  if (own_kv_ && !copies.empty()) model_.copy_kv_blocks(copies);
  last_draft_.clear();

  // Pass 0: each drafting sequence's known, uncomputed tokens give the first draft token. A
  // draft model also computes every other row of the step, so its cache keeps up.
  StepPlan pass;
  std::vector<size_t> drafting;  // plan.seqs index of each logits row's sequence
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    if (!own_kv_ && s.num_draft == 0) continue;
    ScheduledSeq d;
    d.id = s.id;
    d.start = s.start;
    d.end = s.end - s.num_draft;
    d.tokens.assign(s.tokens.begin(), s.tokens.begin() + (d.end - d.start));
    d.block_table = s.block_table;
    d.sample = s.num_draft > 0;
    if (auto g = gap_.find(s.id); own_kv_ && g != gap_.end() && g->second.first == s.start - 1) {
      d.start -= 1;
      d.tokens.insert(d.tokens.begin(), g->second.second);
    }
    if (d.sample) drafting.push_back(i);
    pass.seqs.push_back(std::move(d));
  }
  gap_.clear();
  if (drafting.empty() && !own_kv_) return drafts;
  if (pass.seqs.empty()) return drafts;
  std::vector<int32_t> next = run_pass(pass);
  for (size_t r = 0; r < drafting.size(); ++r) drafts[drafting[r]].push_back(next[r]);

  // Pass j feeds draft token j at its position to get token j + 1.
  int max_draft = 0;
  for (size_t i : drafting) max_draft = std::max(max_draft, plan.seqs[i].num_draft);
  for (int j = 1; j < max_draft; ++j) {
    StepPlan step;
    std::vector<size_t> rows;
    for (size_t i : drafting) {
      const ScheduledSeq& s = plan.seqs[i];
      if (s.num_draft <= j) continue;
      ScheduledSeq d;
      d.id = s.id;
      d.start = s.end - s.num_draft + j - 1;
      d.end = d.start + 1;
      d.tokens = {drafts[i].back()};
      d.block_table = s.block_table;
      d.sample = true;
      step.seqs.push_back(std::move(d));
      rows.push_back(i);
    }
    next = run_pass(step);
    for (size_t r = 0; r < rows.size(); ++r) drafts[rows[r]].push_back(next[r]);
  }
  for (size_t i : drafting) last_draft_[plan.seqs[i].id] = drafts[i].back();
  return drafts;
}

void ModelProposer::verified(const StepPlan& plan, std::span<const int> accepted) {
  if (!own_kv_) return;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    if (s.num_draft == 0 || accepted[i] != s.num_draft) continue;
    auto it = last_draft_.find(s.id);
    if (it != last_draft_.end()) gap_[s.id] = {s.end - 1, it->second};
  }
}

}  // namespace tessera
