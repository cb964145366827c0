#pragma once
// Persistent worker threads for the CPU backend. run() hands out task indices through an
// atomic counter (so a slow or descheduled core does not stall the others) and the caller
// works too. Workers spin briefly between jobs (a decode step issues hundreds of short jobs)
// and then sleep on a condition variable, so an idle server burns no CPU.
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
  void drain();

  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  int num_tasks_ = 0;
  std::atomic<int> next_task_{0};
  std::atomic<int> busy_workers_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  int sleeping_ = 0;  // guarded by mutex_
};

// Splits [0, n) into about `parts` contiguous ranges whose starts are multiples of `align`.
struct Range {
  int64_t begin;
  int64_t end;
};
Range split_range(int64_t n, int parts, int part, int64_t align);

}  // namespace tessera::cpu
