#pragma once
// Helpers for the GPU check programs (plain main(), no test framework: the GPU machine's
// Catch2 may differ). Every check poisons its outputs (NaN bytes) before the run, draws
// fresh random inputs, and compares with an fp64 reference by ||out - ref|| / ||ref||.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/dequant.h"
#include "kernels/ops.h"

namespace tessera::gpu_check {

// The check programs' KV cache: one at a time, replaced by each check that needs one. A
// KvCacheGuard declared right after the Ops frees it before the Ops goes away.
inline std::unique_ptr<KvCache>& current_kv() {
  static std::unique_ptr<KvCache> kv;
  return kv;
}
inline KvCache& make_kv(Ops& ops, const KvCacheShape& shape) {
  current_kv().reset();
  current_kv() = ops.make_kv_cache(shape);
  return *current_kv();
}
struct KvCacheGuard {
  KvCacheGuard() = default;
  KvCacheGuard(const KvCacheGuard&) = delete;
  KvCacheGuard& operator=(const KvCacheGuard&) = delete;
  ~KvCacheGuard() { current_kv().reset(); }
};
inline KvDtype kv_dtype_of(DType t) {
  return t == DType::kF16 ? KvDtype::kF16 : KvDtype::kBF16;
}

struct Report {
  int passed = 0;
  int failed = 0;
  void check(bool ok, const std::string& name, const std::string& detail) {
    (ok ? passed : failed)++;
    std::printf("%s %s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
    std::fflush(stdout);
  }
  int finish(const char* program) {
    std::printf("SUMMARY %s: %d passed, %d failed\n", program, passed, failed);
    return failed == 0 ? 0 : 1;
  }
};

struct ErrorStats {
  double rel = 0;          // ||out - ref|| / ||ref|| over everything
  double worst_row = 0;    // the same per row, worst row
  int64_t non_finite = 0;  // NaN/inf outputs (unwritten poisoned outputs show up here)
};

// out, ref: rows x cols.
inline ErrorStats compare(const std::vector<double>& out, const std::vector<double>& ref,
                          int64_t cols) {
  ErrorStats s;
  double num = 0, den = 0;
  for (size_t r = 0; r * cols < out.size(); ++r) {
    double rn = 0, rd = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double o = out[r * cols + c], e = ref[r * cols + c];
      if (!std::isfinite(o)) {
        ++s.non_finite;
        continue;
      }
      rn += (o - e) * (o - e);
      rd += e * e;
    }
    num += rn, den += rd;
    if (rd > 0) s.worst_row = std::max(s.worst_row, std::sqrt(rn / rd));
  }
  s.rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return s;
}

inline std::string describe(const ErrorStats& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "rel=%.2e worst_row=%.2e non_finite=%lld", s.rel, s.worst_row,
                static_cast<long long>(s.non_finite));
  return buf;
}

// bf16 outputs: rounding alone gives ~2e-3; 1e-2 leaves room for fp32 accumulation order.
inline bool bf16_ok(const ErrorStats& s, double tol = 1e-2, double row_tol = 3e-2) {
  return s.non_finite == 0 && s.rel < tol && s.worst_row < row_tol;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  float normal(float std = 1.0f) { return std::normal_distribution<float>(0.f, std)(gen_); }
  int uniform_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }
  std::mt19937_64& gen() { return gen_; }

 private:
  std::mt19937_64 gen_;
};

// Random bf16 data (never zero-filled) plus its exact values as doubles.
struct Bf16Data {
  std::vector<uint16_t> bits;
  std::vector<double> values;
};
inline Bf16Data random_bf16(Rng& rng, size_t n, float std = 1.0f) {
  Bf16Data d;
  d.bits.resize(n);
  d.values.resize(n);
  for (size_t i = 0; i < n; ++i) {
    d.bits[i] = f32_to_bf16(rng.normal(std));
    d.values[i] = bf16_to_f32(d.bits[i]);
  }
  return d;
}

inline std::vector<double> bf16_to_doubles(const std::vector<uint16_t>& bits) {
  std::vector<double> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = bf16_to_f32(bits[i]);
  return out;
}

// Device buffer owned through the backend, poisoned with 0xFF bytes (NaN in bf16/f16/f32).
class DevBuf {
 public:
  DevBuf(Ops& ops, size_t bytes) : ops_(ops), bytes_(bytes), ptr_(ops.alloc(bytes)) {}
  ~DevBuf() { ops_.free(ptr_); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void* get() const { return ptr_; }
  void poison() {
    std::vector<uint8_t> nan(bytes_, 0xFF);
    ops_.to_device(ptr_, nan.data(), bytes_);
  }
  template <typename T>
  void upload(const std::vector<T>& v) {
    ops_.to_device(ptr_, v.data(), v.size() * sizeof(T));
  }
  template <typename T>
  std::vector<T> download(size_t count) {
    std::vector<T> v(count);
    ops_.to_host(v.data(), ptr_, count * sizeof(T));
    return v;
  }

 private:
  Ops& ops_;
  size_t bytes_;
  void* ptr_;
};

inline HostTensor host_tensor(DType t, int64_t rows, int64_t cols, const void* data) {
  HostTensor h;
  h.dtype = t;
  h.rows = rows;
  h.cols = cols;
  h.data = data;
  return h;
}

}  // namespace tessera::gpu_check

namespace tessera::gpu_check {

// A step of sequences with the given query lengths and contexts; each sequence gets its
// blocks from one shuffled permutation of [1, num_blocks) (block 0 is the padding block).
// Logit rows: the last token of each sequence.
inline StepLayout build_layout(Rng& rng, const std::vector<int>& qlens,
                               const std::vector<int>& contexts, int block_size, int num_blocks) {
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks - 1));
  for (int i = 0; i < num_blocks - 1; ++i) ids[i] = i + 1;
  std::shuffle(ids.begin(), ids.end(), rng.gen());
  StepLayout l;
  l.block_size = block_size;
  l.query_start.push_back(0);
  l.block_table_start.push_back(0);
  size_t next = 0;
  for (size_t s = 0; s < qlens.size(); ++s) {
    const int ctx = contexts[s], qlen = qlens[s];
    const int blocks = (ctx + block_size - 1) / block_size;
    if (next + blocks > ids.size()) throw std::runtime_error("build_layout: too few blocks");
    const size_t first = l.block_tables.size();
    for (int b = 0; b < blocks; ++b) l.block_tables.push_back(ids[next++]);
    for (int t = 0; t < qlen; ++t) {
      const int pos = ctx - qlen + t;
      l.tokens.push_back(rng.uniform_int(0, 999));
      l.positions.push_back(pos);
      l.slot_mapping.push_back(l.block_tables[first + pos / block_size] * block_size +
                               pos % block_size);
    }
    l.query_start.push_back(static_cast<int32_t>(l.tokens.size()));
    l.context_len.push_back(ctx);
    l.block_table_start.push_back(static_cast<int32_t>(l.block_tables.size()));
    l.logit_rows.push_back(static_cast<int32_t>(l.tokens.size()) - 1);
  }
  return l;
}

}  // namespace tessera::gpu_check
