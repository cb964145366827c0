// The quantization schemes of kernels/weight_scheme.h on the CPU backend (the readable
// reference): the quantizer and the backend's matmul / lm_head / matmul_multi / gate_up_silu
// are compared with an fp64 decoder written here from the layout description alone.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/fp8.h"
#include "kernels/ops.h"
#include "kernels/quantize.h"

using namespace tessera;

namespace {

// e4m3fn from its bits: sign, 4-bit exponent (bias 7), 3-bit mantissa; exponent 0 is
// subnormal (m / 8 * 2^-6); S.1111.111 is NaN.
double ref_fp8(uint8_t b) {
  const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  if (e == 15 && m == 7) return NAN;
  const double mag = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -mag : mag;
}

// Decodes a [rows, cols] weight of any quantization scheme to fp64 from the layout alone.
std::vector<double> ref_decode(const HostTensor& t) {
  const QuantScheme& s = t.scheme;
  const auto* d = static_cast<const uint8_t*>(t.data);
  int64_t groups = 1;
  if (s.kind == QuantKind::kInt8 || s.kind == QuantKind::kInt4) {
    if (s.act_order) {
      groups = *std::max_element(t.g_idx, t.g_idx + t.cols) + 1;
    } else if (s.group_size > 0) {
      groups = (t.cols + s.group_size - 1) / s.group_size;
    }
  }
  auto group_of = [&](int64_t c) -> int64_t {
    if (s.act_order) return t.g_idx[c];
    return s.group_size > 0 ? c / s.group_size : 0;
  };
  std::vector<double> w(static_cast<size_t>(t.rows * t.cols));
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int64_t c = 0; c < t.cols; ++c) {
      double v = 0.0;
      if (s.kind == QuantKind::kFp8) {
        v = ref_fp8(d[r * t.cols + c]) * t.scales[s.per_channel ? r : 0];
      } else if (s.kind == QuantKind::kInt8) {
        v = static_cast<int8_t>(d[r * t.cols + c]) * double(t.scales[r * groups + group_of(c)]);
      } else {
        const uint8_t byte = d[r * (t.cols / 2) + c / 2];
        const int q = c % 2 == 0 ? (byte & 15) : (byte >> 4);
        const int64_t g = group_of(c);
        const int zero = s.has_zeros ? t.zeros[r * groups + g] : 8;
        v = (q - zero) * double(t.scales[r * groups + g]);
      }
      w[r * t.cols + c] = v;
    }
  }
  return w;
}

QuantScheme scheme(QuantKind k, int group, bool per_channel, bool zeros, bool act_order) {
  QuantScheme s;
  s.kind = k;
  s.group_size = group;
  s.per_channel = per_channel;
  s.has_zeros = zeros;
  s.act_order = act_order;
  return s;
}

// Every variant the canonical layouts allow.
std::vector<QuantScheme> all_schemes() {
  return {scheme(QuantKind::kFp8, 0, false, false, false),
          scheme(QuantKind::kFp8, 0, true, false, false),
          scheme(QuantKind::kInt8, 32, false, false, false),
          scheme(QuantKind::kInt8, 0, false, false, false),
          scheme(QuantKind::kInt8, 64, false, false, true),
          scheme(QuantKind::kInt4, 32, false, true, false),
          scheme(QuantKind::kInt4, 64, false, false, false),
          scheme(QuantKind::kInt4, 32, false, true, true),
          scheme(QuantKind::kInt4, 48, false, false, true)};
}

std::string describe(const QuantScheme& s) {
  return std::string(quant_kind_name(s.kind)) + " g" + std::to_string(s.group_size) +
         (s.per_channel ? " per-channel" : "") + (s.has_zeros ? " zeros" : "") +
         (s.act_order ? " act-order" : "");
}

std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// out[r, j] vs fp64 x . w_j, as max |err| / sum |x w|.
double dot_error(const std::vector<float>& x, const std::vector<double>& w, int rows, int n,
                 int cols, const float* out) {
  double worst = 0.0;
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < n; ++j) {
      double ref = 0.0, mag = 0.0;
      for (int k = 0; k < cols; ++k) {
        ref += double(x[size_t(r) * cols + k]) * w[size_t(j) * cols + k];
        mag += std::abs(double(x[size_t(r) * cols + k]) * w[size_t(j) * cols + k]);
      }
      worst = std::max(worst, std::abs(out[size_t(r) * n + j] - ref) / std::max(mag, 1e-30));
    }
  }
  return worst;
}

}  // namespace

TEST_CASE("fp8 e4m3 conversions agree with the bit-level definition", "[quant]") {
  for (int b = 0; b < 256; ++b) {
    const double ref = ref_fp8(static_cast<uint8_t>(b));
    const float got = fp8_e4m3_to_f32(static_cast<uint8_t>(b));
    if (std::isnan(ref)) {
      CHECK(std::isnan(got));
      continue;
    }
    CHECK(double(got) == ref);
    if (b != 0x80) CHECK(f32_to_fp8_e4m3(got) == b);  // every finite code round-trips
  }
  CHECK(f32_to_fp8_e4m3(1000.0f) == 0x7e);  // saturates to 448
  CHECK(f32_to_fp8_e4m3(-1000.0f) == 0xfe);
  CHECK(f32_to_fp8_e4m3(1.0625f) == 0x38);           // halfway between 1 and 1.125: to even (1)
  CHECK(f32_to_fp8_e4m3(1.1875f) == 0x3a);           // halfway between 1.125 and 1.25: to even
  CHECK(ref_fp8(f32_to_fp8_e4m3(0x1p-10f)) == 0.0);  // below half the smallest subnormal
}

TEST_CASE("quantize_weight stays within half a step of every value", "[quant]") {
  std::mt19937 rng(31);
  const int rows = 12, cols = 192;
  const auto w = random_floats(rng, rows * cols, -2.0f, 1.0f);
  const HostTensor src{DType::kF32, rows, cols, w.data()};
  for (const QuantScheme& s : all_schemes()) {
    INFO(describe(s));
    const QuantizedTensor q = quantize_weight(src, s);
    CHECK(q.view.scheme.kind == s.kind);
    CHECK(q.view.scheme.act_order == s.act_order);
    const std::vector<double> d = ref_decode(q.view);
    double worst = 0.0;
    for (size_t i = 0; i < d.size(); ++i) {
      const double amax = 2.0;
      // fp8: 3 mantissa bits (relative 1/16) or the subnormal step; ints: half a step of
      // the group's range (int4 zero points may widen it to 15 steps of range / 15).
      const double tol = s.kind == QuantKind::kFp8    ? std::abs(w[i]) / 16 + amax / 448 * 0x1p-9
                         : s.kind == QuantKind::kInt8 ? amax / 127 / 2 + 1e-6
                         : s.has_zeros                ? 3.0 / 15 / 2 + 1e-6
                                                      : amax / 7 / 2 + 1e-6;
      worst = std::max(worst, std::abs(d[i] - w[i]) / tol);
    }
    CHECK(worst <= 1.0);
  }
}

TEST_CASE("quantize_weight's common form and its errors", "[quant]") {
  std::vector<float> w(4 * 64, 0.5f);
  const HostTensor src{DType::kF32, 4, 64, w.data()};
  const QuantizedTensor f = quantize_weight(src, QuantKind::kFp8, 0);
  CHECK(f.view.scheme.per_channel);
  CHECK(f.scales.size() == 4);
  const QuantizedTensor i4 = quantize_weight(src, QuantKind::kInt4, 32);
  CHECK(i4.view.scheme.has_zeros);
  CHECK(i4.scales.size() == 8);
  CHECK(i4.zeros.size() == 8);
  CHECK(i4.data.size() == 4 * 32);
  QuantizedTensor first = quantize_weight(src, QuantKind::kInt8, 16);
  const QuantizedTensor other = std::move(first);
  CHECK(other.view.data == other.data.data());  // the view follows the storage
  CHECK_THROWS_AS(quantize_weight(src, QuantKind::kDense, 0), Error);
  std::vector<float> odd(3 * 5, 1.0f);
  CHECK_THROWS_AS(quantize_weight({DType::kF32, 3, 5, odd.data()}, QuantKind::kInt4, 0), Error);
}

TEST_CASE("cpu matmul and lm_head run every scheme like the fp64 decode", "[quant][cpu_ops]") {
  auto ops = make_cpu_ops(2);
  std::mt19937 rng(32);
  const int n = 40, cols = 256;
  const auto wf = random_floats(rng, n * cols);
  for (const QuantScheme& s : all_schemes()) {
    const QuantizedTensor q = quantize_weight({DType::kF32, n, cols, wf.data()}, s);
    const std::vector<double> ref_w = ref_decode(q.view);
    const Weight w = ops->upload(q.view);
    CHECK(w.scheme.kind == s.kind);
    for (const int rows : {1, 3, 5, 17}) {
      INFO(describe(s) << " rows " << rows);
      const auto x = random_floats(rng, size_t(rows) * cols);
      std::vector<float> out(size_t(rows) * n, NAN), logits(out.size(), NAN);
      ops->matmul(x.data(), rows, w, out.data());
      ops->lm_head(x.data(), rows, w, logits.data());
      CHECK(dot_error(x, ref_w, rows, n, cols, out.data()) < 1e-5);
      CHECK(dot_error(x, ref_w, rows, n, cols, logits.data()) < 1e-5);
    }
  }
}

TEST_CASE("cpu decodes hand-built quantized tensors (random codes, zeros, g_idx)", "[quant]") {
  // Not produced by quantize_weight: every code, zero point and group permutation may occur.
  auto ops = make_cpu_ops(2);
  std::mt19937 rng(33);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> sc(0.001f, 0.1f);
  const int n = 9, cols = 96, group = 16, groups = cols / group;
  std::vector<uint8_t> data(size_t(n) * cols), zeros(size_t(n) * groups);
  std::vector<float> scales(size_t(n) * groups);
  std::vector<int32_t> g_idx(cols);
  for (auto& b : data) b = static_cast<uint8_t>(byte(rng));
  for (auto& z : zeros) z = static_cast<uint8_t>(byte(rng) & 15);
  for (auto& s : scales) s = sc(rng);
  for (int c = 0; c < cols; ++c) g_idx[c] = c % groups;  // interleaved groups
  std::shuffle(g_idx.begin(), g_idx.end(), rng);
  for (QuantScheme s : all_schemes()) {
    INFO(describe(s));
    if (s.kind == QuantKind::kFp8) {
      for (auto& b : data)
        if ((b & 0x7f) == 0x7f) b = 0x11;  // no NaN codes
    }
    HostTensor t{DType::kF32, n, cols, data.data()};
    s.group_size = group;
    t.scheme = s;
    t.scales = scales.data();
    t.zeros = zeros.data();
    t.g_idx = g_idx.data();
    const std::vector<double> ref_w = ref_decode(t);
    const Weight w = ops->upload(t);
    for (const int rows : {1, 6}) {
      const auto x = random_floats(rng, size_t(rows) * cols);
      std::vector<float> out(size_t(rows) * n, NAN);
      ops->matmul(x.data(), rows, w, out.data());
      CHECK(dot_error(x, ref_w, rows, n, cols, out.data()) < 1e-5);
    }
  }
  HostTensor missing{DType::kF32, n, cols, data.data()};
  missing.scheme = scheme(QuantKind::kInt4, 16, false, true, false);
  CHECK_THROWS_AS(ops->upload(missing), Error);  // no scales, no zeros
}

TEST_CASE("cpu fused projections take quantized weights", "[quant][cpu_ops]") {
  auto ops = make_cpu_ops(2);
  std::mt19937 rng(34);
  const int cols = 128, n = 48, rows = 3;
  const auto a = random_floats(rng, n * cols), b = random_floats(rng, n * cols);
  const QuantizedTensor qa =
      quantize_weight({DType::kF32, n, cols, a.data()}, QuantKind::kInt4, 32);
  const QuantizedTensor qb = quantize_weight({DType::kF32, n, cols, b.data()}, QuantKind::kFp8, 0);
  const Weight wa = ops->upload(qa.view), wb = ops->upload(qb.view);
  const auto x = random_floats(rng, rows * cols);
  std::vector<float> oa(rows * n), ob(rows * n), ma(rows * n), mb(rows * n);
  ops->matmul(x.data(), rows, wa, oa.data());
  ops->matmul(x.data(), rows, wb, ob.data());
  const Weight* ws[] = {&wa, &wb};
  void* const outs[] = {ma.data(), mb.data()};
  ops->matmul_multi(x.data(), rows, ws, outs);
  CHECK(ma == oa);
  CHECK(mb == ob);
  std::vector<float> fused(rows * n), scratch(rows * n);
  ops->gate_up_silu(x.data(), rows, wa, wb, scratch.data(), fused.data());
  for (int i = 0; i < rows * n; ++i) {
    const double g = oa[i], u = ob[i];
    CHECK(std::abs(fused[i] - g / (1 + std::exp(-g)) * u) < 1e-5);
  }
}
