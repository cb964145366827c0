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

static_assert(kMaxSampleLogprobs == kMaxLogprobs);

bool samples_on_device(const SeqSampling& view) {
  return !view.needs_host_row && !view.params->use_beam_search;
}

SampleSpec device_sample_spec(const SeqSampling& view) {
  const SamplingParams& p = *view.params;
  SampleSpec spec;
  spec.temperature = p.temperature < kGreedyEpsilon ? 0.0f : p.temperature;
  spec.top_k = std::max(0, p.top_k);  // -1 and 0 both mean off
  spec.top_p = p.top_p;
  spec.seed = view.seed;
  spec.offset = view.output.size() + static_cast<uint64_t>(view.pending);  // the draw index
  spec.min_p = p.min_p;
  spec.repetition_penalty = p.repetition_penalty;
  spec.presence_penalty = p.presence_penalty;
  spec.frequency_penalty = p.frequency_penalty;
  if (spec.penalized()) {
    spec.prompt = view.prompt;
    spec.output = view.output;
  }
  spec.logprobs = p.logprobs;
  return spec;
}

TokenLogprob token_logprob(int32_t token, const SampledLogprobs& l) {
  TokenLogprob t;
  t.token = token;
  t.logprob = l.chosen;
  const int n = std::clamp(l.num_top, 0, kMaxSampleLogprobs);
  t.top.reserve(static_cast<size_t>(n));
  for (int a = 0; a < n; ++a) t.top.emplace_back(l.top_ids[a], l.top_logprobs[a]);
  return t;
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

// A plan made ready to sample: its layout has run through the model.
struct ModelRunner::Prepared {
  StepLayout layout;
  std::vector<std::vector<int32_t>> drafts;
  const float* logits = nullptr;
  size_t rows = 0;
  std::vector<Row> table;
};

void ModelRunner::feed_pending_tokens(const StepPlan& plan, StepLayout& layout) const {
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const int last = layout.query_start[i + 1] - 1 - plan.seqs[i].num_draft;
    if (last < layout.query_start[i] || layout.tokens[static_cast<size_t>(last)] != kPendingToken)
      continue;
    const SeqId id = plan.seqs[i].id;
    auto it = last_.row.find(id);
    if (it == last_.row.end())
      throw Error(ErrorKind::kInternal, "sequence " + std::to_string(id) +
                                            " has a pending token the last step did not sample");
    if (!last_.tokens.empty()) {
      layout.tokens[static_cast<size_t>(last)] = last_.tokens[static_cast<size_t>(it->second)];
    } else if (last_.on_device) {
      layout.tokens_from_sample.emplace_back(last, it->second);
    } else {
      throw Error(ErrorKind::kInternal, "pending token of sequence " + std::to_string(id) +
                                            " is neither on the host nor on the device");
    }
  }
}

ModelRunner::Prepared ModelRunner::prepare(const StepPlan& plan) {
  Prepared p;
  std::vector<std::pair<int32_t, int32_t>> pairs;
  pairs.reserve(plan.copies.size());
  for (const BlockCopy& c : plan.copies) pairs.emplace_back(c.src, c.dst);
  if (!pairs.empty()) model_.copy_kv_blocks(pairs);
  if (plan.empty()) {
    if (forward_step_ && !pairs.empty()) forward_step_(pairs, StepLayout{});
    if (proposer_ && !pairs.empty()) proposer_->propose(plan, StepLayout{}, pairs);
    return p;
  }

  p.layout = build_step_layout(plan, block_size_);
  feed_pending_tokens(plan, p.layout);
  p.drafts.resize(plan.seqs.size());
  if (proposer_) {
    p.drafts = proposer_->propose(plan, p.layout, pairs);
    write_drafts(plan, p.drafts, p.layout);
  }
  p.rows = p.layout.logit_rows.size();
  if (const int q = uniform_rows_per_seq(p.layout); pad_decode_batches_ && q > 0)
    pad_decode_step(p.layout, padded_decode_batch(p.layout.num_seqs()) - p.layout.num_seqs(), q);
  if (forward_step_) forward_step_(pairs, p.layout);
  p.logits = model_.forward_on_device(p.layout);
  if (p.rows == 0) return p;

  p.table.reserve(p.rows);
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    if (!s.sample) continue;
    const SeqSampling view = source_.sampling_for(s.id);
    for (int j = 0; j <= s.num_draft; ++j) p.table.push_back({i, j, view});
  }
  if (p.table.size() != p.rows)
    throw Error(ErrorKind::kInternal, "step has " + std::to_string(p.rows) + " logit rows for " +
                                          std::to_string(p.table.size()) + " to sample");
  return p;
}

void ModelRunner::remember_sample(const StepPlan& plan, bool on_device,
                                  std::span<const int32_t> tokens) {
  last_ = LastSample{};
  last_.serial = next_serial_++;
  last_.on_device = on_device;
  int32_t row = 0;
  for (const ScheduledSeq& s : plan.seqs) {
    if (!s.sample) continue;
    last_.row.emplace(s.id, row);
    row += s.num_draft + 1;
  }
  last_.tokens.assign(tokens.begin(), tokens.end());
}

int32_t ModelRunner::output_beyond_view(const StepPlan& plan, const Prepared& p, size_t i,
                                        std::vector<int32_t>& extra) const {
  const Row& r = p.table[i];
  int32_t on_device_row = -1;
  extra.clear();
  if (r.view.pending > 0) {
    const SeqId id = plan.seqs[r.seq].id;
    auto it = last_.row.find(id);
    if (it == last_.row.end())
      throw Error(ErrorKind::kInternal, "sequence " + std::to_string(id) +
                                            " has a pending token the last step did not sample");
    if (!last_.tokens.empty()) {
      extra.push_back(last_.tokens[static_cast<size_t>(it->second)]);
    } else {
      on_device_row = it->second;
    }
  }
  const std::vector<int32_t>& d = p.drafts[r.seq];  // penalties see the drafts as generated
  extra.insert(extra.end(), d.begin(), d.begin() + r.j);
  return on_device_row;
}

SampleSpec ModelRunner::row_spec(const StepPlan& plan, const Prepared& p, size_t i,
                                 std::vector<int32_t>& extra) const {
  SampleSpec spec = device_sample_spec(p.table[i].view);
  spec.offset += static_cast<uint64_t>(p.table[i].j);
  if (!spec.penalized()) return spec;
  spec.pending_row = output_beyond_view(plan, p, i, extra);
  spec.output_extra = extra;
  return spec;
}

StepOutput ModelRunner::execute(const StepPlan& plan) {
  Prepared p = prepare(plan);
  return sample(plan, p);
}

bool ModelRunner::can_launch(const StepPlan& plan) const {
  if ((proposer_ && proposer_->runs_every_step()) || forward_step_) return false;
  for (const ScheduledSeq& s : plan.seqs) {
    if (s.num_draft > 0) return false;
    if (s.sample && !samples_on_device(source_.sampling_for(s.id))) return false;
  }
  return true;
}

void ModelRunner::launch(const StepPlan& plan) {
  Prepared p = prepare(plan);
  Launched l;
  Ops& ops = model_.ops();
  std::vector<SampleSpec> specs(p.rows);
  std::vector<std::vector<int32_t>> extra(p.rows);
  for (size_t i = 0; i < p.rows; ++i) specs[i] = row_spec(plan, p, i, extra[i]);
  if (p.rows > 0 &&
      ops.sample_async(p.logits, static_cast<int>(p.rows), model_.config().vocab_size, specs)) {
    ops.end_step();
    remember_sample(plan, /*on_device=*/true, {});
    l.serial = last_.serial;
    l.row_ids.reserve(p.rows);
    for (const Row& r : p.table) l.row_ids.push_back(plan.seqs[r.seq].id);
    for (const SampleSpec& s : specs) l.logprobs.push_back(s.logprobs >= 0 ? 1 : 0);
  } else {
    l.done = sample(plan, p);
    l.serial = last_.serial;
  }
  launched_.push_back(std::move(l));
}

StepOutput ModelRunner::wait() {
  if (launched_.empty()) throw Error(ErrorKind::kInternal, "wait: no step was launched");
  Launched l = std::move(launched_.front());
  launched_.pop_front();
  if (l.done) return std::move(*l.done);
  std::vector<int32_t> tokens(l.row_ids.size());
  const bool any_logprobs = std::find(l.logprobs.begin(), l.logprobs.end(), 1) != l.logprobs.end();
  std::vector<SampledLogprobs> lps(any_logprobs ? tokens.size() : 0);
  model_.ops().collect_sampled(tokens, lps);
  if (last_.serial == l.serial) {
    last_.tokens = tokens;
    last_.on_device = false;
  }
  StepOutput out;
  out.vocab = model_.config().vocab_size;
  out.sampled.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) out.sampled.push_back({l.row_ids[i], tokens[i]});
  out.logprobs.resize(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i)
    if (l.logprobs[i]) out.logprobs[i] = token_logprob(tokens[i], lps[i]);
  out.host_row.assign(tokens.size(), -1);
  return out;
}

Ops::DeviceTimeline ModelRunner::device_timeline() {
  return model_.ops().device_timeline();
}

StepOutput ModelRunner::sample(const StepPlan& plan, Prepared& p) {
  StepOutput out;
  if (p.rows == 0) {
    model_.ops().end_step();
    remember_sample(plan, false, {});
    return out;
  }
  const size_t rows = p.rows;
  const std::vector<Row>& table = p.table;
  const std::vector<std::vector<int32_t>>& drafts = p.drafts;
  const float* logits = p.logits;
  Ops& ops = model_.ops();
  out.vocab = model_.config().vocab_size;
  const auto vocab = static_cast<size_t>(out.vocab);

  // Rows the device sampler covers never leave the device; the others get a greedy spec there
  // (cheap, ignored) and only their logits rows come to the host. A draft row samples as the
  // token after draft[0, j): the same draw index it would have without speculation.
  std::vector<char> on_device(rows, 0);
  std::vector<SampleSpec> specs(rows);
  std::vector<std::vector<int32_t>> extra(rows);
  std::vector<int32_t> tokens(rows, -1);
  bool any_logprobs = false;
  for (size_t i = 0; i < rows; ++i) {
    on_device[i] = samples_on_device(table[i].view);
    if (on_device[i]) {
      specs[i] = row_spec(plan, p, i, extra[i]);
      any_logprobs = any_logprobs || specs[i].logprobs >= 0;
    } else {
      specs[i].temperature = 0.0f;
    }
  }
  std::vector<SampledLogprobs> device_lps(any_logprobs ? rows : 0);
  std::vector<int32_t> host_row(rows, -1);
  const bool any_device = std::find(on_device.begin(), on_device.end(), 1) != on_device.end();
  if (!any_device ||
      !ops.sample_on_device(logits, static_cast<int>(rows), out.vocab, specs, tokens, device_lps)) {
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
  ops.end_step();  // the device's part is done; host sampling follows

  std::vector<std::optional<TokenLogprob>> lps(rows);
  std::vector<int32_t> history;
  for (size_t i = 0; i < rows; ++i) {
    if (on_device[i]) {
      if (specs[i].logprobs >= 0) lps[i] = token_logprob(tokens[i], device_lps[i]);
      continue;
    }
    const Row& r = table[i];
    std::span<const int32_t> output = r.view.output;
    if (output_beyond_view(plan, p, i, extra[i]) >= 0)
      throw Error(ErrorKind::kInternal,
                  "a host-sampled row's pending token is still on the device");
    if (!extra[i].empty()) {
      history.assign(output.begin(), output.end());
      history.insert(history.end(), extra[i].begin(), extra[i].end());
      output = history;
    }
    const std::span<const float> row(out.logits.data() + static_cast<size_t>(host_row[i]) * vocab,
                                     vocab);
    SampleResult res = sample_token(row, *r.view.params, {r.view.prompt, output}, r.view.seed);
    tokens[i] = res.token;
    lps[i] = std::move(res.logprob);
  }
  remember_sample(plan, false, tokens);

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
