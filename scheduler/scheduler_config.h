#pragma once
// Scheduler knobs. The engine fills this from EngineConfig; validate() checks it in one place.
#include <chrono>
#include <cstdint>

#include "kvcache/kv_cache_manager.h"

namespace tessera {

enum class PolicyKind { kStatic, kDynamic, kContinuous };
const char* policy_kind_name(PolicyKind kind);

struct SchedulerConfig {
  PolicyKind policy = PolicyKind::kContinuous;
  KvCacheConfig kv;

  int max_num_seqs = 64;             // running sequences at once (dynamic: max batch size)
  int max_num_batched_tokens = 512;  // tokens computed per step (decode + prefill)
  bool enable_chunked_prefill = true;
  int max_waiting = 1024;  // submit() beyond this: kQueueFull (HTTP 429)
  int max_model_len = 0;   // prompt + generated cap; 0 = only the KV capacity
  // While others run, a waiting sequence joins only if this fraction of the blocks stays
  // free afterwards, so running sequences can grow without preempting at once (vLLM's
  // watermark). Rounded down: pools under 1/fraction blocks have none.
  double kv_admission_watermark = 0.01;

  int static_batch_size = 8;                              // static: N
  std::chrono::milliseconds static_flush_timeout{50};     // static: launch partial batch
  std::chrono::milliseconds dynamic_max_queue_delay{10};  // dynamic

  // Anti-starvation: every full interval a sequence has waited since arrival adds +1 to its
  // effective priority. 0 = off (strict priority; FIFO within a priority).
  std::chrono::milliseconds priority_aging_interval{0};

  void validate() const;  // throws Error(kInvalidArgument) naming the field
};

}  // namespace tessera
