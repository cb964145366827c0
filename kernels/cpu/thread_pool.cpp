#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tessera::cpu {
namespace {

// How long an idle worker spins before sleeping: long enough to bridge the gaps between
// the ops of one step, short enough not to hold a shared core for long.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

constexpr uint64_t kFieldMask = (uint64_t{1} << 24) - 1;

inline uint32_t gen_of(uint64_t s) {
  return static_cast<uint32_t>(s >> 48);
}
inline uint32_t count_of(uint64_t s) {
  return static_cast<uint32_t>((s >> 24) & kFieldMask);
}
inline uint32_t task_of(uint64_t s) {
  return static_cast<uint32_t>(s & kFieldMask);
}
inline uint64_t pack(uint32_t gen, uint32_t count) {
  return (static_cast<uint64_t>(gen & 0xffffu) << 48) | (static_cast<uint64_t>(count) << 24);
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  int n = num_threads > 0 ? num_threads : static_cast<int>(std::thread::hardware_concurrency());
  n = std::max(1, n);
  workers_.reserve(n - 1);
  for (int i = 1; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work(uint32_t gen) {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (gen_of(s) != gen) return;
    const uint32_t task = task_of(s);
    if (task >= count_of(s)) return;
    // Success means task `task` of the job in `s` was unclaimed at that instant, so the
    // caller is still waiting on that job and job_ (read after the claim) is its function.
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      const auto* fn = job_.load(std::memory_order_acquire);
      (*fn)(static_cast<int>(task));
      done_.fetch_add(1, std::memory_order_acq_rel);
      s = state_.load(std::memory_order_acquire);
    }
  }
}

void ThreadPool::run(int num_tasks, const std::function<void(int)>& fn) {
  if (num_tasks <= 0) return;
  if (workers_.empty() || num_tasks == 1) {
    for (int t = 0; t < num_tasks; ++t) fn(t);
    return;
  }
  if (num_tasks <= kMaxTasks) {
    run_one_job(num_tasks, fn);
    return;
  }
  for (int base = 0; base < num_tasks; base += kMaxTasks) {
    const int count = std::min(kMaxTasks, num_tasks - base);
    const std::function<void(int)> part = [&fn, base](int t) { fn(base + t); };
    run_one_job(count, part);
  }
}

void ThreadPool::run_one_job(int num_tasks, const std::function<void(int)>& fn) {
  const uint32_t gen = gen_of(state_.load(std::memory_order_relaxed)) + 1;
  // No claim can succeed now (every task of the last job is claimed), so these plain
  // stores are read only by claims of the job published below.
  job_.store(&fn, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  state_.store(pack(gen, static_cast<uint32_t>(num_tasks)), std::memory_order_release);
  {
    // Taking the lock orders this wake-up after any worker's "about to sleep" check.
    std::lock_guard<std::mutex> lock(mutex_);
    if (sleeping_ > 0) wake_.notify_all();
  }
  work(gen & 0xffffu);
  while (done_.load(std::memory_order_acquire) != num_tasks) cpu_relax();
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    uint32_t gen = gen_of(state_.load(std::memory_order_acquire));
    int polls = 0;
    while (gen == seen && !stop_.load(std::memory_order_relaxed)) {
      cpu_relax();
      if (++polls % 256 == 0 && std::chrono::steady_clock::now() > spin_until) {
        std::unique_lock<std::mutex> lock(mutex_);
        ++sleeping_;
        wake_.wait(lock, [&] {
          return gen_of(state_.load(std::memory_order_acquire)) != seen || stop_.load();
        });
        --sleeping_;
      }
      gen = gen_of(state_.load(std::memory_order_acquire));
    }
    if (stop_.load()) return;
    seen = gen;
    work(gen);
  }
}

Range split_range(int64_t n, int parts, int part, int64_t align) {
  const int64_t units = (n + align - 1) / align;
  const int64_t per = units / parts;
  const int64_t extra = units % parts;
  const int64_t begin_u = part * per + std::min<int64_t>(part, extra);
  const int64_t end_u = begin_u + per + (part < extra ? 1 : 0);
  return {std::min(n, begin_u * align), std::min(n, end_u * align)};
}

}  // namespace tessera::cpu
