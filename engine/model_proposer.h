#pragma once
// Proposers that run a model: the draft tokens are the argmax of a cheaper forward pass, one
// token per pass after the first.
//   early exit (self-speculative): the served model's first L layers, its final norm and LM
//     head. It writes those layers' KV into the target's own cache at the draft positions;
//     the verification pass rewrites them for every position it computes, so no extra KV.
//   draft model: a second, smaller model sharing the tokenizer, with its own KV cache of the
//     same block count, addressed through the target's block tables. It runs only in steps
//     that draft: it first catches up on the tokens its cache lacks (the whole sequence the
//     first time, what was decoded meanwhile later), so steps without drafts cost nothing
//     and pipeline like plain decoding.
#include <unordered_map>

#include "engine/proposer.h"

namespace tessera {

class LlamaModel;

class ModelProposer final : public Proposer {
 public:
  // num_layers: early exit's L (0: all layers, a draft model). own_kv: the model is a
  // separate draft with its own cache. pad_decode_batches: pad single-token passes to
  // padded_decode_batch() sizes (backends replaying CUDA graphs). cost: one draft pass
  // relative to a target decode step.
  // catchup_tokens: the most tokens of one catch-up pass of a draft model.
  ModelProposer(LlamaModel& model, int num_layers, bool own_kv, int block_size,
                bool pad_decode_batches, double cost, int catchup_tokens = 512);
  const char* name() const override { return own_kv_ ? "draft" : "early-exit"; }
  int draft_len(SeqId id, std::span<const int32_t> tokens, int k) override;
  std::vector<std::vector<int32_t>> propose(
      const StepPlan& plan, const StepLayout& layout,
      std::span<const std::pair<int32_t, int32_t>> copies) override;
  void verified(const StepPlan& plan, std::span<const int> accepted) override;
  void forget(std::span<const SeqId> ids) override;
  double draft_cost() const override { return cost_; }
  // Positions of a sequence whose KV the draft model's cache holds (tests).
  int draft_computed(SeqId id) const;

 private:
  // What a draft model's own cache holds of a sequence.
  struct DraftState {
    int computed = 0;              // positions [0, computed) are in the cache
    std::vector<int32_t> pending;  // known tokens from `computed` on, set by draft_len()
  };

  // Runs one pass and returns the argmax token of each logits row.
  std::vector<int32_t> run_pass(StepPlan& pass);
  // Draft model: feeds each drafting sequence's known tokens that its cache lacks, all but
  // the last few (pass 0 takes those), in passes of at most catchup_tokens_.
  void catch_up(const StepPlan& plan, std::span<const size_t> drafting);

  LlamaModel& model_;
  int num_layers_;
  bool own_kv_;
  int block_size_;
  bool pad_;
  double cost_;
  int catchup_tokens_;
  std::unordered_map<SeqId, DraftState> draft_;  // draft model only
};

}  // namespace tessera
