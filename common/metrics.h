#pragma once
// A small thread-safe metrics registry rendered in the Prometheus text exposition format
// (version 0.0.4). Metrics are grouped in families (one name, one HELP, one TYPE); each
// family holds one child per label set. Children live as long as the registry, so callers
// look a child up once and keep the reference: recording is then lock-free for counters
// and gauges, and one short mutex for histograms.
//
//   auto& ttft = metrics::default_registry().histogram(
//       "tessera:time_to_first_token_seconds", "Time to first token.", kLatencyBuckets);
//   ttft.observe(0.042);
//   auto& done = registry.counter("tessera:request_success_total", "Finished requests.",
//                                 {{"finished_reason", "stop"}});
//   done.inc();
//
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and start with "tessera:"; label names
// [a-zA-Z_][a-zA-Z0-9_]* (not "le" on histograms, never "__" prefixed). Counter names end
// in "_total" and no other type's do. Bad names and a name reused with another type throw
// Error(kInvalidArgument).
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::metrics {

// Sorted by label name, so one label set has one spelling.
using Labels = std::map<std::string, std::string>;

class Counter {
 public:
  void inc(double delta = 1.0);  // delta < 0 is ignored: counters only go up
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double delta = 1.0) { value_.fetch_add(delta, std::memory_order_relaxed); }
  void dec(double delta = 1.0) { value_.fetch_sub(delta, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `bounds`: strictly increasing finite upper bounds; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0.0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last is +Inf
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

// Buckets shared by latency histograms (seconds) and batch-size histograms.
extern const std::vector<double> kLatencyBuckets;
extern const std::vector<double> kBatchSizeBuckets;

// Bucket bounds start, start*factor, ... (count of them).
std::vector<double> exponential_buckets(double start, double factor, int count);

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the child for (name, labels), creating family and child on first use.
  // Repeated calls with the same arguments return the same object.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       const std::vector<double>& bounds, const Labels& labels = {});

  // Runs before every render(): lets owners of state (e.g. the server reading engine stats)
  // refresh gauges at scrape time instead of on every change.
  void add_collector(std::function<void()> collect);

  // The whole registry in text exposition format, families sorted by name.
  std::string render() const;

 private:
  struct Family;
  Family& family(const std::string& name, const std::string& help, int type, const Labels& labels);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>> families_;
  std::vector<std::function<void()>> collectors_;
};

// The process-wide registry that engine and server record into and /metrics renders.
Registry& default_registry();

// Exposition-format helpers (exposed for tests).
std::string escape_label_value(std::string_view v);  // \\, \", \n
std::string escape_help(std::string_view v);         // \\, \n
std::string format_value(double v);                  // +Inf, -Inf, NaN, shortest round-trip

}  // namespace tessera::metrics
