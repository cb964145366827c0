#include "model/quant_hf_util.h"

#include "kernels/dequant.h"
#include "model/loader.h"

namespace tessera::hfq {

std::vector<float> read_floats(const HfTensorRef& t) {
  const SafetensorsTensor& s = *t.tensor;
  const int64_t n = numel(s);
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    if (s.dtype == "F32") {
      std::memcpy(&out[i], s.data + 4 * i, 4);
      continue;
    }
    std::memcpy(&h, s.data + 2 * i, 2);
    if (s.dtype == "F16") {
      out[i] = fp16_to_f32(h);
    } else if (s.dtype == "BF16") {
      out[i] = bf16_to_f32(h);
    } else {
      corrupt(t, "has dtype " + s.dtype + " (expected F32, F16 or BF16)");
    }
  }
  return out;
}

std::vector<int32_t> read_i32(const HfTensorRef& t) {
  if (t.tensor->dtype != "I32") corrupt(t, "has dtype " + t.tensor->dtype + " (expected I32)");
  std::vector<int32_t> out(static_cast<size_t>(numel(*t.tensor)));
  std::memcpy(out.data(), t.tensor->data, out.size() * 4);
  return out;
}

const HfTensorRef* find(const HfTensorMap& tensors, const std::string& prefix, const char* suffix) {
  auto it = tensors.find(prefix + suffix);
  return it == tensors.end() ? nullptr : &it->second;
}

void add_quantized(const std::string& prefix, const HostTensor& t, const HfTensorRef& origin,
                   WeightSet& weights) {
  const std::string name = canonical_weight_name(prefix + ".weight");
  if (name.empty()) corrupt(origin, "is quantized but not a Llama projection");
  if (name == "token_embd.weight" || name.find("norm") != std::string::npos) {
    corrupt(origin, "is quantized, but embeddings and norms must be dense");
  }
  if (!weights.tensors.emplace(name, t).second) corrupt(origin, "appears twice");
}

}  // namespace tessera::hfq
