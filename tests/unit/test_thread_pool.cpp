// The CPU thread pool under load: every task of every job runs exactly once, and run() always
// returns, with more pool threads than cores and extra threads competing for the cores (the
// conditions under which a late worker used to claim a task against the next job's count).
// TESSERA_POOL_STRESS_JOBS raises the job count (tests/stress/thread_pool_tsan.sh runs
// millions under ThreadSanitizer).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "kernels/cpu/thread_pool.h"

using tessera::cpu::ThreadPool;

namespace {

long jobs_from_env(long fallback) {
  const char* v = std::getenv("TESSERA_POOL_STRESS_JOBS");
  return v != nullptr ? std::atol(v) : fallback;
}

// Keeps every core busy so pool threads are descheduled at arbitrary points.
struct CoreHogs {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  explicit CoreHogs(int n) {
    for (int i = 0; i < n; ++i)
      threads.emplace_back([this] {
        volatile unsigned x = 0;
        while (!stop.load(std::memory_order_relaxed)) x = x + 1;
      });
  }
  ~CoreHogs() {
    stop = true;
    for (auto& t : threads) t.join();
  }
};

}  // namespace

TEST_CASE("thread pool runs each task of each job exactly once, oversubscribed") {
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  ThreadPool pool(cores * 3);
  CoreHogs hogs(cores);
  const long jobs = jobs_from_env(20000);
  std::vector<std::atomic<int>> hits(64);
  long bad = 0;
  for (long j = 0; j < jobs; ++j) {
    // Task counts vary from job to job: the old bug needed a later job with more tasks.
    const int n = 1 + static_cast<int>((j * 7919) % 64);
    for (auto& h : hits) h.store(0, std::memory_order_relaxed);
    pool.run(n, [&](int t) { hits[t].fetch_add(1, std::memory_order_relaxed); });
    for (int t = 0; t < 64; ++t) {
      const int expect = t < n ? 1 : 0;
      if (hits[t].load(std::memory_order_relaxed) != expect) ++bad;
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("thread pool: tasks see the job's captured state, sums are exact") {
  ThreadPool pool(4);
  for (int j = 0; j < 2000; ++j) {
    const int n = 1 + j % 37;
    std::vector<long> out(n, -1);
    const long base = j * 1000L;
    pool.run(n, [&, base](int t) { out[t] = base + t; });
    for (int t = 0; t < n; ++t) REQUIRE(out[t] == base + t);
  }
}

TEST_CASE("thread pool: sizes and degenerate jobs") {
  ThreadPool one(1);
  CHECK(one.size() == 1);
  int ran = 0;
  one.run(5, [&](int) { ++ran; });
  CHECK(ran == 5);
  ThreadPool four(4);
  CHECK(four.size() == 4);
  four.run(0, [&](int) { ++ran; });
  four.run(-3, [&](int) { ++ran; });
  CHECK(ran == 5);
}

TEST_CASE("thread pool: split_range covers [0, n) in aligned parts") {
  using tessera::cpu::split_range;
  for (int64_t n : {0, 1, 15, 16, 17, 1000, 4097})
    for (int parts : {1, 2, 3, 7})
      for (int64_t align : {1, 4, 16}) {
        int64_t next = 0;
        for (int p = 0; p < parts; ++p) {
          const auto r = split_range(n, parts, p, align);
          CHECK(r.begin == next);
          CHECK(r.end >= r.begin);
          if (r.begin < n) CHECK(r.begin % align == 0);
          next = r.end;
        }
        CHECK(next == n);
      }
}
