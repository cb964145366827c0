#pragma once
// The Engine owns the request table and the step loop on one thread:
//   plan = scheduler.schedule(); out = runner.execute(plan); scheduler.update(plan, out);
// Frontends call submit/cancel from any thread and read events from a ResultStream.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/request.h"

namespace tessera {

class Tokenizer;
struct ModelConfig;

// Per-request stream of events; thread-safe. Dropping the last reference cancels the request
// (nobody could read its output); cancel() does so explicitly.
class ResultStream {
 public:
  virtual ~ResultStream() = default;
  // Blocks up to `timeout`; nullopt on timeout. After every choice has finished, returns
  // nullopt immediately and done() is true.
  virtual std::optional<GenerationEvent> next(std::chrono::milliseconds timeout) = 0;
  virtual bool done() const = 0;
  virtual void cancel() = 0;
  // For event-driven readers (an I/O loop cannot block in next()): `fn` runs on the producing
  // thread, outside any lock, after each event is queued; it must be cheap and must not block
  // (post to a loop, set a flag). Events queued before the call are not signalled, so read
  // next(0) once after setting it. An empty `fn` removes it. Returns false when this stream
  // cannot notify; the reader then has to poll.
  virtual bool set_listener(std::function<void()> fn) {
    (void)fn;
    return false;
  }
};

struct EngineStats {
  int waiting = 0;
  int running = 0;
  int64_t preemptions_total = 0;
  int kv_blocks_used = 0;
  int kv_blocks_total = 0;
  int64_t steps_total = 0;
  int64_t pipelined_steps_total = 0;  // launched before the previous step was waited for
  // The device's time on steps and waiting for the host between them (CUDA; zeros elsewhere).
  double device_busy_seconds = 0.0;
  double device_idle_seconds = 0.0;
  int64_t device_steps = 0;
  Clock::time_point last_step_end;
  int live_requests = 0;  // submitted and not yet finished (queued in the inbox included)
  // Steps that threw, in a row (0 after a step that ran): a backend that fails every step
  // is unhealthy even though the loop keeps ticking. See kUnhealthyFailedSteps.
  int consecutive_failed_steps = 0;
  std::string last_step_error;  // of the latest failed step
};

// /health (HTTP and gRPC) turns unhealthy after this many failed steps in a row: one bad
// request must not get the process restarted, a wedged device must.
inline constexpr int kUnhealthyFailedSteps = 3;

// The health verdict both frontends report.
struct EngineHealth {
  bool ok = true;
  std::string status;  // "ok", "stalled" or "failing"
  int64_t last_step_age_ms = 0;
};
EngineHealth engine_health(const EngineStats& s, Clock::time_point started, int stall_timeout_ms);

class Engine {
 public:
  virtual ~Engine() = default;
  // Throws Error(kInvalidArgument) for bad params, Error(kResourceExhausted) when the waiting
  // queue is full.
  virtual std::shared_ptr<ResultStream> submit(GenerationRequest request) = 0;
  virtual const Tokenizer& tokenizer() const = 0;
  virtual const ModelConfig& model_config() const = 0;
  virtual std::string model_name() const = 0;
  virtual int max_model_len() const = 0;
  virtual EngineStats stats() const = 0;
  virtual bool ready() const = 0;  // true once the first step ran
  virtual void stop() = 0;
};

}  // namespace tessera
