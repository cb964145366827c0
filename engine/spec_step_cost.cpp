#include "engine/spec_step_cost.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace tessera {
namespace {

constexpr int kBuckets = 12;    // batch sizes 1, 2-3, 4-7, ... 2048+
constexpr int kMinSamples = 3;  // the size of Entry::first

int bucket_of(int num_seqs) {
  const auto n = static_cast<unsigned>(std::max(1, num_seqs));
  return std::min(kBuckets - 1, static_cast<int>(std::bit_width(n)) - 1);
}

}  // namespace

StepCostTable::StepCostTable(int max_draft, int64_t stale_after)
    : max_draft_(std::max(0, max_draft)),
      stale_after_(stale_after),
      entries_(static_cast<size_t>(kBuckets * (max_draft_ + 1))) {}

const StepCostTable::Entry& StepCostTable::at(int bucket, int k) const {
  return entries_[static_cast<size_t>(bucket * (max_draft_ + 1) + std::clamp(k, 0, max_draft_))];
}

void StepCostTable::record(int num_seqs, int k, double seconds, double tokens_per_seq,
                           int64_t step) {
  if (num_seqs <= 0 || k < 0 || k > max_draft_ || !(seconds > 0.0)) return;
  auto& e = const_cast<Entry&>(at(bucket_of(num_seqs), k));
  if (step - e.last > stale_after_) e.count = 0;  // the old figures no longer apply
  e.last = step;
  e.tokens += std::max(1.0 / (e.count + 1), 0.1) * (tokens_per_seq - e.tokens);
  // One slow step (a graph captured for a new shape, a preemption) must not decide: the
  // median of the first three starts the estimate, and later samples move it by at most 2x.
  if (e.count < kMinSamples) {
    e.first[e.count++] = seconds;
    std::sort(e.first, e.first + e.count);
    e.seconds = e.first[(e.count - 1) / 2];
    return;
  }
  ++e.count;
  e.seconds += 0.1 * (std::clamp(seconds, 0.5 * e.seconds, 2.0 * e.seconds) - e.seconds);
}

std::optional<double> StepCostTable::tokens(int num_seqs, int k, int64_t step) const {
  const int b = bucket_of(num_seqs);
  if (!fresh_at(b, k, step)) return std::nullopt;
  return at(b, k).tokens;
}

bool StepCostTable::fresh_at(int bucket, int k, int64_t step) const {
  const Entry& e = at(bucket, k);
  return e.count >= kMinSamples && step - e.last <= stale_after_;
}

bool StepCostTable::fresh(int num_seqs, int k, int64_t step) const {
  return fresh_at(bucket_of(num_seqs), k, step);
}

std::optional<double> StepCostTable::estimate_at(int b, int k, int64_t step) const {
  if (!fresh_at(b, 0, step)) return std::nullopt;
  const double base = at(b, 0).seconds;
  if (fresh_at(b, k, step)) return at(b, k).seconds / base;
  for (int j = max_draft_; j >= 1; --j) {
    if (!fresh_at(b, j, step)) continue;
    const double per_token = std::max(0.0, at(b, j).seconds / base - 1.0) / j;
    return 1.0 + k * per_token;
  }
  return std::nullopt;
}

std::optional<double> StepCostTable::estimate(int num_seqs, int k, int64_t step) const {
  const int b = bucket_of(num_seqs);
  if (std::optional<double> e = estimate_at(b, k, step)) return e;
  if (b > 0)
    if (std::optional<double> e = estimate_at(b - 1, k, step)) return e;
  if (b + 1 < kBuckets) return estimate_at(b + 1, k, step);
  return std::nullopt;
}

}  // namespace tessera
