#pragma once
// Proposers that run a model: the draft tokens are the argmax of a cheaper forward pass, one
// token per pass after the first.
//   early exit (self-speculative): the served model's first L layers, its final norm and LM
//     head. It writes those layers' KV into the target's own cache at the draft positions;
//     the verification pass rewrites them for every position it computes, so no extra KV.
//   draft model: a second, smaller model sharing the tokenizer, with its own KV cache of the
//     same block count, addressed through the target's block tables. It also runs every
//     prefill chunk the target runs, so its cache covers what the target's covers.
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
  ModelProposer(LlamaModel& model, int num_layers, bool own_kv, int block_size,
                bool pad_decode_batches, double cost);
  const char* name() const override { return own_kv_ ? "draft" : "early-exit"; }
  int draft_len(SeqId, std::span<const int32_t>, int k) override { return k; }
  std::vector<std::vector<int32_t>> propose(
      const StepPlan& plan, const StepLayout& layout,
      std::span<const std::pair<int32_t, int32_t>> copies) override;
  void verified(const StepPlan& plan, std::span<const int> accepted) override;
  bool runs_every_step() const override { return own_kv_; }
  double draft_cost() const override { return cost_; }

 private:
  // Runs one pass and returns the argmax token of each logits row.
  std::vector<int32_t> run_pass(StepPlan& pass);

  LlamaModel& model_;
  int num_layers_;
  bool own_kv_;
  int block_size_;
  bool pad_;
  double cost_;
  // Draft model: when every draft was accepted, the last draft token's KV is missing from
  // the draft cache (it was proposed, never fed): sequence -> (position, token), fed first
  // at the next step.
  std::unordered_map<SeqId, std::pair<int, int32_t>> gap_;
  std::unordered_map<SeqId, int32_t> last_draft_;  // this step's final draft token
};

}  // namespace tessera
