#include "engine/spec_decode.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "common/error.h"

namespace tessera {

int accepted_prefix(std::span<const int32_t> draft, std::span<const int32_t> sampled) {
  if (sampled.size() != draft.size() + 1)
    throw Error(ErrorKind::kInternal, "verification: " + std::to_string(sampled.size()) +
                                          " samples for a draft of " +
                                          std::to_string(draft.size()));
  size_t a = 0;
  while (a < draft.size() && draft[a] == sampled[a]) ++a;
  return static_cast<int>(a);
}

double SpecController::step_cost(int num_decoding, int k) const {
  if (std::optional<double> measured = costs_.estimate(num_decoding, k, steps_)) return *measured;
  return 1.0 + k * (config_.draft_cost + config_.verify_cost);
}

double SpecController::step_gain(int num_decoding, int k) const {
  if (std::optional<double> measured = costs_.tokens(num_decoding, k, steps_)) return *measured;
  double expected = 1.0, term = 1.0;
  for (int j = 1; j <= k; ++j) expected += term *= rate_;
  return expected;
}

std::string SpecController::describe(int num_decoding) const {
  std::ostringstream s;
  s << num_decoding << " decoding, acceptance rate " << rate_ << ", tokens/cost by draft length:";
  for (int k = 0; k <= config_.max_draft; ++k)
    s << ' ' << step_gain(num_decoding, k) << '/' << step_cost(num_decoding, k)
      << (costs_.fresh(num_decoding, k, steps_) ? "" : "?");
  return s.str();
}

int SpecController::draft_len(int num_decoding) {
  ++steps_;
  const int fit = num_decoding <= 0 ? 0 : config_.max_step_tokens / num_decoding - 1;
  const int cap = std::clamp(fit, 0, config_.max_draft);
  if (!config_.adaptive || cap == 0) return cap;
  int best = 0;
  double best_value = 1.0, value_of_one = 0.0;
  for (int k = 1; k <= cap; ++k) {
    const double value = step_gain(num_decoding, k) / step_cost(num_decoding, k);
    if (k == 1) value_of_one = value;
    if (value > best_value) best_value = value, best = k;
  }
  // Keep measuring while off, or the rate could never recover: one token every 16 steps, every
  // 64 where drafting is far from paying (each probe stops the pipeline once).
  if (best == 0 && steps_ % (value_of_one > 0.8 ? 16 : 64) == 0) best = 1;
  // And while on: two steps without drafts every 64 until the baseline time is known (the
  // first one after a drafting step is not timed: it waits for no step before it).
  if (best > 0 && steps_ % 64 >= 32 && steps_ % 64 < 34 && !costs_.fresh(num_decoding, 0, steps_))
    best = 0;
  return best;
}

void SpecController::record_step(int num_seqs, int k, double seconds, double tokens_per_seq) {
  costs_.record(num_seqs, k, seconds, tokens_per_seq, steps_);
}

void SpecController::record(int64_t examined, int64_t accepted) {
  if (examined <= 0) return;
  // Weight a step by its comparisons, so a big step counts more than one proposal.
  const double weight = 1.0 - std::pow(0.98, static_cast<double>(examined));
  rate_ += weight * (static_cast<double>(accepted) / static_cast<double>(examined) - rate_);
}

}  // namespace tessera
