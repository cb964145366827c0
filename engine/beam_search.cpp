#include "engine/beam_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>

#include "common/error.h"

namespace tessera {
namespace {

struct Candidate {
  double sum = 0.0;  // parent's sum + row[token]
  int parent = 0;
  int32_t token = 0;
  float logprob = 0.0f;
};

// Best first; equal sums: lower (parent, token) first, as a flat top-k over
// [beam][vocab] would list them.
bool better(const Candidate& a, const Candidate& b) {
  if (a.sum != b.sum) return a.sum > b.sum;
  if (a.parent != b.parent) return a.parent < b.parent;
  return a.token < b.token;
}

// The k best (beam, token) continuations over every beam with a row, best first.
std::vector<Candidate> top_candidates(const std::vector<Beam>& beams,
                                      std::span<const std::optional<std::span<const float>>> rows,
                                      size_t k) {
  // Min-heap of the best k so far: its top is the worst kept.
  auto worse_first = [](const Candidate& a, const Candidate& b) { return better(a, b); };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse_first)> heap(worse_first);
  for (size_t b = 0; b < beams.size(); ++b) {
    if (!rows[b]) continue;
    const std::span<const float> row = *rows[b];
    for (size_t t = 0; t < row.size(); ++t) {
      const Candidate c{beams[b].sum_logprob + row[t], static_cast<int>(b), static_cast<int32_t>(t),
                        row[t]};
      if (std::isnan(c.sum)) continue;
      if (heap.size() < k) {
        heap.push(c);
      } else if (better(c, heap.top())) {
        heap.pop();
        heap.push(c);
      }
    }
  }
  std::vector<Candidate> out;
  out.reserve(heap.size());
  for (; !heap.empty(); heap.pop()) out.push_back(heap.top());
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

BeamSearch::BeamSearch(BeamSearchConfig config) : config_(std::move(config)) {
  if (config_.width < 1) throw Error(ErrorKind::kInvalidArgument, "beam width must be >= 1");
  if (config_.max_new_tokens < 1)
    throw Error(ErrorKind::kInvalidArgument, "beam search needs max_new_tokens >= 1");
  beams_.emplace_back();
}

double BeamSearch::score_of(double sum_logprob, int generated_len) const {
  return sum_logprob / std::pow(static_cast<double>(generated_len), config_.length_penalty);
}

std::vector<BeamStepChoice> BeamSearch::step(
    std::span<const std::optional<std::span<const float>>> rows) {
  if (done_) return {};
  if (rows.size() != beams_.size())
    throw Error(ErrorKind::kInternal, "beam search: " + std::to_string(rows.size()) + " rows for " +
                                          std::to_string(beams_.size()) + " beams");
  const auto width = static_cast<size_t>(config_.width);
  const size_t keep = std::max<size_t>(2, 1 + config_.eos_ids.size()) * width;
  const std::vector<Candidate> cands = top_candidates(beams_, rows, keep);
  if (cands.empty()) throw Error(ErrorKind::kInternal, "beam search: a step without rows");
  const int new_len = static_cast<int>(beams_.front().tokens.size()) + 1;
  const bool last = new_len >= config_.max_new_tokens;
  auto extend = [&](const Candidate& c, auto& into) {
    const Beam& parent = beams_[static_cast<size_t>(c.parent)];
    into.tokens = parent.tokens;
    into.tokens.push_back(c.token);
    into.token_logprobs = parent.token_logprobs;
    into.token_logprobs.push_back(c.logprob);
    into.sum_logprob = c.sum;
  };

  // Finished hypotheses: candidates in the top W that hit a stop, unless kFirst is full.
  const bool accept = !(config_.early_stopping == EarlyStopping::kFirst && full());
  std::vector<Candidate> running;
  for (size_t rank = 0; rank < cands.size(); ++rank) {
    const Candidate& c = cands[rank];
    const bool eos =
        std::find(config_.eos_ids.begin(), config_.eos_ids.end(), c.token) != config_.eos_ids.end();
    if (!eos && !last) {
      if (running.size() < width) running.push_back(c);
      continue;
    }
    if (rank >= width || !accept) continue;
    BeamHypothesis h;
    extend(c, h);
    h.score = score_of(c.sum, new_len);
    h.eos = eos;
    // Kept best first; a newcomer goes after equal scores, and the worst beyond W drop.
    auto at = std::upper_bound(hyps_.begin(), hyps_.end(), h.score,
                               [](double s, const BeamHypothesis& x) { return s > x.score; });
    hyps_.insert(at, std::move(h));
    if (hyps_.size() > width) hyps_.pop_back();
  }

  std::vector<Beam> beams(running.size());
  std::vector<BeamStepChoice> choices;
  for (size_t i = 0; i < running.size(); ++i) {
    extend(running[i], beams[i]);
    choices.push_back({running[i].parent, running[i].token, running[i].logprob});
  }
  beams_ = std::move(beams);

  if (last || beams_.empty()) {
    done_ = true;
  } else if (full()) {
    // Could the best live beam still beat the worst hypothesis?
    const bool longest =
        config_.early_stopping == EarlyStopping::kNever && config_.length_penalty > 0.0f;
    const double best_possible =
        score_of(beams_.front().sum_logprob, longest ? config_.max_new_tokens : new_len);
    done_ =
        config_.early_stopping == EarlyStopping::kFirst || !(best_possible > hyps_.back().score);
  }
  return done_ ? std::vector<BeamStepChoice>{} : choices;
}

std::vector<BeamHypothesis> BeamSearch::best(int n) const {
  std::vector<BeamHypothesis> out = hyps_;
  if (n >= 0 && out.size() > static_cast<size_t>(n)) out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace tessera
