// ModelConfig from a Hugging Face config.json, its consistency checks and size arithmetic.
#include "model/model_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace tessera {
namespace {

using nlohmann::json;

[[noreturn]] void bad_key(const std::string& key, const std::string& reason) {
  throw Error(ErrorKind::kInvalidArgument, "model config: key '" + key + "' " + reason);
}

int get_int(const json& j, const std::string& key, std::optional<int> fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (!fallback) bad_key(key, "is missing");
    return *fallback;
  }
  if (!it->is_number_integer()) bad_key(key, "must be an integer, got " + it->dump());
  const int64_t v = it->get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) bad_key(key, "is out of range: " + it->dump());
  return static_cast<int>(v);
}

double get_number(const json& j, const std::string& key, double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) bad_key(key, "must be a number, got " + it->dump());
  return it->get<double>();
}

// eos_token_id may be one id or a list (Llama-3.1 Instruct lists three); the first is EOS.
int get_token_id(const json& j, const std::string& key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return -1;
  if (it->is_array()) {
    if (it->empty()) return -1;
    if (!(*it)[0].is_number_integer()) bad_key(key, "must hold integers");
    return (*it)[0].get<int>();
  }
  if (!it->is_number_integer()) bad_key(key, "must be an integer or a list of integers");
  return it->get<int>();
}

// transformers <= 4 writes rope_theta + rope_scaling; transformers 5 writes rope_parameters
// (rope_theta, rope_type and the scaling keys in one object).
void parse_rope(const json& j, RopeConfig& rope) {
  rope.theta = static_cast<float>(get_number(j, "rope_theta", 10000.0));
  const char* key = "rope_scaling";
  if (j.contains("rope_parameters") && !j["rope_parameters"].is_null()) {
    key = "rope_parameters";
    if (!j[key].is_object()) bad_key(key, "must be an object");
    rope.theta = static_cast<float>(get_number(j[key], "rope_theta", rope.theta));
  }
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_object()) bad_key(key, "must be an object or null");
  const json& s = *it;
  // Older configs spell the kind "type", newer ones "rope_type".
  std::string kind = s.value("rope_type", s.value("type", std::string()));
  if (kind == "default" || (kind.empty() && key == std::string("rope_parameters"))) return;
  if (kind != "llama3") {
    throw Error(ErrorKind::kUnsupported,
                "model config: rope_scaling type '" + kind + "' is not supported (only llama3)");
  }
  rope.scaling_factor = static_cast<float>(get_number(s, "factor", 0.0));
  rope.low_freq_factor = static_cast<float>(get_number(s, "low_freq_factor", 1.0));
  rope.high_freq_factor = static_cast<float>(get_number(s, "high_freq_factor", 4.0));
  rope.original_max_position = get_int(s, "original_max_position_embeddings", 8192);
  if (!(rope.scaling_factor > 0.0f)) bad_key("rope_scaling.factor", "must be > 0");
}

std::string model_name(const json& j) {
  if (j.contains("_name_or_path") && j["_name_or_path"].is_string()) {
    return j["_name_or_path"].get<std::string>();
  }
  if (j.contains("name") && j["name"].is_string()) return j["name"].get<std::string>();
  return j.value("model_type", std::string("llama"));
}

}  // namespace

ModelConfig ModelConfig::from_hf_json(const json& j) {
  if (!j.is_object()) {
    throw Error(ErrorKind::kInvalidArgument, "model config: expected a JSON object");
  }
  ModelConfig c;
  c.name = model_name(j);
  if (j.contains("model_type") && !j["model_type"].is_string()) {
    bad_key("model_type", "must be a string");
  }
  c.architecture = j.value("model_type", std::string("llama"));
  if (c.architecture != "llama" && c.architecture != "mistral") {
    throw Error(ErrorKind::kUnsupported, "model config: model_type '" + c.architecture +
                                             "' is not supported (llama, mistral)");
  }
  c.vocab_size = get_int(j, "vocab_size", std::nullopt);
  c.hidden_size = get_int(j, "hidden_size", std::nullopt);
  c.intermediate_size = get_int(j, "intermediate_size", std::nullopt);
  c.num_layers = get_int(j, "num_hidden_layers", std::nullopt);
  c.num_heads = get_int(j, "num_attention_heads", std::nullopt);
  c.num_kv_heads = get_int(j, "num_key_value_heads", c.num_heads);
  c.head_dim = get_int(j, "head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", 2048);
  c.rms_norm_eps = static_cast<float>(get_number(j, "rms_norm_eps", 1e-6));
  c.rope.neox = true;  // HF Llama rotates halves of each head
  c.rope.rotary_dim = 0;
  parse_rope(j, c.rope);
  if (j.contains("tie_word_embeddings") && !j["tie_word_embeddings"].is_boolean()) {
    bad_key("tie_word_embeddings", "must be a bool");
  }
  c.tied_embeddings = j.value("tie_word_embeddings", false);
  c.sliding_window = get_int(j, "sliding_window", 0);
  if (j.contains("use_sliding_window") && j["use_sliding_window"] == false) c.sliding_window = 0;
  c.bos_token_id = get_token_id(j, "bos_token_id");
  c.eos_token_id = get_token_id(j, "eos_token_id");
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (j.contains(key) && j[key] == true) {
      throw Error(ErrorKind::kUnsupported,
                  std::string("model config: ") + key + " = true is not supported");
    }
  }
  return c;
}

void ModelConfig::validate() const {
  auto fail = [this](const std::string& what) {
    throw Error(ErrorKind::kInvalidArgument, "model config '" + name + "': " + what);
  };
  auto positive = [&](int v, const char* what) {
    if (v <= 0) fail(std::string(what) + " must be > 0, got " + std::to_string(v));
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_layers, "num_layers");
  positive(num_heads, "num_heads");
  positive(num_kv_heads, "num_kv_heads");
  positive(head_dim, "head_dim");
  positive(max_position_embeddings, "max_position_embeddings");
  if (num_heads % num_kv_heads != 0) {
    fail("num_heads (" + std::to_string(num_heads) + ") is not a multiple of num_kv_heads (" +
         std::to_string(num_kv_heads) + ")");
  }
  if (head_dim % 2 != 0) fail("head_dim must be even for RoPE, got " + std::to_string(head_dim));
  if (rope.rotary_dim < 0 || rope.rotary_dim > head_dim || rope.rotary_dim % 2 != 0) {
    fail("rotary_dim must be even and <= head_dim, got " + std::to_string(rope.rotary_dim));
  }
  if (!(rms_norm_eps > 0.0f) || !std::isfinite(rms_norm_eps)) fail("rms_norm_eps must be > 0");
  if (!(rope.theta > 0.0f) || !std::isfinite(rope.theta)) fail("rope theta must be > 0");
  if (rope.scaling_factor < 0.0f || !std::isfinite(rope.scaling_factor)) {
    fail("rope scaling factor must be >= 0");
  }
  if (rope.scaling_factor > 0.0f &&
      (!(rope.high_freq_factor > rope.low_freq_factor) || rope.low_freq_factor <= 0.0f ||
       rope.original_max_position <= 0)) {
    fail(
        "llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and "
        "original_max_position_embeddings > 0");
  }
  if (sliding_window < 0) fail("sliding_window must be >= 0");
  if (bos_token_id >= vocab_size || eos_token_id >= vocab_size) {
    fail("bos/eos token id outside the vocabulary");
  }
}

int64_t ModelConfig::num_parameters() const {
  const int64_t h = hidden_size;
  const int64_t q = static_cast<int64_t>(num_heads) * head_dim;
  const int64_t kv = static_cast<int64_t>(num_kv_heads) * head_dim;
  const int64_t per_layer = 2 * h                         // attn_norm, ffn_norm
                            + h * q + 2 * h * kv          // q, k, v projections
                            + q * h                       // attention output
                            + 3 * h * intermediate_size;  // gate, up, down
  const int64_t embed = static_cast<int64_t>(vocab_size) * h;
  return embed * (tied_embeddings ? 1 : 2) + h + per_layer * num_layers;
}

size_t ModelConfig::kv_bytes_per_token(size_t elem_bytes) const {
  return 2 * static_cast<size_t>(num_layers) * num_kv_heads * head_dim * elem_bytes;
}

}  // namespace tessera
