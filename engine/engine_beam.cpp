// EngineImpl's beam search: runs a BeamSearch (engine/beam_search.h) per request over
// scheduler sequences that share their KV blocks copy-on-write.
//
// A beam request starts as one sequence that reserves `width` slots. Each step, once every
// live beam of a request has sampled (the model runner keeps their logits rows on the host):
//   advance_beams  (before scheduler.update) picks the next beams; a beam chosen once keeps
//                  its sequence with the chosen token written over the sampled one; a beam
//                  chosen m > 1 times also forks m - 1 children (after the update, when the
//                  parent holds its new token, as Scheduler::fork expects); a beam chosen
//                  never is aborted, so its slot is free for those children;
//   fork_beams     (after scheduler.update) creates those children.
// A beam that did not sample in a step (preempted, or a child still waiting for a slot) is
// dropped from the search, so under KV pressure the search narrows instead of stalling.
// When the search is done every sequence ends and the n best hypotheses become the choices,
// each sent as one final event (beam search does not stream).
#include <algorithm>
#include <cmath>

#include "engine/engine_impl.h"

namespace tessera {
namespace {

// Raw log-softmax of one logits row, summed in double.
std::vector<float> log_softmax(std::span<const float> logits) {
  float max = -INFINITY;
  for (float x : logits) max = std::max(max, x);
  double sum = 0.0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max);
  const double log_z = max + std::log(sum);
  std::vector<float> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i)
    out[i] = static_cast<float>(static_cast<double>(logits[i]) - log_z);
  return out;
}

}  // namespace

void EngineImpl::start_beams(RequestState& req) const {
  const SamplingParams& sp = req.request.sampling;
  BeamSearchConfig cfg;
  cfg.width = sp.beam_width();
  cfg.length_penalty = sp.length_penalty;
  cfg.early_stopping = sp.early_stopping;
  cfg.max_new_tokens = sp.max_tokens;
  // Whatever ends a choice ends a hypothesis: EOS and end-of-turn ids, then stop_token_ids.
  cfg.eos_ids = req.rules.eos_ids;
  for (int32_t id : req.rules.stop_token_ids)
    if (std::find(cfg.eos_ids.begin(), cfg.eos_ids.end(), id) == cfg.eos_ids.end())
      cfg.eos_ids.push_back(id);
  req.beams = std::make_unique<BeamGroup>(std::move(cfg));
}

void EngineImpl::advance_beams(StepOutput& out) {
  beam_forks_.clear();
  std::vector<std::pair<RequestState*, std::vector<size_t>>> groups;  // -> rows in out.sampled
  for (size_t i = 0; i < out.sampled.size(); ++i) {
    auto it = seqs_.find(out.sampled[i].id);
    if (it == seqs_.end() || !it->second.first->beams) continue;
    RequestState* req = it->second.first;
    auto g = std::find_if(groups.begin(), groups.end(), [&](auto& e) { return e.first == req; });
    if (g == groups.end()) g = groups.insert(groups.end(), {req, {}});
    g->second.push_back(i);
  }
  for (auto& [req, rows] : groups) advance_beam_group(*req, out, rows);
}

void EngineImpl::advance_beam_group(RequestState& req, StepOutput& out,
                                    const std::vector<size_t>& sampled_rows) {
  BeamGroup& g = *req.beams;
  const size_t n = g.seqs.size();
  std::vector<std::vector<float>> logprobs(n);
  std::vector<std::optional<std::span<const float>>> rows(n);
  std::vector<size_t> out_index(n, SIZE_MAX);
  for (size_t i : sampled_rows) {
    const auto pos = static_cast<size_t>(
        std::find(g.seqs.begin(), g.seqs.end(), out.sampled[i].id) - g.seqs.begin());
    if (pos == n) continue;
    logprobs[pos] = log_softmax(out.row(i));
    rows[pos] = std::span<const float>(logprobs[pos]);
    out_index[pos] = i;
  }
  const std::vector<BeamStepChoice> next = g.search.step(rows);
  if (g.search.done()) {
    finish_beams(req);
    return;
  }
  std::vector<SeqId> seqs;
  std::vector<char> kept(n, 0);
  for (const BeamStepChoice& c : next) {
    const auto p = static_cast<size_t>(c.parent);
    if (!kept[p]) {
      kept[p] = 1;
      out.sampled[out_index[p]].token = c.token;  // what scheduler.update appends
      seqs.push_back(g.seqs[p]);
    } else {
      const SeqId child = next_seq_++;
      beam_forks_.push_back({&req, g.seqs[p], child, c.token});
      seqs.push_back(child);
    }
  }
  // Unchosen beams go first: their slots are what the children run in.
  for (size_t p = 0; p < n; ++p) {
    if (kept[p]) continue;
    scheduler_.abort(g.seqs[p]);
    seqs_.erase(g.seqs[p]);
  }
  g.seqs = std::move(seqs);
}

void EngineImpl::fork_beams() {
  for (const BeamFork& f : beam_forks_) {
    if (!f.req->beams || f.req->num_finished == f.req->num_choices()) continue;
    scheduler_.fork(f.parent, f.child, f.token);
    seqs_.emplace(f.child, std::make_pair(f.req, 0));
  }
  beam_forks_.clear();
}

void EngineImpl::release_beams(RequestState& req, bool natural) {
  if (!req.beams) return;
  for (SeqId id : req.beams->seqs) {
    if (natural) {
      scheduler_.finish(id);
    } else {
      scheduler_.abort(id);
    }
    seqs_.erase(id);
  }
  req.beams->seqs.clear();
}

void EngineImpl::finish_beams(RequestState& req) {
  release_beams(req, /*natural=*/true);
  const std::vector<BeamHypothesis> best = req.beams->search.best(req.num_choices());
  const Clock::time_point now = Clock::now();
  if (!req.first_token) {
    req.first_token = now;
    metrics_.observe_ttft(std::chrono::duration<double>(now - req.request.arrival).count());
  }
  const bool want_logprobs = req.request.sampling.logprobs >= 0;
  for (int k = 0; k < req.num_choices(); ++k) {
    ChoiceState& c = *req.choices[static_cast<size_t>(k)];
    if (c.finished) continue;
    if (static_cast<size_t>(k) >= best.size()) {
      finish_choice(req, c, FinishReason::kError, "beam search found fewer than n beams", {});
      continue;
    }
    const BeamHypothesis& h = best[static_cast<size_t>(k)];
    GenerationEvent ev;
    for (size_t t = 0; t < h.tokens.size() && !ev.finish; ++t) {
      std::optional<TokenLogprob> lp;
      if (want_logprobs) lp = TokenLogprob{h.tokens[t], h.token_logprobs[t], {}};
      GenerationEvent e = append_token(c, req.prompt_len(), h.tokens[t], std::move(lp), req.rules);
      ev.token_ids.insert(ev.token_ids.end(), e.token_ids.begin(), e.token_ids.end());
      ev.text += e.text;
      ev.logprobs.insert(ev.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
      ev.finish = e.finish;
    }
    metrics_.add_generation_tokens(static_cast<int>(ev.token_ids.size()));
    const FinishReason reason = ev.finish.value_or(FinishReason::kLength);
    if (!ev.finish) ev.text += drain_pending_text(c);
    ev.beam_score = h.score;
    finish_choice(req, c, reason, "", std::move(ev));
  }
}

}  // namespace tessera
