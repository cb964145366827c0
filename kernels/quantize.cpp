#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "kernels/fp8.h"
#include "kernels/scheme_ref.h"

namespace tessera {
namespace {

// Columns of each group: contiguous runs, or act-order ranks.
std::vector<std::vector<int64_t>> group_columns(const std::vector<float>& w, int64_t rows,
                                                int64_t cols, const QuantScheme& s,
                                                std::vector<int32_t>& g_idx) {
  const int64_t gs = s.group_size > 0 ? s.group_size : cols;
  std::vector<int64_t> order(cols);
  std::iota(order.begin(), order.end(), 0);
  if (s.act_order) {
    std::vector<float> amax(cols, 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) amax[c] = std::max(amax[c], std::fabs(w[r * cols + c]));
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return amax[a] > amax[b]; });
    g_idx.assign(cols, 0);
  }
  std::vector<std::vector<int64_t>> groups((cols + gs - 1) / gs);
  for (int64_t i = 0; i < cols; ++i) {
    groups[i / gs].push_back(order[i]);
    if (s.act_order) g_idx[order[i]] = static_cast<int32_t>(i / gs);
  }
  return groups;
}

}  // namespace

QuantizedTensor quantize_weight(const HostTensor& src, QuantKind kind, int group_size) {
  QuantScheme s;
  s.kind = kind;
  s.group_size = group_size;
  s.per_channel = kind == QuantKind::kFp8;
  s.has_zeros = kind == QuantKind::kInt4;
  return quantize_weight(src, s);
}

QuantizedTensor quantize_weight(const HostTensor& src, const QuantScheme& scheme) {
  const QuantKind kind = scheme.kind;
  if (kind != QuantKind::kFp8 && kind != QuantKind::kInt8 && kind != QuantKind::kInt4) {
    throw Error(ErrorKind::kInvalidArgument, "quantize_weight: target must be fp8, int8 or int4");
  }
  if (src.rows <= 0 || src.cols <= 0 || src.data == nullptr) {
    throw Error(ErrorKind::kInvalidArgument, "quantize_weight: empty tensor");
  }
  if (kind == QuantKind::kInt4 && src.cols % 2 != 0) {
    throw Error(ErrorKind::kInvalidArgument, "quantize_weight: int4 needs an even column count");
  }
  const int64_t rows = src.rows, cols = src.cols;
  const std::vector<float> w = dequantize_weight(src);
  QuantizedTensor q;
  QuantScheme s = scheme;
  s.act_scale = 0.0f;
  if (kind == QuantKind::kFp8) {
    s.group_size = 0;
    s.has_zeros = s.act_order = false;
    q.data.resize(size_t(rows) * cols);
    q.scales.assign(s.per_channel ? rows : 1, 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      float& amax = q.scales[s.per_channel ? r : 0];
      for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
    }
    for (float& sc : q.scales) sc = sc > 0.0f ? sc / kFp8E4m3Max : 1.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const float inv = 1.0f / q.scales[s.per_channel ? r : 0];
      for (int64_t c = 0; c < cols; ++c)
        q.data[r * cols + c] = f32_to_fp8_e4m3(w[r * cols + c] * inv);
    }
  } else {
    s.per_channel = false;
    if (kind == QuantKind::kInt8) s.has_zeros = false;
    const auto groups = group_columns(w, rows, cols, s, q.g_idx);
    const int64_t ng = static_cast<int64_t>(groups.size());
    q.scales.assign(size_t(rows) * ng, 1.0f);
    if (s.has_zeros) q.zeros.assign(size_t(rows) * ng, 0);
    q.data.assign(kind == QuantKind::kInt4 ? size_t(rows) * cols / 2 : size_t(rows) * cols, 0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = w.data() + r * cols;
      for (int64_t g = 0; g < ng; ++g) {
        float lo = 0.0f, hi = 0.0f;  // the range always holds 0, so 0 is exact
        for (int64_t c : groups[g]) lo = std::min(lo, x[c]), hi = std::max(hi, x[c]);
        const float amax = std::max(-lo, hi);
        float scale = 1.0f;
        int zero = 8;
        if (kind == QuantKind::kInt8) {
          scale = amax > 0.0f ? amax / 127.0f : 1.0f;
        } else if (s.has_zeros) {
          scale = hi > lo ? (hi - lo) / 15.0f : 1.0f;
          zero = static_cast<int>(std::clamp(std::nearbyint(-lo / scale), 0.0f, 15.0f));
          q.zeros[r * ng + g] = static_cast<uint8_t>(zero);
        } else {
          scale = amax > 0.0f ? amax / 7.0f : 1.0f;
        }
        q.scales[r * ng + g] = scale;
        for (int64_t c : groups[g]) {
          const float v = std::nearbyint(x[c] / scale);
          if (kind == QuantKind::kInt8) {
            q.data[r * cols + c] =
                static_cast<uint8_t>(static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f)));
          } else {
            const auto nib = static_cast<uint8_t>(std::clamp(v + zero, 0.0f, 15.0f));
            uint8_t& byte = q.data[(r * cols + c) / 2];
            byte = (c & 1) ? static_cast<uint8_t>((byte & 0x0f) | (nib << 4))
                           : static_cast<uint8_t>((byte & 0xf0) | nib);
          }
        }
      }
    }
    if (!s.act_order)
      s.group_size =
          static_cast<int>(std::min<int64_t>(s.group_size > 0 ? s.group_size : cols, cols));
  }
  q.view.dtype = src.dtype;
  q.view.rows = rows;
  q.view.cols = cols;
  q.view.scheme = s;
  q.view.data = q.data.data();
  q.view.scales = q.scales.data();
  q.view.zeros = q.zeros.empty() ? nullptr : q.zeros.data();
  q.view.g_idx = q.g_idx.empty() ? nullptr : q.g_idx.data();
  return q;
}

}  // namespace tessera
