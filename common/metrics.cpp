#include "common/metrics.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace tessera::metrics {

namespace {

enum Type { kCounter = 0, kGauge = 1, kHistogram = 2 };
constexpr std::string_view kPrefix = "tessera:";

const char* type_name(int type) {
  switch (type) {
    case kCounter:
      return "counter";
    case kGauge:
      return "gauge";
    default:
      return "histogram";
  }
}

bool is_name_start(char c, bool allow_colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
}

bool is_valid_name(std::string_view s, bool allow_colon) {
  if (s.empty() || !is_name_start(s[0], allow_colon)) return false;
  for (char c : s) {
    if (!is_name_start(c, allow_colon) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

void check_metric_name(const std::string& name) {
  if (!is_valid_name(name, true) || !name.starts_with(kPrefix) || name.size() == kPrefix.size()) {
    throw Error(ErrorKind::kInvalidArgument,
                "metric name '" + name + "' must match [a-zA-Z_:][a-zA-Z0-9_:]* and start with '" +
                    std::string(kPrefix) + "'");
  }
}

void check_labels(const std::string& metric, const Labels& labels, int type) {
  for (const auto& [key, value] : labels) {
    (void)value;
    bool reserved = key.starts_with("__") || (type == kHistogram && key == "le");
    if (!is_valid_name(key, false) || reserved) {
      throw Error(ErrorKind::kInvalidArgument,
                  "metric '" + metric + "': invalid label name '" + key + "'");
    }
  }
}

// {a="x",b="y"} plus an optional extra label appended last (histogram "le").
std::string render_labels(const Labels& labels, std::string_view extra_key = {},
                          std::string_view extra_value = {}) {
  if (labels.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  auto add = [&](std::string_view k, std::string_view v) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  };
  for (const auto& [k, v] : labels) add(k, v);
  if (!extra_key.empty()) add(extra_key, extra_value);
  out += '}';
  return out;
}

}  // namespace

void Counter::inc(double delta) {
  if (!(delta > 0.0)) return;  // also drops NaN
  value_.fetch_add(delta, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      throw Error(ErrorKind::kInvalidArgument,
                  "histogram bucket bounds must be finite and strictly increasing");
    }
  }
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  // Bucket i counts values <= bounds_[i] (Prometheus "le" is inclusive).
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lock(mu_);
  uint64_t running = 0;
  for (uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  if (!(start > 0.0) || !(factor > 1.0) || count < 1) {
    throw Error(ErrorKind::kInvalidArgument, "exponential_buckets needs start > 0, factor > 1");
  }
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

// 1 ms .. ~2 min: covers TTFT on a GPU and long CPU requests alike.
const std::vector<double> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,   0.25,   0.5,   1.0,  2.5,   5.0,
                                             10.0,  20.0,   40.0,  80.0, 160.0};
const std::vector<double> kBatchSizeBuckets = {1,   2,   4,   8,    16,   32,   64,
                                               128, 256, 512, 1024, 2048, 4096, 8192};

struct Registry::Family {
  std::string help;
  int type = kCounter;
  std::vector<double> bounds;  // histograms: the family's buckets
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::family(const std::string& name, const std::string& help, int type,
                                   const Labels& labels) {
  check_metric_name(name);
  check_labels(name, labels, type);
  // Prometheus naming conventions that promtool lints: only counters end in "_total".
  if ((type == kCounter) != name.ends_with("_total")) {
    throw Error(ErrorKind::kInvalidArgument,
                "metric '" + name + "': counters, and only counters, end in '_total'");
  }
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto f = std::make_unique<Family>();
    f->help = help;
    f->type = type;
    it = families_.emplace(name, std::move(f)).first;
  } else if (it->second->type != type) {
    throw Error(ErrorKind::kInvalidArgument,
                "metric '" + name + "' already registered as a " + type_name(it->second->type));
  }
  return *it->second;
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, kCounter, labels).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, kGauge, labels).gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const std::vector<double>& bounds, const Labels& labels) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, kHistogram, labels);
  // One family, one bucket layout: otherwise rate()/histogram_quantile across children break.
  if (f.histograms.empty()) {
    f.bounds = bounds;
  } else if (f.bounds != bounds) {
    throw Error(ErrorKind::kInvalidArgument,
                "histogram '" + name + "' already registered with other buckets");
  }
  auto& slot = f.histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(bounds);
  return *slot;
}

void Registry::add_collector(std::function<void()> collect) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::render() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;
  }
  // Outside the lock: a collector may itself look up metrics in this registry.
  for (const auto& c : collectors) c();

  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + escape_help(f->help) + "\n";
    out += "# TYPE " + name + " " + type_name(f->type) + "\n";
    for (const auto& [labels, c] : f->counters) {
      out += name + render_labels(labels) + " " + format_value(c->value()) + "\n";
    }
    for (const auto& [labels, g] : f->gauges) {
      out += name + render_labels(labels) + " " + format_value(g->value()) + "\n";
    }
    for (const auto& [labels, h] : f->histograms) {
      Histogram::Snapshot s = h->snapshot();
      for (size_t i = 0; i <= s.bounds.size(); ++i) {
        std::string le = i < s.bounds.size() ? format_value(s.bounds[i]) : "+Inf";
        out += name + "_bucket" + render_labels(labels, "le", le) + " " +
               std::to_string(s.cumulative[i]) + "\n";
      }
      out += name + "_sum" + render_labels(labels) + " " + format_value(s.sum) + "\n";
      out += name + "_count" + render_labels(labels) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

Registry& default_registry() {
  static Registry registry;
  return registry;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

}  // namespace tessera::metrics
