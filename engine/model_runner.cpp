#include "engine/model_runner.h"

#include <algorithm>
#include <string>
#include <utility>

#include "common/error.h"
#include "engine/proposer.h"
#include "engine/spec_decode.h"
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

namespace {

// One logits row to sample: sequence `seq` (index into plan.seqs) after `j` of its drafts.
struct Row {
  size_t seq = 0;
  int j = 0;
  SeqSampling view;
};

// Writes the proposed tokens into the layout's draft slots (the last num_draft rows of
// each sequence).
void write_drafts(const StepPlan& plan, const std::vector<std::vector<int32_t>>& drafts,
                  StepLayout& layout) {
  if (drafts.size() != plan.seqs.size())
    throw Error(ErrorKind::kInternal, "proposer returned drafts for " +
                                          std::to_string(drafts.size()) + " of " +
                                          std::to_string(plan.seqs.size()) + " sequences");
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const int k = plan.seqs[i].num_draft;
    if (static_cast<int>(drafts[i].size()) != k)
      throw Error(ErrorKind::kInternal, "proposer returned " + std::to_string(drafts[i].size()) +
                                            " tokens for a draft of " + std::to_string(k));
    const int end = layout.query_start[i + 1];
    std::copy(drafts[i].begin(), drafts[i].end(), layout.tokens.begin() + (end - k));
  }
}

}  // namespace

StepOutput ModelRunner::execute(const StepPlan& plan) {
  StepOutput out;
  std::vector<std::pair<int32_t, int32_t>> pairs;
  pairs.reserve(plan.copies.size());
  for (const BlockCopy& c : plan.copies) pairs.emplace_back(c.src, c.dst);
  if (!pairs.empty()) model_.copy_kv_blocks(pairs);
  if (plan.empty()) {
    if (forward_step_ && !pairs.empty()) forward_step_(pairs, StepLayout{});
    if (proposer_ && !pairs.empty()) proposer_->propose(plan, StepLayout{}, pairs);
    return out;
  }

  StepLayout layout = build_step_layout(plan, block_size_);
  std::vector<std::vector<int32_t>> drafts(plan.seqs.size());
  if (proposer_) {
    drafts = proposer_->propose(plan, layout, pairs);
    write_drafts(plan, drafts, layout);
  }
  const size_t rows = layout.logit_rows.size();
  if (const int q = uniform_rows_per_seq(layout); pad_decode_batches_ && q > 0)
    pad_decode_step(layout, padded_decode_batch(layout.num_seqs()) - layout.num_seqs(), q);
  if (forward_step_) forward_step_(pairs, layout);
  const float* logits = model_.forward_on_device(layout);
  if (rows == 0) return out;
  Ops& ops = model_.ops();
  out.vocab = model_.config().vocab_size;
  const auto vocab = static_cast<size_t>(out.vocab);

  std::vector<Row> table;
  table.reserve(rows);
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    if (!s.sample) continue;
    const SeqSampling view = source_.sampling_for(s.id);
    for (int j = 0; j <= s.num_draft; ++j) table.push_back({i, j, view});
  }
  if (table.size() != rows)
    throw Error(ErrorKind::kInternal, "step has " + std::to_string(rows) + " logit rows for " +
                                          std::to_string(table.size()) + " to sample");

  // Rows the device sampler covers never leave the device; the others get a greedy spec there
  // (cheap, ignored) and only their logits rows come to the host. A draft row samples as the
  // token after draft[0, j): the same draw index it would have without speculation.
  std::vector<char> on_device(rows, 0);
  std::vector<SampleSpec> specs(rows);
  std::vector<int32_t> tokens(rows, -1);
  for (size_t i = 0; i < rows; ++i) {
    on_device[i] = samples_on_device(*table[i].view.params);
    if (on_device[i]) {
      specs[i] = device_sample_spec(table[i].view);
      specs[i].offset += static_cast<uint64_t>(table[i].j);
    } else {
      specs[i].temperature = 0.0f;
    }
  }
  std::vector<int32_t> host_row(rows, -1);
  const bool any_device = std::find(on_device.begin(), on_device.end(), 1) != on_device.end();
  if (!any_device ||
      !ops.sample_on_device(logits, static_cast<int>(rows), out.vocab, specs, tokens)) {
    std::fill(on_device.begin(), on_device.end(), 0);
    out.logits.resize(rows * vocab);
    ops.to_host(out.logits.data(), logits, out.logits.size() * sizeof(float));
    for (size_t i = 0; i < rows; ++i) host_row[i] = static_cast<int32_t>(i);
  } else {
    for (size_t i = 0; i < rows; ++i) {
      if (on_device[i]) continue;
      host_row[i] = static_cast<int32_t>(out.logits.size() / vocab);
      out.logits.resize(out.logits.size() + vocab);
      ops.to_host(out.logits.data() + out.logits.size() - vocab, logits + i * vocab,
                  vocab * sizeof(float));
    }
  }

  std::vector<std::optional<TokenLogprob>> lps(rows);
  std::vector<int32_t> history;
  for (size_t i = 0; i < rows; ++i) {
    if (on_device[i]) continue;
    const Row& r = table[i];
    std::span<const int32_t> output = r.view.output;
    if (r.j > 0) {  // penalties see the drafts as generated
      const std::vector<int32_t>& d = drafts[r.seq];
      history.assign(output.begin(), output.end());
      history.insert(history.end(), d.begin(), d.begin() + r.j);
      output = history;
    }
    const std::span<const float> row(out.logits.data() + static_cast<size_t>(host_row[i]) * vocab,
                                     vocab);
    SampleResult res = sample_token(row, *r.view.params, {r.view.prompt, output}, r.view.seed);
    tokens[i] = res.token;
    lps[i] = std::move(res.logprob);
  }

  // Each sequence emits its accepted drafts and the target's next token.
  out.sampled.reserve(rows);
  out.logprobs.reserve(rows);
  out.host_row.reserve(rows);
  std::vector<int> accepted(plan.seqs.size(), 0);
  for (size_t i = 0; i < rows;) {
    const size_t seq = table[i].seq;
    const ScheduledSeq& s = plan.seqs[seq];
    const int k = s.num_draft;
    const int a = k == 0 ? 0
                         : accepted_prefix(drafts[seq], std::span<const int32_t>(tokens).subspan(
                                                            i, static_cast<size_t>(k) + 1));
    for (size_t r = i; r <= i + static_cast<size_t>(a); ++r) {
      out.sampled.push_back({s.id, tokens[r]});
      out.logprobs.push_back(std::move(lps[r]));
      out.host_row.push_back(host_row[r]);
    }
    if (k > 0) out.spec.push_back({s.id, k, a});
    accepted[seq] = a;
    i += static_cast<size_t>(k) + 1;
  }
  if (proposer_) proposer_->verified(plan, accepted);
  return out;
}

}  // namespace tessera
