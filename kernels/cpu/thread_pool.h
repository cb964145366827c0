#pragma once
// Persistent worker threads for the CPU backend. run() publishes a job and the caller works
// on it too. Tasks are claimed one at a time by a compare-and-swap on one word that holds the
// job's generation, its task count and the next task index; a claim is judged only on that
// word, and the job's function is read only after the claim succeeds. So a worker that wakes
// late (descheduled on a busy machine) can never claim against another job's task count, and
// a claim that succeeds always belongs to the job the caller is waiting on. The caller waits
// only for tasks actually claimed, never for a worker that has not woken up. Idle workers spin briefly (a decode step issues
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
  void run_one_job(int num_tasks, const std::function<void(int)>& fn);

  std::vector<std::thread> workers_;
  // Largest task count one published job carries; run() splits larger ones.
  static constexpr int kMaxTasks = (1 << 24) - 1;

  // bits 48..63: job generation; 24..47: task count; 0..23: next task index
  std::atomic<uint64_t> state_{0};
  std::atomic<const std::function<void(int)>*> job_{nullptr};
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
