#include "engine/spec_step_cost.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <utility>

namespace tessera {
namespace {

constexpr int kBuckets = 12;  // batch sizes 1, 2-3, 4-7, ... 2048+
constexpr int kMinSamples = 3;

int bucket(int num_seqs) {
  return std::min(
      kBuckets - 1,
      static_cast<int>(std::bit_width(static_cast<unsigned>(std::max(1, num_seqs)))) - 1);
}

}  // namespace

StepCostTable::StepCostTable(int max_draft, int64_t stale_after)
    : max_draft_(std::max(0, max_draft)),
      stale_after_(stale_after),
      entries_(static_cast<size_t>(kBuckets * (max_draft_ + 1))) {}

const StepCostTable::Entry& StepCostTable::at(int num_seqs, int k) const {
  return entries_[static_cast<size_t>(bucket(num_seqs) * (max_draft_ + 1) +
                                      std::clamp(k, 0, max_draft_))];
}

StepCostTable::Entry& StepCostTable::at(int num_seqs, int k) {
  return const_cast<Entry&>(std::as_const(*this).at(num_seqs, k));
}

void StepCostTable::record(int num_seqs, int draft_tokens, double seconds, int64_t step) {
  if (num_seqs <= 0 || !(seconds > 0.0)) return;
  const int k = static_cast<int>(std::lround(static_cast<double>(draft_tokens) / num_seqs));
  Entry& e = at(num_seqs, k);
  if (step - e.last > stale_after_) e.count = 0;  // the old figure no longer applies
  ++e.count;
  // A plain mean for the first samples, then an exponential average that follows drift.
  const double weight = std::max(1.0 / e.count, 0.1);
  e.seconds += weight * (seconds - e.seconds);
  e.last = step;
}

bool StepCostTable::fresh(int num_seqs, int k, int64_t step) const {
  const Entry& e = at(num_seqs, k);
  return e.count >= kMinSamples && step - e.last <= stale_after_;
}

std::optional<double> StepCostTable::relative(int num_seqs, int k, int64_t step) const {
  if (!fresh(num_seqs, k, step) || !fresh(num_seqs, 0, step)) return std::nullopt;
  return at(num_seqs, k).seconds / at(num_seqs, 0).seconds;
}

}  // namespace tessera
