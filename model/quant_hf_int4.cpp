// AWQ (GEMM) and GPTQ 4-bit checkpoints -> kInt4. Both store the weight transposed, [in,
// out], in int32 words of eight nibbles; Tessera's layout is [out, in] with two nibbles per
// byte along in (kernels/weight_scheme.h), so every weight is repacked into owned storage:
//   AWQ:  qweight [in, out / 8], nibble k of word c holds column 8c + kAwqOrder[k];
//         qzeros [groups, out / 8] likewise; zeros are stored as they are.
//   GPTQ: qweight [in / 8, out], nibble k of word r holds input 8r + k; qzeros
//         [groups, out / 8], nibble k holds column 8c + k, one less than the zero in the v1
//         format; g_idx [in] maps inputs to groups (act order permutes them).
// Both: scales fp16 [groups, out]; w = (q - zero) * scale.
#include <algorithm>
#include <vector>

#include "model/quant_hf_util.h"

namespace tessera {
namespace {

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

struct Int4Parts {
  int64_t in = 0, out = 0, groups = 0;
  std::vector<uint8_t> data;   // [out, in / 2]
  std::vector<float> scales;   // [out, groups]
  std::vector<uint8_t> zeros;  // [out, groups]
  std::vector<int32_t> g_idx;  // [in], empty without act order
};

void expect_shape(const HfTensorRef& t, int64_t d0, int64_t d1) {
  const auto& s = t.tensor->shape;
  if (s.size() != 2 || s[0] != d0 || s[1] != d1) {
    hfq::corrupt(t, "has shape " + std::to_string(s.size() == 2 ? s[0] : -1) + "x" +
                        std::to_string(s.size() == 2 ? s[1] : -1) + ", expected " +
                        std::to_string(d0) + "x" + std::to_string(d1));
  }
}

void set_nibble(Int4Parts& p, int64_t o, int64_t i, uint32_t q) {
  p.data[o * (p.in / 2) + i / 2] |= static_cast<uint8_t>(q << (4 * (i & 1)));
}

// Zeros [groups, out / 8] words -> [out, groups]; nibble k of word c is column 8c + order[k].
void unpack_zeros(Int4Parts& p, const std::vector<int32_t>& qz, const int* order, int offset) {
  p.zeros.assign(static_cast<size_t>(p.out * p.groups), 0);
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t c = 0; c < p.out / 8; ++c) {
      const auto word = static_cast<uint32_t>(qz[g * (p.out / 8) + c]);
      for (int k = 0; k < 8; ++k) {
        const int64_t o = 8 * c + order[k];
        p.zeros[o * p.groups + g] = static_cast<uint8_t>(((word >> (4 * k)) & 0xF) + offset);
      }
    }
  }
}

void transpose_scales(Int4Parts& p, const std::vector<float>& s) {
  p.scales.resize(static_cast<size_t>(p.out * p.groups));
  for (int64_t g = 0; g < p.groups; ++g)
    for (int64_t o = 0; o < p.out; ++o) p.scales[o * p.groups + g] = s[g * p.out + o];
}

}  // namespace

void load_hf_int4(const HfQuantConfig& config, HfTensorMap& tensors, WeightSet& weights) {
  const bool awq = config.method == HfQuantConfig::Method::kAwq;
  std::vector<std::string> quantized;
  for (const auto& [name, ref] : tensors) {
    if (name.size() > 8 && name.ends_with(".qweight")) {
      quantized.push_back(name.substr(0, name.size() - 8));
    }
  }
  static constexpr int kIdentity[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  for (const std::string& prefix : quantized) {
    const HfTensorRef qw = tensors.at(prefix + ".qweight");
    const HfTensorRef* qz = hfq::find(tensors, prefix, ".qzeros");
    const HfTensorRef* sc = hfq::find(tensors, prefix, ".scales");
    if (qz == nullptr || sc == nullptr) hfq::corrupt(qw, "lacks its qzeros or scales");
    const auto& shape = qw.tensor->shape;
    if (shape.size() != 2) hfq::corrupt(qw, "is not 2-D");
    Int4Parts p;
    p.in = awq ? shape[0] : shape[0] * 8;
    p.out = awq ? shape[1] * 8 : shape[1];
    const int64_t gs = config.group_size > 0 ? config.group_size : p.in;
    if (p.in % gs != 0) hfq::corrupt(qw, "has inputs not a multiple of the group size");
    p.groups = p.in / gs;
    const HfTensorRef* gi = awq ? nullptr : hfq::find(tensors, prefix, ".g_idx");
    bool act_order = false;
    if (gi != nullptr) {
      p.g_idx = hfq::read_i32(*gi);
      if (static_cast<int64_t>(p.g_idx.size()) != p.in) hfq::corrupt(*gi, "is not one per input");
      for (int64_t i = 0; i < p.in; ++i) {
        if (p.g_idx[i] < 0 || p.g_idx[i] >= p.groups) hfq::corrupt(*gi, "names a missing group");
        act_order |= p.g_idx[i] != i / gs;
      }
      if (!act_order) p.g_idx.clear();  // the plain order: g = i / group_size
    }
    expect_shape(*sc, p.groups, p.out);
    expect_shape(*qz, p.groups, p.out / 8);
    const std::vector<int32_t> words = hfq::read_i32(qw);
    p.data.assign(static_cast<size_t>(p.out * (p.in / 2)), 0);
    if (awq) {
      for (int64_t i = 0; i < p.in; ++i)
        for (int64_t c = 0; c < p.out / 8; ++c) {
          const auto word = static_cast<uint32_t>(words[i * (p.out / 8) + c]);
          for (int k = 0; k < 8; ++k) set_nibble(p, 8 * c + kAwqOrder[k], i, (word >> 4 * k) & 0xF);
        }
    } else {
      for (int64_t r = 0; r < p.in / 8; ++r)
        for (int64_t o = 0; o < p.out; ++o) {
          const auto word = static_cast<uint32_t>(words[r * p.out + o]);
          for (int k = 0; k < 8; ++k) set_nibble(p, o, 8 * r + k, (word >> 4 * k) & 0xF);
        }
    }
    unpack_zeros(p, hfq::read_i32(*qz), awq ? kAwqOrder : kIdentity,
                 config.gptq_zero_offset && !awq ? 1 : 0);
    transpose_scales(p, hfq::read_floats(*sc));

    HostTensor t;
    t.rows = p.out;
    t.cols = p.in;
    t.scheme.kind = QuantKind::kInt4;
    t.scheme.group_size = static_cast<int>(gs);
    t.scheme.act_order = act_order;
    // Symmetric checkpoints store zero 8 everywhere, which the scheme implies without zeros.
    t.scheme.has_zeros =
        std::any_of(p.zeros.begin(), p.zeros.end(), [](uint8_t z) { return z != 8; });
    t.data = hfq::keep(weights, std::move(p.data));
    t.scales = hfq::keep(weights, std::move(p.scales));
    if (t.scheme.has_zeros) t.zeros = hfq::keep(weights, std::move(p.zeros));
    if (act_order) t.g_idx = hfq::keep(weights, std::move(p.g_idx));
    hfq::add_quantized(prefix, t, qw, weights);
    for (const char* suffix : {".qweight", ".qzeros", ".scales", ".g_idx"}) {
      tensors.erase(prefix + suffix);
    }
  }
}

}  // namespace tessera
