#include "engine/ngram_proposer.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace tessera {

std::vector<int32_t> ngram_lookup(std::span<const int32_t> tokens, int min_n, int max_n, int k) {
  const int len = static_cast<int>(tokens.size());
  if (k <= 0) return {};
  for (int n = std::min(max_n, len - 1); n >= std::max(1, min_n); --n) {
    const auto suffix = tokens.subspan(static_cast<size_t>(len - n));
    // Latest occurrence first: recent context predicts the continuation best. It may overlap
    // the suffix itself; at least one token must follow it.
    for (int start = len - n - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), tokens.begin() + start)) continue;
      // Past the end, the proposal continues with itself: a repeating pattern proposes
      // whole periods.
      const int from = start + n;
      std::vector<int32_t> out;
      out.reserve(static_cast<size_t>(k));
      for (int i = from; i < from + k; ++i)
        out.push_back(i < len ? tokens[static_cast<size_t>(i)] : out[static_cast<size_t>(i - len)]);
      return out;
    }
  }
  return {};
}

int NgramProposer::draft_len(SeqId id, std::span<const int32_t> tokens, int k) {
  std::vector<int32_t> draft = ngram_lookup(tokens, min_n_, max_n_, k);
  const int n = static_cast<int>(draft.size());
  if (n > 0)
    pending_[id] = std::move(draft);
  else
    pending_.erase(id);
  return n;
}

std::vector<std::vector<int32_t>> NgramProposer::propose(
    const StepPlan& plan, const StepLayout&, std::span<const std::pair<int32_t, int32_t>>) {
  std::vector<std::vector<int32_t>> drafts(plan.seqs.size());
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    if (s.num_draft == 0) continue;
    auto it = pending_.find(s.id);
    // The scheduler only shortens a draft (budget, length limits), never lengthens it.
    if (it == pending_.end() || static_cast<int>(it->second.size()) < s.num_draft)
      throw Error(ErrorKind::kInternal, "ngram proposer: no draft of " +
                                            std::to_string(s.num_draft) + " tokens for sequence " +
                                            std::to_string(s.id));
    drafts[i].assign(it->second.begin(), it->second.begin() + s.num_draft);
  }
  pending_.clear();
  return drafts;
}

}  // namespace tessera
