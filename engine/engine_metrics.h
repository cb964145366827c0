#pragma once
// Engine-side Prometheus series (issue 3 item 7), recorded into a metrics::Registry.
// Children are looked up once here so recording on the engine thread is lock-free (counters,
// gauges) or one short mutex (histograms).
//
// Semantics follow vLLM's: requests are API requests (all n choices together).
//   tessera:request_success_total{finished_reason}   requests finished without error
//                                                     (stop | length)
//   tessera:request_finished_total{finished_reason}  every finished request by final status
//                                                     (stop | length | abort | deadline | error)
//   tessera:num_requests_waiting / _running           requests, refreshed every step: running =
//                                                     a sequence in the running set
//   tessera:num_sequences_running                     sequences (n > 1 counts each choice);
//                                                     bounded by max_num_seqs
//   tessera:num_preemptions_total                     sequences preempted (recompute)
//   tessera:kv_cache_used_blocks, tessera:kv_cache_total_blocks, tessera:kv_cache_usage_ratio,
//   tessera:kv_cache_capacity_tokens
//   tessera:prefix_cache_queries_total / _hits_total  in prompt tokens (as vLLM counts)
//   tessera:prompt_tokens_total, tessera:generation_tokens_total
//   tessera:time_to_first_token_seconds, tessera:inter_token_latency_seconds,
//   tessera:e2e_request_latency_seconds, tessera:request_queue_time_seconds
//   tessera:batch_size_tokens, tessera:batch_size_sequences   per step
//   tessera:spec_decode_num_draft_tokens_total / _num_accepted_tokens_total   speculative
//                                                     tokens verified / accepted
//   tessera:spec_decode_acceptance_length             tokens a verification emitted
//                                                     (accepted + 1), per sequence and step
#include <array>

#include "common/metrics.h"
#include "engine/request.h"

namespace tessera {

class EngineMetrics {
 public:
  explicit EngineMetrics(metrics::Registry& registry);

  void record_step(int num_tokens, int num_seqs);
  void set_queues(int waiting_requests, int running_requests, int running_seqs);
  void set_kv(int used, int total, int block_size);
  void add_preemptions(int n) { preemptions_.inc(n); }
  void add_prefix_cache(int64_t queried_tokens, int64_t hit_tokens);
  void add_prompt_tokens(int64_t n) { prompt_tokens_.inc(static_cast<double>(n)); }
  void add_generation_tokens(int64_t n) { generation_tokens_.inc(static_cast<double>(n)); }
  void observe_ttft(double s) { ttft_.observe(s); }
  void observe_itl(double s) { itl_.observe(s); }
  void observe_queue_time(double s) { queue_time_.observe(s); }
  // One sequence's verification: drafted tokens, of which accepted.
  void record_verification(int drafted, int accepted);
  // One finished request (all its choices): its final status and end-to-end latency.
  // Label names for the status: cancelled is vLLM's "abort".
  void record_finished(FinishReason reason, double e2e_seconds);

 private:
  std::array<metrics::Counter*, 5> finished_{};
  std::array<metrics::Counter*, 5> success_{};  // nullptr for reasons that are not success
  metrics::Gauge& waiting_;
  metrics::Gauge& running_;
  metrics::Gauge& running_seqs_;
  metrics::Counter& preemptions_;
  metrics::Gauge& kv_used_;
  metrics::Gauge& kv_total_;
  metrics::Gauge& kv_usage_;
  metrics::Gauge& kv_capacity_;
  metrics::Counter& prefix_queries_;
  metrics::Counter& prefix_hits_;
  metrics::Counter& prompt_tokens_;
  metrics::Counter& generation_tokens_;
  metrics::Histogram& ttft_;
  metrics::Histogram& itl_;
  metrics::Histogram& e2e_;
  metrics::Histogram& queue_time_;
  metrics::Histogram& batch_tokens_;
  metrics::Histogram& batch_seqs_;
  metrics::Counter& spec_drafted_;
  metrics::Counter& spec_accepted_;
  metrics::Histogram& spec_length_;
};

}  // namespace tessera
