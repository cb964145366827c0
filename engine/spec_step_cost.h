#pragma once
// What a draft length k actually brought, per batch size: the decode step's time and the
// tokens each sequence gained, for steps where the controller chose k. Keyed by the choice,
// not by the drafts that came back: a step that asked for drafts is not pipelined, also when
// the proposer found none, and that is part of k's price. A prior from another model or GPU
// can be 3x off (a launch-bound 135M model pays ~16% of a step per verified token where the
// 8B shape pays 7%), so the controller prefers what this engine measured. Pure: times come
// from the caller.
#include <cstdint>
#include <optional>
#include <vector>

namespace tessera {

class StepCostTable {
 public:
  // Entries older than stale_after steps count as unmeasured, so a changed load (longer
  // contexts, another mix of requests) is measured again.
  explicit StepCostTable(int max_draft, int64_t stale_after = 512);
  // A decode-only step of num_seqs sequences, for which the controller chose k, took
  // seconds and gave tokens_per_seq tokens per sequence (1 + accepted drafts).
  void record(int num_seqs, int k, double seconds, double tokens_per_seq, int64_t step);
  // Step time with k drafts per sequence over the time with none: measured at this batch
  // size where both are fresh, else a line through the longest measured draft of this batch
  // size, else the same from the next smaller or larger batch size; empty when none of these
  // is measured.
  std::optional<double> estimate(int num_seqs, int k, int64_t step) const;
  bool fresh(int num_seqs, int k, int64_t step) const;
  // Mean tokens per sequence of the steps that chose k at this batch size, once fresh.
  std::optional<double> tokens(int num_seqs, int k, int64_t step) const;

 private:
  struct Entry {
    double seconds = 0.0;
    int count = 0;
    int64_t last = 0;
    double first[3] = {};  // the median of the first samples starts the average
    double tokens = 0.0;
  };
  const Entry& at(int bucket, int k) const;
  bool fresh_at(int bucket, int k, int64_t step) const;
  std::optional<double> estimate_at(int bucket, int k, int64_t step) const;

  int max_draft_;
  int64_t stale_after_;
  std::vector<Entry> entries_;  // [batch bucket][k]
};

}  // namespace tessera
