#pragma once
// Shared by the quantized-loader tests: the fixtures of scripts/make_quant_fixtures.py
// (generated on first use into a temp folder) and a decoder of Tessera's canonical quantized
// layouts written from kernels/weight_scheme.h alone.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kernels/dequant.h"
#include "kernels/ops.h"
#include "model/safetensors_file.h"

namespace quant_test {

// Folder holding the fixtures; generates them once per machine (a few seconds).
inline std::string fixtures_dir() {
  namespace fs = std::filesystem;
  static const std::string dir = [] {
    const fs::path out = fs::temp_directory_path() / "tessera_quant_fixtures_v1";
    if (!fs::exists(out / "VERSION")) {
      const std::string cmd = "python3 " + std::string(TESSERA_SOURCE_DIR) +
                              "/scripts/make_quant_fixtures.py --out " + out.string() +
                              " >/dev/null";
      if (std::system(cmd.c_str()) != 0) return std::string();
    }
    return out.string();
  }();
  if (dir.empty()) FAIL("scripts/make_quant_fixtures.py failed (pip install gguf numpy)");
  return dir;
}

// OCP FP8 E4M3 (e4m3fn): bias 7, no infinities, S.1111.111 = NaN, exponent 0 subnormal.
inline double e4m3(uint8_t b) {
  const int e = (b >> 3) & 0xF, m = b & 7;
  double v = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  if (e == 15 && m == 7) v = NAN;
  return (b & 0x80) ? -v : v;
}

// Element [r, c] of a weight in any canonical scheme, in double.
inline std::vector<double> decode_canonical(const tessera::HostTensor& t) {
  using tessera::QuantKind;
  const int64_t rows = t.rows, cols = t.cols;
  std::vector<double> out(static_cast<size_t>(rows * cols));
  const QuantKind kind = t.scheme.kind;
  if (kind == QuantKind::kDense || kind == QuantKind::kGguf) {
    const std::vector<float> f = tessera::dequantize_tensor(t);
    out.assign(f.begin(), f.end());
    return out;
  }
  const int64_t groups = tessera::quant_num_groups(t.scheme, cols, t.g_idx);
  auto group = [&](int64_t c) -> int64_t {
    if (t.g_idx != nullptr) return t.g_idx[c];
    return t.scheme.group_size > 0 ? c / t.scheme.group_size : 0;
  };
  const auto* bytes = static_cast<const uint8_t*>(t.data);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      double w = 0;
      if (kind == QuantKind::kFp8) {
        w = e4m3(bytes[r * cols + c]) * t.scales[t.scheme.per_channel ? r : 0];
      } else if (kind == QuantKind::kInt8) {
        w = static_cast<int8_t>(bytes[r * cols + c]) * double{t.scales[r * groups + group(c)]};
      } else {
        const uint8_t byte = bytes[r * ((cols + 1) / 2) + c / 2];
        const int q = (c % 2 == 0) ? (byte & 0xF) : (byte >> 4);
        const int g = static_cast<int>(group(c));
        const int zero = t.scheme.has_zeros ? t.zeros[r * groups + g] : 8;
        w = (q - zero) * double{t.scales[r * groups + g]};
      }
      out[r * cols + c] = w;
    }
  }
  return out;
}

// Reference f32 tensors written by the generator (name -> [rows, cols] values).
struct Reference {
  std::shared_ptr<tessera::SafetensorsFile> file;
  const tessera::SafetensorsTensor& get(const std::string& name) const {
    auto it = file->tensors().find(name);
    if (it == file->tensors().end()) FAIL("reference has no " << name);
    return it->second;
  }
  std::vector<float> values(const std::string& name) const {
    const auto& t = get(name);
    std::vector<float> v(t.nbytes / 4);
    std::memcpy(v.data(), t.data, t.nbytes);
    return v;
  }
};

inline Reference reference(const std::string& path) {
  return Reference{tessera::SafetensorsFile::open(path)};
}

// Largest |a - b| over elements, relative to the largest |b|.
template <typename A, typename B>
double max_rel_diff(const A& a, const B& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, mag = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    mag = std::max(mag, std::fabs(double(b[i])));
  }
  return mag > 0 ? diff / mag : diff;
}

}  // namespace quant_test
