#include "kernels/scheme_ref.h"

#include <string>

#include "common/error.h"
#include "kernels/dequant.h"
#include "kernels/fp8.h"

namespace tessera {
namespace {

[[noreturn]] void bad(const std::string& what) {
  throw Error(ErrorKind::kInvalidArgument, "quantized weight: " + what);
}

template <class T>
SchemeView make_view(const T& t) {
  SchemeView v;
  v.scheme = t.scheme;
  v.rows = t.rows;
  v.cols = t.cols;
  v.data = static_cast<const uint8_t*>(t.data);
  v.scales = t.scales;
  v.zeros = t.zeros;
  v.g_idx = t.scheme.act_order ? t.g_idx : nullptr;
  const QuantKind k = t.scheme.kind;
  if (k != QuantKind::kFp8 && k != QuantKind::kInt8 && k != QuantKind::kInt4) {
    bad(std::string("scheme ") + quant_kind_name(k) + " is not fp8, int8 or int4");
  }
  if (v.rows <= 0 || v.cols <= 0 || v.data == nullptr) bad("empty tensor");
  if (v.scales == nullptr) bad("no scales");
  if (k == QuantKind::kInt4 && v.cols % 2 != 0) bad("int4 rows need an even column count");
  if (k == QuantKind::kInt4 && t.scheme.has_zeros && v.zeros == nullptr) bad("no zero points");
  if (t.scheme.act_order && v.g_idx == nullptr) bad("act_order without g_idx");
  if (k != QuantKind::kFp8 && t.scheme.group_size < 0) bad("negative group size");
  if (v.g_idx != nullptr) {
    for (int64_t c = 0; c < v.cols; ++c) {
      if (v.g_idx[c] < 0) bad("negative g_idx entry");
    }
  }
  if constexpr (requires { t.num_groups; }) {
    if (t.num_groups > 0) {  // an uploaded Weight knows it: no g_idx scan per call
      v.num_groups = t.num_groups;
      return v;
    }
  }
  v.num_groups = quant_num_groups(t.scheme, t.cols, v.g_idx);
  return v;
}

}  // namespace

size_t SchemeView::data_bytes() const {
  const size_t n = size_t(rows) * cols;
  return scheme.kind == QuantKind::kInt4 ? n / 2 : n;
}

size_t SchemeView::scale_count() const {
  if (scheme.kind == QuantKind::kFp8) return scheme.per_channel ? size_t(rows) : 1;
  return size_t(rows) * num_groups;
}

size_t SchemeView::zero_count() const {
  return scheme.kind == QuantKind::kInt4 && scheme.has_zeros ? size_t(rows) * num_groups : 0;
}

SchemeView scheme_view(const HostTensor& t) {
  return make_view(t);
}
SchemeView scheme_view(const Weight& w) {
  return make_view(w);
}

void dequantize_scheme_rows(const SchemeView& v, int64_t r0, int64_t n, float* out) {
  for (int64_t r = r0; r < r0 + n; ++r) {
    float* o = out + (r - r0) * v.cols;
    switch (v.scheme.kind) {
      case QuantKind::kFp8: {
        const float s = v.scales[v.scheme.per_channel ? r : 0];
        const uint8_t* q = v.data + r * v.cols;
        for (int64_t c = 0; c < v.cols; ++c) o[c] = fp8_e4m3_to_f32(q[c]) * s;
        break;
      }
      case QuantKind::kInt8: {
        const auto* q = reinterpret_cast<const int8_t*>(v.data) + r * v.cols;
        const float* s = v.scales + r * v.num_groups;
        for (int64_t c = 0; c < v.cols; ++c) o[c] = static_cast<float>(q[c]) * s[v.group(c)];
        break;
      }
      case QuantKind::kInt4: {
        const uint8_t* q = v.data + r * (v.cols / 2);
        const float* s = v.scales + r * v.num_groups;
        const uint8_t* z =
            v.zeros != nullptr && v.scheme.has_zeros ? v.zeros + r * v.num_groups : nullptr;
        for (int64_t c = 0; c < v.cols; ++c) {
          const int nib = (c & 1) ? q[c / 2] >> 4 : q[c / 2] & 0xf;
          const int64_t g = v.group(c);
          const int zero = z != nullptr ? z[g] : 8;
          o[c] = static_cast<float>(nib - zero) * s[g];
        }
        break;
      }
      default:
        bad("not a quantization scheme");
    }
  }
}

std::vector<float> dequantize_weight(const HostTensor& t) {
  if (!t.scheme.quantized() || t.scheme.kind == QuantKind::kGguf) return dequantize_tensor(t);
  const SchemeView v = scheme_view(t);
  std::vector<float> out(size_t(t.rows) * t.cols);
  dequantize_scheme_rows(v, 0, t.rows, out.data());
  return out;
}

}  // namespace tessera
