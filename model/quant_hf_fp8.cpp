// FP8 checkpoints (compressed-tensors float-quantized, quant_method "fp8") -> kFp8. The
// E4M3 bytes are already Tessera's layout ([out, in], one byte per weight), so the weight
// stays a view into the mmap; only the scales are copied out as f32.
#include <vector>

#include "model/quant_hf_util.h"

namespace tessera {

void load_hf_fp8(const HfQuantConfig& config, HfTensorMap& tensors, WeightSet& weights) {
  std::vector<std::string> quantized;
  for (const auto& [name, ref] : tensors) {
    const std::string& dt = ref.tensor->dtype;
    if (dt == "F8_E5M2") hfq::corrupt(ref, "is F8_E5M2; Tessera loads E4M3 FP8 weights only");
    if (dt == "F8_E4M3" && name.size() > 7 && name.ends_with(".weight")) {
      quantized.push_back(name.substr(0, name.size() - 7));
    }
  }
  for (const std::string& prefix : quantized) {
    const HfTensorRef w = tensors.at(prefix + ".weight");
    if (w.tensor->shape.size() != 2) hfq::corrupt(w, "is FP8 but not 2-D");
    const int64_t rows = w.tensor->shape[0], cols = w.tensor->shape[1];
    if (hfq::find(tensors, prefix, ".weight_scale_inv") != nullptr) {
      throw Error(ErrorKind::kUnsupported, w.file->path() + ": '" + prefix +
                                               ".weight_scale_inv' (block-wise FP8 scales) "
                                               "is not supported");
    }
    const HfTensorRef* s = hfq::find(tensors, prefix, ".weight_scale");
    if (s == nullptr) hfq::corrupt(w, "is FP8 but '" + prefix + ".weight_scale' is missing");
    std::vector<float> scales = hfq::read_floats(*s);
    HostTensor t;
    t.rows = rows;
    t.cols = cols;
    t.data = w.tensor->data;
    t.scheme.kind = QuantKind::kFp8;
    if (scales.size() == static_cast<size_t>(rows) && rows > 1) {
      t.scheme.per_channel = true;
    } else if (scales.size() != 1) {
      hfq::corrupt(*s, "has " + std::to_string(scales.size()) +
                           " scales; FP8 needs one per tensor or one per output row (" +
                           std::to_string(rows) + ")");
    }
    t.scales = hfq::keep(weights, std::move(scales));
    const HfTensorRef* in = hfq::find(tensors, prefix, ".input_scale");
    if (config.static_act) {
      if (in == nullptr) hfq::corrupt(w, "has static activations but no input_scale");
      const std::vector<float> a = hfq::read_floats(*in);
      if (a.size() != 1 || !(a[0] > 0.0f)) {
        hfq::corrupt(*in, "must hold one positive activation scale");
      }
      t.scheme.act_scale = a[0];
    }
    hfq::add_quantized(prefix, t, w, weights);
    for (const char* suffix : {".weight", ".weight_scale", ".input_scale"}) {
      tensors.erase(prefix + suffix);
    }
  }
}

}  // namespace tessera
