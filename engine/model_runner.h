#pragma once
// ModelRunner: executes one StepPlan on the model. It turns the plan into the backend's
// StepLayout (tokens, positions, slot mapping from block tables, CSR offsets, the rows that
// need logits), runs copy-on-write block copies and the forward pass, and samples one token
// for every sequence whose plan entry says `sample`.
//
// Sampling runs on the backend (Ops::sample_on_device) when it has a sampler, for every row
// but beam search and the first token of a request with n > 1 (its siblings are forked from
// that logits row on the host); temperature, top-k/top-p/min_p, the penalties and logprobs
// all run there. Only the other rows' logits are copied to the host and sampled there. On a
// backend with CUDA graphs, decode steps are padded to a few batch sizes so that each size is
// captured once.
//
// Not thread-safe: the engine thread owns it.
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/request.h"
#include "engine/sampler.h"
#include "engine/step_layout.h"
#include "kernels/ops.h"
#include "scheduler/scheduler.h"

namespace tessera {

class LlamaModel;
class Proposer;

// What the sampler needs to know about one sequence; spans must stay valid during execute().
struct SeqSampling {
  const SamplingParams* params = nullptr;
  std::span<const int32_t> prompt;
  std::span<const int32_t> output;  // generated so far by this sequence (choice)
  uint64_t seed = 0;                // the choice's seed
  // Tokens sampled by a step still running, not in `output` yet (pipelined steps): the next
  // draw index is output.size() + pending.
  int pending = 0;
  // Its logits row must reach the host (the first token of a request with n > 1).
  bool needs_host_row = false;
};

// Implemented by the engine's request table.
class SamplingSource {
 public:
  virtual ~SamplingSource() = default;
  virtual SeqSampling sampling_for(SeqId id) const = 0;
};

// One sequence's verification in a speculative step.
struct SpecResult {
  SeqId id = 0;
  int drafted = 0;   // proposed tokens verified
  int accepted = 0;  // of those, accepted (the step emitted accepted + 1 tokens)
};

struct StepOutput {
  // Plan order, one per sampling seq; a seq verifying a draft has accepted + 1 in a row.
  std::vector<SampledToken> sampled;
  std::vector<std::optional<TokenLogprob>> logprobs;  // aligned with sampled
  std::vector<float> logits;                          // host rows, [.., vocab], raw
  // logits row of the i-th sampled token, -1 when it was sampled on the device and its
  // row never reached the host. Empty: row i is logits row i.
  std::vector<int32_t> host_row;
  int vocab = 0;
  std::vector<SpecResult> spec;  // sequences that verified a draft, plan order

  // Raw logits of the i-th sampled token (n > 1 samples its other choices from it).
  // Throws Error(kInternal) when that row stayed on the device.
  std::span<const float> row(size_t i) const;
};

// Whether the backend's sampler may sample this sequence's row (see the header comment).
bool samples_on_device(const SeqSampling& view);
// The backend sampler's spec for a row: the same draw (seed, output index) and the same
// parameters as the host's; the penalty history is the view's prompt and output.
SampleSpec device_sample_spec(const SeqSampling& view);
// The token and logprobs the backend reported, as the host sampler reports them.
TokenLogprob token_logprob(int32_t token, const SampledLogprobs& l);

// What the engine loop calls: `out = executor.execute(plan)`. ModelRunner is the real one;
// tests substitute a scripted executor to drive the loop without a model.
//
// Pipelined steps: for a plan can_launch() accepts, launch(plan) starts the step and returns;
// wait() returns the outputs of the launched steps, oldest first. A plan may hold
// kPendingToken as a sequence's last token: the token the previous step sampled for it,
// which the executor feeds in without the host seeing it.
class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  virtual StepOutput execute(const StepPlan& plan) = 0;
  virtual bool can_launch(const StepPlan& plan) const {
    (void)plan;
    return false;
  }
  virtual void launch(const StepPlan& plan) { pending_.push_back(execute(plan)); }
  virtual StepOutput wait() {
    StepOutput out = std::move(pending_.front());
    pending_.pop_front();
    return out;
  }
  // Device time of the steps so far (Ops::device_timeline); zeros where not measured.
  virtual Ops::DeviceTimeline device_timeline() { return {}; }

 private:
  std::deque<StepOutput> pending_;
};

class ModelRunner final : public StepExecutor {
 public:
  // pad_decode_batches: pad decode-only steps to padded_decode_batch() sizes (for backends
  // that replay decode steps from CUDA graphs).
  ModelRunner(LlamaModel& model, int block_size, const SamplingSource& source,
              bool pad_decode_batches = false);

  // Runs the plan's copies and forward pass, then samples. An empty plan does nothing.
  StepOutput execute(const StepPlan& plan) override;
  // Pipelined: plans whose every sampling row the backend samples (no drafts, no host
  // sampling, one rank). Without Ops::sample_async, launch() runs the step synchronously.
  bool can_launch(const StepPlan& plan) const override;
  void launch(const StepPlan& plan) override;
  StepOutput wait() override;
  Ops::DeviceTimeline device_timeline() override;

  // Tensor parallelism: called with each step's block copies and layout before rank 0 runs
  // it, so the other ranks run the same step (engine/tp_group.h).
  using StepForwarder = std::function<void(std::span<const std::pair<int32_t, int32_t>> copies,
                                           const StepLayout& layout)>;
  void set_step_forwarder(StepForwarder f) { forward_step_ = std::move(f); }
  // Speculative decoding: fills the plan's draft slots each step (engine/proposer.h).
  void set_proposer(Proposer* p) { proposer_ = p; }

 private:
  struct Prepared;
  Prepared prepare(const StepPlan& plan);
  StepOutput sample(const StepPlan& plan, Prepared& p);
  void feed_pending_tokens(const StepPlan& plan, StepLayout& layout) const;
  void remember_sample(const StepPlan& plan, bool on_device, std::span<const int32_t> tokens);
  // The output tokens row i's penalties and draw see beyond its view's output (into `extra`):
  // the token the previous step sampled for it while still pending, then the drafts before
  // the row. Returns that token's row in the previous sampling when it is still on the
  // device (and not in `extra`), else -1.
  int32_t output_beyond_view(const StepPlan& plan, const Prepared& p, size_t i,
                             std::vector<int32_t>& extra) const;
  // The device spec of a row: draw index and penalty history advanced past the drafts before
  // it and the token the previous step sampled for it (kept in `extra`, which must outlive
  // the sampling).
  SampleSpec row_spec(const StepPlan& plan, const Prepared& p, size_t i,
                      std::vector<int32_t>& extra) const;

  // The latest sampling step, for the next plan's kPendingToken entries: each sequence's
  // row in it and, once on the host, the tokens.
  struct LastSample {
    uint64_t serial = 0;
    std::unordered_map<SeqId, int32_t> row;
    std::vector<int32_t> tokens;  // empty until collected
    bool on_device = false;       // tokens still in the backend's sample buffer
  };
  // A launched step: its sampling rows (sequence, draft index 0) and, when it ran
  // synchronously, its output.
  struct Launched {
    uint64_t serial = 0;
    std::vector<SeqId> row_ids;
    std::vector<char> logprobs;  // per row: whether it asked for logprobs
    std::optional<StepOutput> done;
  };
  LastSample last_;
  std::deque<Launched> launched_;
  uint64_t next_serial_ = 1;

  StepForwarder forward_step_;
  Proposer* proposer_ = nullptr;
  LlamaModel& model_;
  int block_size_;
  const SamplingSource& source_;
  bool pad_decode_batches_;
};

}  // namespace tessera
