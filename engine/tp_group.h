#pragma once
// Rank 0's side of tensor parallelism: starts the local worker processes (or waits for
// remote ones started as `tessera worker --master HOST:PORT`), sends them the bootstrap,
// forwards every step to them before rank 0 runs it, and watches them: a worker that exits
// or hangs marks the group failed and calls on_failure (which aborts the NCCL communicator,
// so a collective waiting on the dead rank returns instead of hanging).
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/tp_channel.h"
#include "kernels/ops.h"

namespace tessera {

struct TpGroupOptions {
  int world = 1;
  // Where workers reach rank 0. Port 0: any free port (local workers are told which).
  std::string master = "127.0.0.1:0";
  bool spawn_local = true;  // false: workers are started by hand on other machines
  int first_device = 0;     // local worker r runs on device first_device + r
  std::chrono::milliseconds connect_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds step_send_timeout{std::chrono::seconds(30)};
};

class TpGroup {
 public:
  explicit TpGroup(const TpGroupOptions& options);
  ~TpGroup();  // shuts the workers down
  TpGroup(const TpGroup&) = delete;
  TpGroup& operator=(const TpGroup&) = delete;

  int world() const { return options_.world; }
  // Waits for every worker and sends each the bootstrap (JSON text). Throws Error naming the
  // ranks that did not come or the local worker that exited early.
  void start(const std::string& bootstrap);
  // Starts the watchdog; on_failure runs once, on the watchdog thread, with the reason.
  void watch(std::function<void(const std::string&)> on_failure);
  // Sends one step to every worker. Throws Error once the group has failed.
  void send_step(std::span<const std::pair<int32_t, int32_t>> copies, const StepLayout& layout);
  bool failed() const { return failed_.load(); }
  std::string failure() const;
  // Orderly end: workers leave their loop; local ones are reaped (killed after a grace time).
  void shutdown();

 private:
  void fail(const std::string& why);
  void spawn_workers(int port);
  std::string dead_child() const;  // a local worker that exited, or ""

  TpGroupOptions options_;
  std::unique_ptr<TpMaster> master_;
  std::vector<int> children_;  // pids of local workers
  std::atomic<bool> failed_{false};
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;  // guards failure_
  std::string failure_;
  std::function<void(const std::string&)> on_failure_;
  std::thread watchdog_;
};

}  // namespace tessera
