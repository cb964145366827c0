#include "kernels/quantize.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "common/error.h"
#include "kernels/dequant.h"

namespace tessera {
namespace {

// Magnitudes of the 127 non-negative finite e4m3 codes, ascending (code = index).
const std::array<float, 127>& e4m3_table() {
  static const std::array<float, 127> t = [] {
    std::array<float, 127> v{};
    for (int c = 0; c < 127; ++c) v[c] = e4m3_to_f32(static_cast<uint8_t>(c));
    return v;
  }();
  return t;
}

void quantize_fp8(const float* w, int64_t rows, int64_t cols, QuantizedTensor& q) {
  q.data.resize(static_cast<size_t>(rows * cols));
  q.scales.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = w + r * cols;
    float amax = 0.0f;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[c]));
    const float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
    q.scales[r] = scale;
    for (int64_t c = 0; c < cols; ++c) q.data[r * cols + c] = f32_to_e4m3(x[c] / scale);
  }
  q.view.scheme.per_channel = true;
}

void quantize_int(const float* w, int64_t rows, int64_t cols, int group, bool four_bit,
                  QuantizedTensor& q) {
  const int64_t gs = group > 0 ? group : cols;
  const int64_t groups = (cols + gs - 1) / gs;
  q.scales.resize(static_cast<size_t>(rows * groups));
  if (four_bit) {
    q.data.assign(static_cast<size_t>(rows * (cols / 2)), 0);
    q.zeros.resize(static_cast<size_t>(rows * groups));
  } else {
    q.data.resize(static_cast<size_t>(rows * cols));
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * gs, c1 = std::min(cols, c0 + gs);
      const float* x = w + r * cols;
      float lo = 0.0f, hi = 0.0f;
      for (int64_t c = c0; c < c1; ++c) lo = std::min(lo, x[c]), hi = std::max(hi, x[c]);
      if (!four_bit) {
        const float amax = std::max(-lo, hi);
        const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
        q.scales[r * groups + g] = scale;
        for (int64_t c = c0; c < c1; ++c) {
          const float v = std::clamp(std::nearbyint(x[c] / scale), -127.0f, 127.0f);
          q.data[r * cols + c] = static_cast<uint8_t>(static_cast<int8_t>(v));
        }
        continue;
      }
      const float scale = hi > lo ? (hi - lo) / 15.0f : 1.0f;
      const float zero = std::clamp(std::nearbyint(-lo / scale), 0.0f, 15.0f);
      q.scales[r * groups + g] = scale;
      q.zeros[r * groups + g] = static_cast<uint8_t>(zero);
      for (int64_t c = c0; c < c1; ++c) {
        const auto v =
            static_cast<uint8_t>(std::clamp(std::nearbyint(x[c] / scale) + zero, 0.0f, 15.0f));
        q.data[r * (cols / 2) + c / 2] |= static_cast<uint8_t>(v << (4 * (c & 1)));
      }
    }
  }
  q.view.scheme.group_size = group > 0 ? group : 0;
  q.view.scheme.has_zeros = four_bit;
}

}  // namespace

float e4m3_to_f32(uint8_t b) {
  const int e = (b >> 3) & 0xF, m = b & 7;
  float v = e == 0 ? std::ldexp(static_cast<float>(m), -9)
                   : std::ldexp(1.0f + static_cast<float>(m) / 8.0f, e - 7);
  if (e == 15 && m == 7) v = NAN;
  return (b & 0x80) ? -v : v;
}

uint8_t f32_to_e4m3(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const float a = std::min(std::fabs(x), 448.0f);
  const auto& t = e4m3_table();
  const int hi = static_cast<int>(std::lower_bound(t.begin(), t.end(), a) - t.begin());
  if (hi == 0) return sign;
  const int lo = hi - 1;
  const float dl = a - t[lo], dh = t[hi] - a;
  const int code = dl < dh ? lo : dh < dl ? hi : (lo % 2 == 0 ? lo : hi);
  return static_cast<uint8_t>(sign | code);
}

std::vector<float> dequantize_weight(const HostTensor& t) {
  const QuantKind kind = t.scheme.kind;
  if (kind == QuantKind::kDense || kind == QuantKind::kGguf) return dequantize_tensor(t);
  const int64_t rows = t.rows, cols = t.cols;
  const int64_t groups = quant_num_groups(t.scheme, cols, t.g_idx);
  const int64_t gs = t.scheme.group_size > 0 ? t.scheme.group_size : cols;
  const auto* data = static_cast<const uint8_t*>(t.data);
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t g = t.g_idx != nullptr ? t.g_idx[c] : c / gs;
      float w;
      if (kind == QuantKind::kFp8) {
        w = e4m3_to_f32(data[r * cols + c]) * t.scales[t.scheme.per_channel ? r : 0];
      } else if (kind == QuantKind::kInt8) {
        w = static_cast<float>(static_cast<int8_t>(data[r * cols + c])) * t.scales[r * groups + g];
      } else {
        const uint8_t b = data[r * ((cols + 1) / 2) + c / 2];
        const int q = c % 2 == 0 ? (b & 0xF) : (b >> 4);
        const int zero = t.scheme.has_zeros ? t.zeros[r * groups + g] : 8;
        w = static_cast<float>(q - zero) * t.scales[r * groups + g];
      }
      out[r * cols + c] = w;
    }
  }
  return out;
}

QuantizedTensor quantize_weight(const HostTensor& src, QuantKind kind, int group_size) {
  if (kind != QuantKind::kFp8 && kind != QuantKind::kInt8 && kind != QuantKind::kInt4) {
    throw Error(ErrorKind::kInvalidArgument,
                std::string("quantize_weight: cannot quantize to ") + quant_kind_name(kind));
  }
  if (src.scheme.quantized() && src.scheme.kind != QuantKind::kGguf) {
    throw Error(ErrorKind::kInvalidArgument, "quantize_weight: source is already quantized");
  }
  if (kind == QuantKind::kInt4 && src.cols % 2 != 0) {
    throw Error(ErrorKind::kInvalidArgument, "quantize_weight: int4 needs an even column count");
  }
  const std::vector<float> w = dequantize_tensor(src);
  QuantizedTensor q;
  q.view.dtype = src.dtype;
  q.view.rows = src.rows;
  q.view.cols = src.cols;
  q.view.scheme.kind = kind;
  if (kind == QuantKind::kFp8) {
    quantize_fp8(w.data(), src.rows, src.cols, q);
  } else {
    quantize_int(w.data(), src.rows, src.cols, group_size, kind == QuantKind::kInt4, q);
  }
  q.view.data = q.data.data();
  q.view.scales = q.scales.data();
  q.view.zeros = q.zeros.empty() ? nullptr : q.zeros.data();
  return q;
}

}  // namespace tessera
