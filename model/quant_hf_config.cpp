// quantization_config of a Hugging Face config.json -> HfQuantConfig.
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/quant_hf.h"

namespace tessera {
namespace {

using nlohmann::json;

[[noreturn]] void unsupported(const std::string& what) {
  throw Error(ErrorKind::kUnsupported, "quantization_config: " + what);
}

int int_field(const json& q, const char* key, int fallback) {
  auto it = q.find(key);
  if (it == q.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) {
    throw Error(ErrorKind::kInvalidArgument,
                std::string("quantization_config: '") + key + "' must be an integer");
  }
  return it->get<int>();
}

bool bool_field(const json& q, const char* key, bool fallback) {
  auto it = q.find(key);
  if (it == q.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    throw Error(ErrorKind::kInvalidArgument,
                std::string("quantization_config: '") + key + "' must be true or false");
  }
  return it->get<bool>();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// compressed-tensors: every config group must be FP8 weights (per tensor or channel) with
// FP8 per-tensor static or dynamic activations; other groups (int4 pack-quantized, block
// strategies) are not loaded.
HfQuantConfig compressed_tensors(const json& q) {
  const std::string format = q.value("format", "");
  if (format != "float-quantized" && format != "naive-quantized") {
    unsupported("compressed-tensors format '" + format + "' (supported: float-quantized FP8)");
  }
  if (!q.contains("config_groups") || !q["config_groups"].is_object() ||
      q["config_groups"].empty()) {
    unsupported("compressed-tensors without config_groups");
  }
  HfQuantConfig c;
  c.method = HfQuantConfig::Method::kFp8;
  c.bits = 8;
  bool first = true;
  for (const auto& [name, g] : q["config_groups"].items()) {
    const json& w = g.value("weights", json());
    if (!w.is_object() || w.value("type", "") != "float" || int_field(w, "num_bits", 0) != 8) {
      unsupported("compressed-tensors group '" + name + "' is not 8-bit float weights");
    }
    const std::string ws = w.value("strategy", "tensor");
    if (ws != "tensor" && ws != "channel") {
      unsupported("compressed-tensors weight strategy '" + ws + "' (tensor or channel)");
    }
    const json& a = g.contains("input_activations") ? g["input_activations"] : json();
    bool is_static = false;
    if (a.is_object()) {
      if (a.value("type", "float") != "float" || int_field(a, "num_bits", 8) != 8) {
        unsupported("compressed-tensors group '" + name + "': activations are not FP8");
      }
      is_static = !bool_field(a, "dynamic", false);
      if (is_static && a.value("strategy", "tensor") != "tensor") {
        unsupported("compressed-tensors static activations must be per tensor");
      }
    }
    if (!first && is_static != c.static_act) {
      unsupported("compressed-tensors groups mix static and dynamic activations");
    }
    c.static_act = is_static;
    first = false;
  }
  return c;
}

}  // namespace

HfQuantConfig parse_hf_quant_config(const json& config) {
  HfQuantConfig c;
  if (!config.contains("quantization_config") || config["quantization_config"].is_null()) {
    return c;
  }
  const json& q = config["quantization_config"];
  if (!q.is_object()) {
    throw Error(ErrorKind::kInvalidArgument, "quantization_config must be an object");
  }
  const std::string method = lower(q.value("quant_method", ""));
  if (method == "compressed-tensors") return compressed_tensors(q);
  if (method == "fp8") {
    if (q.contains("weight_block_size") && !q["weight_block_size"].is_null()) {
      unsupported("fp8 with weight_block_size (block-wise scales)");
    }
    c.method = HfQuantConfig::Method::kFp8;
    c.bits = 8;
    const std::string scheme = q.value("activation_scheme", "dynamic");
    if (scheme != "static" && scheme != "dynamic") {
      unsupported("fp8 activation_scheme '" + scheme + "'");
    }
    c.static_act = scheme == "static";
    return c;
  }
  if (method == "awq" || method == "gptq") {
    c.method = method == "awq" ? HfQuantConfig::Method::kAwq : HfQuantConfig::Method::kGptq;
    c.bits = int_field(q, method == "awq" ? "w_bit" : "bits", int_field(q, "bits", 4));
    if (c.bits != 4) unsupported(method + " with " + std::to_string(c.bits) + " bits (4 only)");
    c.group_size = int_field(q, method == "awq" ? "q_group_size" : "group_size",
                             int_field(q, "group_size", 128));
    if (c.group_size == -1) c.group_size = 0;
    if (c.group_size < 0) unsupported("group_size " + std::to_string(c.group_size));
    if (method == "awq") {
      const std::string version = lower(q.value("version", "gemm"));
      if (version != "gemm") unsupported("awq version '" + version + "' (gemm only)");
      if (!bool_field(q, "zero_point", true)) unsupported("awq without zero points");
    } else {
      const std::string fmt = lower(q.value("checkpoint_format", "gptq"));
      if (fmt != "gptq" && fmt != "gptq_v2") unsupported("gptq checkpoint_format '" + fmt + "'");
      c.gptq_zero_offset = fmt == "gptq";
    }
    return c;
  }
  unsupported("quant_method '" + method + "' (supported: fp8, compressed-tensors, awq, gptq)");
}

void load_hf_quantized(const HfQuantConfig& config, HfTensorMap& tensors, WeightSet& weights) {
  switch (config.method) {
    case HfQuantConfig::Method::kNone:
      return;
    case HfQuantConfig::Method::kFp8:
      load_hf_fp8(config, tensors, weights);
      return;
    case HfQuantConfig::Method::kAwq:
    case HfQuantConfig::Method::kGptq:
      load_hf_int4(config, tensors, weights);
      return;
  }
}

}  // namespace tessera
