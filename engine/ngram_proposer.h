#pragma once
// Prompt-lookup (n-gram) proposer: the sequence's last n tokens (n from max_n down to min_n)
// are looked up in its own earlier tokens, and the tokens that followed the latest earlier
// occurrence are proposed. Free to run, and strong wherever the output copies the input
// (edits, summaries with quotes, code refactoring).
#include <unordered_map>

#include "engine/proposer.h"

namespace tessera {

// The k tokens that followed the latest earlier occurrence of tokens' last n tokens, trying
// n = max_n first (continuing periodically past the end). Empty when no suffix of length
// >= min_n recurs.
std::vector<int32_t> ngram_lookup(std::span<const int32_t> tokens, int min_n, int max_n, int k);

class NgramProposer final : public Proposer {
 public:
  NgramProposer(int min_n, int max_n) : min_n_(min_n), max_n_(max_n) {}
  const char* name() const override { return "ngram"; }
  int draft_len(SeqId id, std::span<const int32_t> tokens, int k) override;
  std::vector<std::vector<int32_t>> propose(
      const StepPlan& plan, const StepLayout& layout,
      std::span<const std::pair<int32_t, int32_t>> copies) override;

 private:
  int min_n_, max_n_;
  std::unordered_map<SeqId, std::vector<int32_t>> pending_;  // draft_len's lookups
};

}  // namespace tessera
