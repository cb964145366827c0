#include "scheduler/scheduler_config.h"

#include <algorithm>
#include <memory>
#include <string>

#include "common/error.h"
#include "scheduler/policy_continuous.h"
#include "scheduler/policy_dynamic.h"
#include "scheduler/policy_static.h"

namespace tessera {

const char* policy_kind_name(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kStatic:
      return "static";
    case PolicyKind::kDynamic:
      return "dynamic";
    case PolicyKind::kContinuous:
      return "continuous";
  }
  return "unknown";
}

void SchedulerConfig::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw Error(ErrorKind::kInvalidArgument, "scheduler config: " + what);
  };
  kv.validate();
  require(max_num_seqs >= 1, "max_num_seqs must be >= 1, got " + std::to_string(max_num_seqs));
  require(max_num_batched_tokens >= 1,
          "max_num_batched_tokens must be >= 1, got " + std::to_string(max_num_batched_tokens));
  require(max_waiting >= 1, "max_waiting must be >= 1, got " + std::to_string(max_waiting));
  require(max_model_len >= 0, "max_model_len must be >= 0, got " + std::to_string(max_model_len));
  require(
      kv_admission_watermark >= 0.0 && kv_admission_watermark < 1.0,
      "kv_admission_watermark must be in [0, 1), got " + std::to_string(kv_admission_watermark));
  require(static_batch_size >= 1,
          "static_batch_size must be >= 1, got " + std::to_string(static_batch_size));
  require(static_flush_timeout.count() >= 0, "static_flush_timeout must be >= 0");
  require(dynamic_max_queue_delay.count() >= 0, "dynamic_max_queue_delay must be >= 0");
  require(priority_aging_interval.count() >= 0, "priority_aging_interval must be >= 0");
}

std::unique_ptr<BatchPolicy> make_policy(const SchedulerConfig& config) {
  switch (config.policy) {
    case PolicyKind::kStatic:
      // max_num_seqs bounds every policy, a static batch included.
      return std::make_unique<StaticPolicy>(std::min(config.static_batch_size, config.max_num_seqs),
                                            config.static_flush_timeout);
    case PolicyKind::kDynamic:
      return std::make_unique<DynamicPolicy>(config.max_num_seqs, config.dynamic_max_queue_delay);
    case PolicyKind::kContinuous:
      return std::make_unique<ContinuousPolicy>(config.max_num_seqs);
  }
  throw Error(ErrorKind::kInvalidArgument, "scheduler config: unknown policy");
}

}  // namespace tessera
