#include "engine/model_proposer.h"

#include <algorithm>

#include "engine/sampler.h"
#include "engine/step_layout.h"
#include "model/llama_model.h"

namespace tessera {

namespace {
// Known tokens a drafting pass 0 takes itself instead of leaving them to a catch-up pass.
constexpr int kPassZeroTokens = 16;
}  // namespace

ModelProposer::ModelProposer(LlamaModel& model, int num_layers, bool own_kv, int block_size,
                             bool pad_decode_batches, double cost, int catchup_tokens)
    : model_(model),
      num_layers_(num_layers),
      own_kv_(own_kv),
      block_size_(block_size),
      pad_(pad_decode_batches),
      cost_(cost),
      catchup_tokens_(std::max(1, catchup_tokens)) {}

int ModelProposer::draft_len(SeqId id, std::span<const int32_t> tokens, int k) {
  if (own_kv_ && k > 0) {
    DraftState& d = draft_[id];
    if (d.computed >= static_cast<int>(tokens.size())) d.computed = 0;  // cannot be: start over
    d.pending.assign(tokens.begin() + d.computed, tokens.end());
  }
  return k;
}

void ModelProposer::forget(std::span<const SeqId> ids) {
  for (SeqId id : ids) draft_.erase(id);
}

int ModelProposer::draft_computed(SeqId id) const {
  const auto it = draft_.find(id);
  return it == draft_.end() ? 0 : it->second.computed;
}

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

void ModelProposer::catch_up(const StepPlan& plan, std::span<const size_t> drafting) {
  for (;;) {
    StepPlan pass;
    int budget = catchup_tokens_;
    for (size_t i : drafting) {
      const ScheduledSeq& s = plan.seqs[i];
      DraftState& st = draft_[s.id];
      const int known = s.end - s.num_draft;
      const int todo = known - kPassZeroTokens - st.computed;
      if (todo <= 0 || budget <= 0) continue;
      const int take = std::min(todo, budget);
      ScheduledSeq d;
      d.id = s.id;
      d.start = st.computed;
      d.end = st.computed + take;
      const int offset = st.computed - (known - static_cast<int>(st.pending.size()));
      d.tokens.assign(st.pending.begin() + offset, st.pending.begin() + offset + take);
      d.block_table = s.block_table;
      d.sample = false;
      st.computed += take;
      budget -= take;
      pass.seqs.push_back(std::move(d));
    }
    if (pass.seqs.empty()) return;
    run_pass(pass);
  }
}

std::vector<std::vector<int32_t>> ModelProposer::propose(
    const StepPlan& plan, const StepLayout&, std::span<const std::pair<int32_t, int32_t>> copies) {
  std::vector<std::vector<int32_t>> drafts(plan.seqs.size());
  if (own_kv_ && !copies.empty()) model_.copy_kv_blocks(copies);
  std::vector<size_t> drafting;  // plan.seqs index of each logits row's sequence
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    if (plan.seqs[i].num_draft == 0) continue;
    // A draft model needs the known tokens its cache lacks (draft_len() recorded them).
    if (own_kv_) {
      const ScheduledSeq& s = plan.seqs[i];
      const auto it = draft_.find(s.id);
      const int known = s.end - s.num_draft;
      if (it == draft_.end() ||
          it->second.computed + static_cast<int>(it->second.pending.size()) != known) {
        // Not announced by draft_len(): repeat the last token (verification keeps only what
        // the served model agrees with).
        drafts[i].assign(static_cast<size_t>(s.num_draft), s.tokens[known - 1 - s.start]);
        continue;
      }
    }
    drafting.push_back(i);
  }
  if (drafting.empty()) return drafts;
  if (own_kv_) catch_up(plan, drafting);

  // Pass 0: each drafting sequence's known tokens not yet computed give the first draft token.
  StepPlan pass;
  for (size_t i : drafting) {
    const ScheduledSeq& s = plan.seqs[i];
    ScheduledSeq d;
    d.id = s.id;
    d.end = s.end - s.num_draft;
    if (own_kv_) {
      DraftState& st = draft_[s.id];
      d.start = st.computed;
      const int offset = st.computed - (d.end - static_cast<int>(st.pending.size()));
      d.tokens.assign(st.pending.begin() + offset, st.pending.end());
    } else {
      d.start = s.start;
      d.tokens.assign(s.tokens.begin(), s.tokens.begin() + (d.end - d.start));
    }
    d.block_table = s.block_table;
    d.sample = true;
    pass.seqs.push_back(std::move(d));
  }
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
  if (own_kv_) {
    // The known tokens and drafts 1..k-1 are in the cache now; verified() keeps the
    // accepted part.
    for (size_t i : drafting) {
      DraftState& st = draft_[plan.seqs[i].id];
      st.computed = plan.seqs[i].end - 1;
      st.pending.clear();
    }
  }
  return drafts;
}

void ModelProposer::verified(const StepPlan& plan, std::span<const int> accepted) {
  if (!own_kv_) return;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    if (s.num_draft == 0) continue;
    const auto it = draft_.find(s.id);
    if (it == draft_.end()) continue;
    // Draft j sits at position known + j - 1; drafts after the first rejected one are stale,
    // and the last draft was proposed, never fed.
    const int known = s.end - s.num_draft;
    it->second.computed =
        std::min(it->second.computed, known + std::min(accepted[i], s.num_draft - 1));
  }
}

}  // namespace tessera
