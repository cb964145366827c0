#pragma once
// Persistent worker threads for the CPU backend. run() publishes a job and the caller works
// on it too; tasks are claimed one at a time from a counter that also carries the job's
// generation, so a worker that wakes late (descheduled on a busy machine) can never run a
// task of a job it did not see, and the caller waits only for tasks actually claimed, never
// for a worker that has not woken up. Idle workers spin briefly (a decode step issues
// hundreds of short jobs), then sleep on a condition variable.
// Not reentrant: one thread calls run() at a time.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // total, including the caller; 0 = all cores
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn(task) for every task in [0, num_tasks); returns when all are done.
  void run(int num_tasks, const std::function<void(int)>& fn);

 private:
  void worker_loop();
  // Claims and runs tasks of generation `gen` until none is left.
  void work(uint32_t gen);

  std::vector<std::thread> workers_;
  // high 32 bits: job generation; low 32 bits: next task index
  std::atomic<uint64_t> state_{0};
  std::atomic<const std::function<void(int)>*> job_{nullptr};
  std::atomic<int> num_tasks_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  int sleeping_ = 0;  // guarded by mutex_
};

// Splits [0, n) into `parts` contiguous ranges whose starts are multiples of `align`.
struct Range {
  int64_t begin;
  int64_t end;
};
Range split_range(int64_t n, int parts, int part, int64_t align);

}  // namespace tessera::cpu
