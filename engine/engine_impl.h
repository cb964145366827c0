#pragma once
// EngineImpl: the Engine behind every frontend. One engine thread owns the scheduler, the
// executor and the request table; submit() and stream cancellation only touch a small
// mutex-guarded inbox and atomic flags. Each step reads, in order:
//
//   plan = scheduler.schedule(now);   // who computes which tokens, preemptions, copies
//   out  = executor.execute(plan);    // forward pass + sampling
//   scheduler.update(plan, out);      // append sampled tokens, cache full blocks
//   ... then per sampled token: detokenize, stops, stream events, finish sequences.
//
// Pipelined steps (EngineParts::async_scheduling, on by default on CUDA): while the device
// runs step N the host schedules and launches step N + 1, the sequences' new tokens standing
// in it as kPendingToken (fed in on the device), and only then waits for step N and does its
// detokenization, stop matching and streaming, which overlap step N + 1. A sequence that step
// N ends has one wasted row in step N + 1. Steps that need the host between them (host
// sampling, drafts, beams, n > 1, tensor parallelism) run one at a time as above.
//
// A step that throws fails only the requests in it; the loop keeps serving.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "common/metrics.h"
#include "engine/engine.h"
#include "engine/engine_config.h"
#include "engine/engine_metrics.h"
#include "engine/model_runner.h"
#include "engine/proposer.h"
#include "engine/request_state.h"
#include "engine/spec_decode.h"
#include "model/model_config.h"
#include "scheduler/scheduler.h"

namespace tessera {

// Everything an EngineImpl is built from; create_engine() fills it from a real model, tests
// from a scripted executor.
struct EngineParts {
  EngineConfig config;
  std::shared_ptr<const Tokenizer> tokenizer;
  ModelConfig model_config;
  std::string model_name;
  int max_model_len = 0;
  SchedulerConfig scheduler;
  // Called once on the engine's constructor with the engine as the SamplingSource.
  std::function<std::unique_ptr<StepExecutor>(const SamplingSource&)> make_executor;
  std::shared_ptr<void> resources;        // weights, backend, model: released after the executor
  metrics::Registry* registry = nullptr;  // nullptr: metrics::default_registry()
  // Speculative decoding: the proposer the executor also runs (owned by resources) and how
  // many tokens to draft. nullptr: off.
  Proposer* proposer = nullptr;
  SpecControlConfig spec;
  bool async_scheduling = false;  // pipelined steps where the executor can_launch them
};

class EngineImpl final : public Engine, private SamplingSource {
 public:
  explicit EngineImpl(EngineParts parts);  // starts the engine thread
  ~EngineImpl() override;

  std::shared_ptr<ResultStream> submit(GenerationRequest request) override;
  const Tokenizer& tokenizer() const override { return *parts_.tokenizer; }
  const ModelConfig& model_config() const override { return parts_.model_config; }
  std::string model_name() const override { return parts_.model_name; }
  int max_model_len() const override { return parts_.max_model_len; }
  EngineStats stats() const override;
  bool ready() const override { return ready_.load(std::memory_order_acquire); }
  void stop() override;

  // Between steps the engine thread sleeps at most this long, so EngineStats::last_step_end
  // keeps moving while idle and /health only fails when the loop is really stuck.
  static constexpr std::chrono::milliseconds kIdleTick{100};

 private:
  // Wakes the engine thread; shared with streams so a late cancel after the engine is gone
  // touches only this.
  struct Signal {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::unique_ptr<RequestState>> inbox;
    bool poked = false;
    void poke();
  };

  SeqSampling sampling_for(SeqId id) const override;

  void loop();
  void admit_inbox();
  void sweep_requests(Clock::time_point now);
  // Runs one step; returns when the scheduler wants to be asked again if nothing ran.
  std::optional<Clock::time_point> step();
  // Speculative decoding: asks the proposer for drafts of the sequences about to decode.
  std::vector<SeqId> decoding_seqs() const;
  bool plan_drafts();  // true when it waited for the step in flight
  void record_step_cost(const StepPlan& plan, Clock::time_point start, const StepOutput* out);
  // Pipelined steps: waits for the step in flight, then does its bookkeeping.
  void complete_inflight();
  void record_verifications(const StepOutput& out);
  void handle_failed(const StepPlan& plan);
  void note_scheduled(const StepPlan& plan, Clock::time_point now);
  void process_output(const StepOutput& out);
  void fork_siblings(RequestState& req, SeqId parent, const StepOutput& out, size_t row);
  void on_token(RequestState& req, int choice, int32_t token, std::optional<TokenLogprob> lp);
  void fail_step(const StepPlan& plan, const std::exception& e);
  void note_step_failed(const std::string& error);
  // Ends choice `choice` (or, before an n > 1 fork, the whole request) with `reason`.
  void end_choice_or_request(RequestState& req, int choice, FinishReason reason,
                             const std::string& error);
  void end_request(RequestState& req, FinishReason reason, const std::string& error);
  void finish_choice(RequestState& req, ChoiceState& c, FinishReason reason,
                     const std::string& error, GenerationEvent ev);
  void on_request_done(RequestState& req);
  // Beam search (engine_beam.cpp): next beams before scheduler.update, forks after it.
  struct BeamFork {
    RequestState* req;
    SeqId parent;
    SeqId child;
    int32_t token;
  };
  void start_beams(RequestState& req) const;
  void advance_beams(StepOutput& out);
  void advance_beam_group(RequestState& req, StepOutput& out,
                          const std::vector<size_t>& sampled_rows);
  void fork_beams();
  void finish_beams(RequestState& req);
  void release_beams(RequestState& req, bool natural);
  void fail_all(const std::string& message);
  void publish_stats(Clock::time_point now);
  std::pair<int, int> count_requests() const;  // (waiting, running) API requests
  void wait_for_work(Clock::time_point until);
  void shutdown_requests();

  EngineParts parts_;
  Scheduler scheduler_;
  std::unique_ptr<StepExecutor> executor_;
  EngineMetrics metrics_;
  const uint64_t seed_base_;
  SpecController spec_;
  int spec_draft_len_ = 0;  // the controller's choice for the step being planned

  // Engine-thread state.
  std::unordered_map<uint64_t, std::unique_ptr<RequestState>> requests_;
  std::unordered_map<SeqId, std::pair<RequestState*, int>> seqs_;  // -> (request, choice)
  std::vector<BeamFork> beam_forks_;  // chosen in this step's advance_beams
  std::optional<StepPlan> inflight_;  // launched, not yet waited for (pipelined steps)
  uint64_t next_request_ = 1;
  SeqId next_seq_ = 1;
  int64_t steps_ = 0;
  int64_t pipelined_steps_ = 0;
  int64_t preemptions_ = 0;
  int64_t prefix_queries_seen_ = 0;
  int64_t prefix_hits_seen_ = 0;
  int consecutive_failed_steps_ = 0;
  std::string last_step_error_;
  // Tests only (TESSERA_DEBUG_STALL_STEP_MS): every step sleeps this long first, standing in
  // for a stuck device so shutdown paths can be tested.
  const int debug_stall_step_ms_;

  // Shared with submitters.
  std::shared_ptr<Signal> signal_;
  std::atomic<int> num_waiting_{0};  // in the scheduler's waiting queue
  std::atomic<uint64_t> seed_counter_{0};
  std::atomic<uint64_t> id_counter_{0};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> ready_{false};
  mutable std::mutex stats_mu_;
  EngineStats stats_;
  std::thread thread_;
};

}  // namespace tessera
