// load_model: dispatch on the source kind, and the weight list shared by all loaders.
#include "model/loader.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "common/error.h"

namespace tessera {

LoadedModel load_model(const std::string& path) {
  constexpr std::string_view kDummy = "dummy:";
  if (path.rfind(kDummy, 0) == 0) return load_dummy_model(path.substr(kDummy.size()));
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return load_hf_model(path);
  if (!std::filesystem::exists(path, ec)) {
    throw Error(ErrorKind::kNotFound, path + ": no such model file or folder");
  }
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) {
    return load_gguf_model(path);
  }
  // Any other name: a GGUF still announces itself by its magic.
  char magic[4] = {};
  std::ifstream(path, std::ios::binary).read(magic, 4);
  if (std::memcmp(magic, "GGUF", 4) == 0) return load_gguf_model(path);
  throw Error(ErrorKind::kInvalidArgument,
              path +
                  ": not a model (expected a .gguf file, a Hugging Face folder with "
                  "config.json, or dummy:<config.json>)");
}

std::vector<WeightSpec> expected_weights(const ModelConfig& c) {
  const int64_t h = c.hidden_size;
  const int64_t q = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  const int64_t ffn = c.intermediate_size;
  std::vector<WeightSpec> out = {{"token_embd.weight", c.vocab_size, h, false},
                                 {"output_norm.weight", 1, h, true}};
  if (!c.tied_embeddings) out.push_back({"output.weight", c.vocab_size, h, false});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    out.push_back({p + "attn_norm.weight", 1, h, true});
    out.push_back({p + "attn_q.weight", q, h, false});
    out.push_back({p + "attn_k.weight", kv, h, false});
    out.push_back({p + "attn_v.weight", kv, h, false});
    out.push_back({p + "attn_output.weight", h, q, false});
    out.push_back({p + "ffn_norm.weight", 1, h, true});
    out.push_back({p + "ffn_gate.weight", ffn, h, false});
    out.push_back({p + "ffn_up.weight", ffn, h, false});
    out.push_back({p + "ffn_down.weight", h, ffn, false});
  }
  return out;
}

void check_weights(const ModelConfig& config, const WeightSet& weights, const std::string& source) {
  for (const WeightSpec& spec : expected_weights(config)) {
    auto it = weights.tensors.find(spec.name);
    if (it == weights.tensors.end()) {
      throw Error(ErrorKind::kCorruptFile, source + ": missing tensor '" + spec.name + "'");
    }
    const HostTensor& t = it->second;
    if (t.rows != spec.rows || t.cols != spec.cols) {
      throw Error(ErrorKind::kCorruptFile,
                  source + ": tensor '" + spec.name + "' is [" + std::to_string(t.rows) + ", " +
                      std::to_string(t.cols) + "], the config needs [" + std::to_string(spec.rows) +
                      ", " + std::to_string(spec.cols) + "]");
    }
  }
}

std::string canonical_weight_name(const std::string& hf_name) {
  if (hf_name == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf_name == "model.norm.weight") return "output_norm.weight";
  if (hf_name == "lm_head.weight") return "output.weight";
  // model.layers.<N>.<part>.weight
  constexpr std::string_view kPrefix = "model.layers.", kSuffix = ".weight";
  std::string_view rest(hf_name);
  if (rest.substr(0, kPrefix.size()) != kPrefix || rest.size() < kPrefix.size() + kSuffix.size() ||
      rest.substr(rest.size() - kSuffix.size()) != kSuffix) {
    return "";
  }
  rest = rest.substr(kPrefix.size(), rest.size() - kPrefix.size() - kSuffix.size());
  const size_t dot = rest.find('.');
  const std::string_view layer = rest.substr(0, dot);
  if (dot == std::string_view::npos || layer.empty() || layer.size() > 6 ||
      layer.find_first_not_of("0123456789") != std::string_view::npos) {
    return "";
  }
  const std::string_view part = rest.substr(dot + 1);
  static const std::pair<const char*, const char*> kParts[] = {
      {"input_layernorm", "attn_norm"},    {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},      {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
      {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"},
  };
  for (const auto& [hf, ours] : kParts) {
    if (part == hf) return "blk." + std::string(layer) + "." + ours + ".weight";
  }
  return "";
}

}  // namespace tessera
