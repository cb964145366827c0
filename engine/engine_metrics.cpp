#include "engine/engine_metrics.h"

namespace tessera {
namespace {

// Token counts per step: 1 .. 16k in powers of two.
const std::vector<double> kTokenBuckets = metrics::exponential_buckets(1, 2, 15);

const char* reason_label(FinishReason r) {
  return r == FinishReason::kCancelled ? "abort" : finish_reason_name(r);
}

}  // namespace

EngineMetrics::EngineMetrics(metrics::Registry& r)
    : waiting_(r.gauge("tessera:num_requests_waiting", "Requests waiting to be scheduled.")),
      running_(r.gauge("tessera:num_requests_running", "Requests with sequences running.")),
      running_seqs_(r.gauge("tessera:num_sequences_running",
                            "Sequences running (each choice of n > 1 counts).")),
      preemptions_(r.counter("tessera:num_preemptions_total",
                             "Sequences preempted (their KV freed, to be recomputed).")),
      kv_used_(r.gauge("tessera:kv_cache_used_blocks", "KV cache blocks referenced.")),
      kv_total_(r.gauge("tessera:kv_cache_total_blocks", "KV cache blocks usable.")),
      kv_usage_(r.gauge("tessera:kv_cache_usage_ratio", "KV cache blocks used / total (0..1).")),
      kv_capacity_(r.gauge("tessera:kv_cache_capacity_tokens",
                           "Tokens the KV cache holds (usable blocks x block size).")),
      prefix_queries_(r.counter("tessera:prefix_cache_queries_total",
                                "Prompt tokens looked up in the prefix cache.")),
      prefix_hits_(
          r.counter("tessera:prefix_cache_hits_total", "Prompt tokens found in the prefix cache.")),
      prompt_tokens_(
          r.counter("tessera:prompt_tokens_total", "Prompt tokens of admitted requests.")),
      generation_tokens_(r.counter("tessera:generation_tokens_total", "Tokens generated.")),
      ttft_(r.histogram("tessera:time_to_first_token_seconds",
                        "Time from arrival to the first generated token.",
                        metrics::kLatencyBuckets)),
      itl_(r.histogram("tessera:inter_token_latency_seconds",
                       "Time between consecutive generated tokens of a sequence.",
                       metrics::kLatencyBuckets)),
      e2e_(r.histogram("tessera:e2e_request_latency_seconds",
                       "Time from arrival to the last choice finishing.",
                       metrics::kLatencyBuckets)),
      queue_time_(r.histogram("tessera:request_queue_time_seconds",
                              "Time from arrival to first being scheduled.",
                              metrics::kLatencyBuckets)),
      batch_tokens_(r.histogram("tessera:batch_size_tokens", "Tokens computed per engine step.",
                                kTokenBuckets)),
      batch_seqs_(r.histogram("tessera:batch_size_sequences", "Sequences per engine step.",
                              metrics::kBatchSizeBuckets)),
      spec_drafted_(r.counter("tessera:spec_decode_num_draft_tokens_total",
                              "Speculative tokens proposed and verified.")),
      spec_accepted_(r.counter("tessera:spec_decode_num_accepted_tokens_total",
                               "Speculative tokens accepted by verification.")),
      spec_length_(r.histogram("tessera:spec_decode_acceptance_length",
                               "Tokens one verification emitted (accepted drafts + 1).",
                               {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16})) {
  for (FinishReason reason : {FinishReason::kStop, FinishReason::kLength, FinishReason::kCancelled,
                              FinishReason::kDeadline, FinishReason::kError}) {
    const auto i = static_cast<size_t>(reason);
    finished_[i] = &r.counter("tessera:request_finished_total",
                              "Finished requests by final status (errors included).",
                              {{"finished_reason", reason_label(reason)}});
    if (reason == FinishReason::kStop || reason == FinishReason::kLength) {
      success_[i] = &r.counter("tessera:request_success_total",
                               "Requests finished without error (stop or length).",
                               {{"finished_reason", reason_label(reason)}});
    }
  }
}

void EngineMetrics::record_step(int num_tokens, int num_seqs) {
  batch_tokens_.observe(num_tokens);
  batch_seqs_.observe(num_seqs);
}

void EngineMetrics::record_verification(int drafted, int accepted) {
  spec_drafted_.inc(drafted);
  spec_accepted_.inc(accepted);
  spec_length_.observe(accepted + 1);
}

void EngineMetrics::set_queues(int waiting_requests, int running_requests, int running_seqs) {
  waiting_.set(waiting_requests);
  running_.set(running_requests);
  running_seqs_.set(running_seqs);
}

void EngineMetrics::set_kv(int used, int total, int block_size) {
  kv_capacity_.set(static_cast<double>(total) * block_size);
  kv_used_.set(used);
  kv_total_.set(total);
  kv_usage_.set(total > 0 ? static_cast<double>(used) / total : 0.0);
}

void EngineMetrics::add_prefix_cache(int64_t queried_tokens, int64_t hit_tokens) {
  prefix_queries_.inc(static_cast<double>(queried_tokens));
  prefix_hits_.inc(static_cast<double>(hit_tokens));
}

void EngineMetrics::record_finished(FinishReason reason, double e2e_seconds) {
  const auto i = static_cast<size_t>(reason);
  finished_[i]->inc();
  if (success_[i]) success_[i]->inc();
  e2e_.observe(e2e_seconds);
}

}  // namespace tessera
