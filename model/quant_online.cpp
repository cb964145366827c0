#include "model/quant_online.h"

#include <memory>

#include "common/error.h"
#include "kernels/dequant.h"
#include "kernels/quantize.h"
#include "kernels/scheme_ref.h"

namespace tessera {
namespace {

// `values` as a dense [rows, cols] tensor of `dtype`, owned by `weights`.
HostTensor dense_tensor(WeightSet& weights, const HostTensor& like, DType dtype,
                        const std::vector<float>& values) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(quantize(dtype, values));
  HostTensor t;
  t.dtype = dtype;
  t.rows = like.rows;
  t.cols = like.cols;
  t.data = bytes->data();
  weights.storage.push_back(std::move(bytes));
  return t;
}

}  // namespace

OnlineQuant parse_online_quant(const std::string& name) {
  OnlineQuant q;
  if (name.empty() || name == "none") return q;
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    if (name == dtype_name(t)) {
      q.convert = true;
      q.dense_dtype = t;
      return q;
    }
  }
  // "int8:G" / "int4:G": G inputs per group (0 = whole row).
  const size_t colon = name.find(':');
  const std::string base = name.substr(0, colon);
  if (base == "fp8" && colon == std::string::npos) {
    q.kind = QuantKind::kFp8;
  } else if (base == "int8") {
    q.kind = QuantKind::kInt8;
  } else if (base == "int4") {
    q.kind = QuantKind::kInt4;
    q.group_size = 128;
  } else {
    q.kind = QuantKind::kDense;
  }
  if (q.kind != QuantKind::kDense && colon != std::string::npos) {
    const std::string g = name.substr(colon + 1);
    if (g.empty() || g.size() > 6 || g.find_first_not_of("0123456789") != std::string::npos) {
      q.kind = QuantKind::kDense;
    } else {
      q.group_size = std::stoi(g);
    }
  }
  if (q.kind == QuantKind::kDense) {
    throw Error(
        ErrorKind::kInvalidArgument,
        "--quantization must be none, f32, f16, bf16, fp8, int8 or int4 (got '" + name + "')");
  }
  return q;
}

int quantize_loaded_model(LoadedModel& model, const OnlineQuant& q) {
  if (q.kind == QuantKind::kDense && !q.convert) return 0;
  static const char* const kProjections[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                             "ffn_gate", "ffn_up", "ffn_down"};
  std::vector<std::string> names;
  for (int l = 0; l < model.config.num_layers; ++l) {
    for (const char* p : kProjections) {
      names.push_back("blk." + std::to_string(l) + "." + p + ".weight");
    }
  }
  if (q.convert) names.push_back("token_embd.weight");
  if ((q.lm_head || q.convert) && model.weights.has("output.weight")) {
    names.push_back("output.weight");
  }
  WeightSet& weights = model.weights;
  int count = 0;
  for (const std::string& name : names) {
    HostTensor& t = weights.tensors.at(name);
    if (t.scheme.quantized() && t.scheme.kind != QuantKind::kGguf) continue;
    ++count;
    if (q.convert) {
      t = dense_tensor(weights, t, q.dense_dtype, dequantize_tensor(t));
      continue;
    }
    auto owned = std::make_shared<QuantizedTensor>(quantize_weight(t, q.kind, q.group_size));
    if (q.simulate) {
      t = dense_tensor(weights, t, DType::kF32, dequantize_weight(owned->view));
      continue;
    }
    t = owned->view;
    weights.storage.push_back(std::move(owned));
  }
  return count;
}

}  // namespace tessera
