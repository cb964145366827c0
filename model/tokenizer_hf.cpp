// Tokenizer::from_hf_files: a Hugging Face tokenizer.json (BPE model, byte-level or
// SentencePiece-style) plus the BOS/EOS rules and chat template of tokenizer_config.json.
// Supported: BPE models; pre-tokenizers Sequence/Split/ByteLevel/Digits/Metaspace; the
// Prepend+Replace('▁') normalizer of Llama-2 style files; TemplateProcessing post-processors.
// Not applied: Unicode normalizers such as Qwen2's NFC (text already in NFC, as clients
// nearly always send, tokenizes identically; decomposed input may differ from HF).
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/tokenizer.h"
#include "model/tokenizer_spec.h"

namespace tessera {

namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::kNotFound, path + ": cannot open");
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    return json::parse(buf.str());
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kCorruptFile, path + ": not valid JSON: " + e.what());
  }
}

// "bos_token" is either "<s>" or {"content": "<s>", ...}.
std::string token_content(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v.at("content").get<std::string>();
  return {};
}

// The first object of `type` in a (possibly nested) pre-tokenizer / normalizer spec.
const json* find_type(const json& node, const std::string& type) {
  if (node.is_object()) {
    if (node.value("type", std::string()) == type) return &node;
    for (const auto& [k, v] : node.items()) {
      if (const json* hit = find_type(v, type)) return hit;
    }
  } else if (node.is_array()) {
    for (const auto& v : node) {
      if (const json* hit = find_type(v, type)) return hit;
    }
  }
  return nullptr;
}

bool json_contains_type(const json& node, const std::string& type) {
  if (node.is_object()) {
    if (node.value("type", std::string()) == type) return true;
    for (const auto& [k, v] : node.items()) {
      if (json_contains_type(v, type)) return true;
    }
  } else if (node.is_array()) {
    for (const auto& v : node) {
      if (json_contains_type(v, type)) return true;
    }
  }
  return false;
}

// TemplateProcessing's single template: special tokens before $A are BOS, after it EOS.
void read_post_processor(const json& pp, TokenizerSpec* spec) {
  if (!pp.is_object()) return;
  const std::string type = pp.value("type", std::string());
  if (type == "Sequence") {
    for (const auto& sub : pp.at("processors")) read_post_processor(sub, spec);
    return;
  }
  if (type != "TemplateProcessing") return;
  bool seen_a = false;
  for (const auto& piece : pp.at("single")) {
    if (piece.contains("Sequence")) {
      seen_a = true;
    } else if (piece.contains("SpecialToken")) {
      const std::string name = piece.at("SpecialToken").at("id").get<std::string>();
      const auto& ids = pp.at("special_tokens").at(name).at("ids");
      if (ids.empty()) continue;
      const auto id = ids.at(0).get<int32_t>();
      if (seen_a) {
        spec->eos_id = id;
        spec->add_eos = true;
      } else {
        spec->bos_id = id;
        spec->add_bos = true;
      }
    }
  }
}

void read_model(const json& model, const std::string& path, TokenizerSpec* spec) {
  if (model.value("type", std::string("BPE")) != "BPE") {
    throw Error(ErrorKind::kUnsupported, path + ": model type '" +
                                             model.value("type", std::string()) +
                                             "' is not supported (BPE is)");
  }
  if (!model.value("continuing_subword_prefix", json()).is_null() &&
      !model.at("continuing_subword_prefix").get<std::string>().empty()) {
    throw Error(ErrorKind::kUnsupported, path + ": BPE continuing_subword_prefix is not supported");
  }
  for (const auto& [text, id] : model.at("vocab").items()) {
    const auto i = id.get<int64_t>();
    if (i < 0 || i > (1 << 24)) {
      throw Error(ErrorKind::kCorruptFile,
                  path + ": token '" + text + "' has id " + std::to_string(i));
    }
    if (static_cast<size_t>(i) >= spec->tokens.size()) spec->tokens.resize(i + 1);
    spec->tokens[i] = text;
  }
  for (const auto& m : model.value("merges", json::array())) {
    if (m.is_array() && m.size() == 2) {
      spec->merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos) {
        throw Error(ErrorKind::kCorruptFile, path + ": merge '" + s + "' has no space");
      }
      spec->merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    }
  }
}

bool is_byte_piece(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>';
}

}  // namespace

std::shared_ptr<Tokenizer> Tokenizer::from_hf_files(const std::string& tokenizer_json_path,
                                                    const std::string& tokenizer_config_path) {
  const json root = read_json(tokenizer_json_path);
  TokenizerSpec spec;
  spec.source = tokenizer_json_path;
  try {
    const json& model = root.at("model");
    read_model(model, tokenizer_json_path, &spec);
    for (const auto& t : root.value("added_tokens", json::array())) {
      const auto id = t.at("id").get<int64_t>();
      if (id < 0 || id > (1 << 24)) {
        throw Error(ErrorKind::kCorruptFile,
                    tokenizer_json_path + ": added token id " + std::to_string(id));
      }
      if (static_cast<size_t>(id) >= spec.tokens.size()) spec.tokens.resize(id + 1);
      AddedToken added{t.at("content").get<std::string>(), static_cast<int32_t>(id),
                       t.value("special", false), t.value("lstrip", false),
                       t.value("rstrip", false)};
      spec.tokens[id] = added.content;
      spec.added_tokens.push_back(added);
    }
    spec.types.assign(spec.tokens.size(), TokenType::kNormal);
    for (const AddedToken& t : spec.added_tokens) {
      spec.types[t.id] = t.special ? TokenType::kControl : TokenType::kUserDefined;
    }

    const json pre = root.value("pre_tokenizer", json());
    const json decoder = root.value("decoder", json());
    const bool byte_level =
        json_contains_type(pre, "ByteLevel") || json_contains_type(decoder, "ByteLevel");
    if (byte_level) {
      spec.kind = TokenizerKind::kByteLevelBpe;
      spec.pre = PreTokenizer::from_hf_json(pre);
      spec.pre.set_ignore_merges(model.value("ignore_merges", false));
    } else {
      // SentencePiece-style: '▁' for spaces (Metaspace or Prepend+Replace normalizers),
      // merge ranks from the merges list, <0xXX> byte fallback.
      spec.kind = TokenizerKind::kSpmBpe;
      const json norm = root.value("normalizer", json());
      bool prefix = json_contains_type(norm, "Prepend");
      if (const json* meta = find_type(pre, "Metaspace")) {
        const std::string scheme = meta->value("prepend_scheme", std::string("always"));
        prefix = scheme != "never" && meta->value("add_prefix_space", true);
        spec.space_prefix_first_only = scheme == "first";
        spec.space_prefix_if_no_space = true;
      }
      spec.add_space_prefix = prefix;
      const bool byte_fallback = model.value("byte_fallback", false);
      for (size_t i = 0; i < spec.tokens.size(); ++i) {
        if (byte_fallback && spec.types[i] == TokenType::kNormal && is_byte_piece(spec.tokens[i])) {
          spec.types[i] = TokenType::kByte;
        }
      }
      const std::string unk = token_content(model.value("unk_token", json()));
      for (size_t i = 0; !unk.empty() && i < spec.tokens.size(); ++i) {
        if (spec.tokens[i] == unk) {
          spec.unk_id = static_cast<int32_t>(i);
          spec.types[i] = TokenType::kUnknown;
          break;
        }
      }
    }
    read_post_processor(root.value("post_processor", json()), &spec);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kCorruptFile, tokenizer_json_path + ": " + e.what());
  }

  if (!tokenizer_config_path.empty()) {
    const json cfg = read_json(tokenizer_config_path);
    const auto find = [&](const std::string& text) -> int32_t {
      for (size_t i = 0; i < spec.tokens.size(); ++i) {
        if (spec.tokens[i] == text) return static_cast<int32_t>(i);
      }
      return -1;
    };
    if (cfg.contains("bos_token")) {
      const int32_t id = find(token_content(cfg["bos_token"]));
      if (id >= 0) spec.bos_id = id;
    }
    if (cfg.contains("eos_token")) {
      const int32_t id = find(token_content(cfg["eos_token"]));
      if (id >= 0) spec.eos_id = id;
    }
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
      spec.add_bos = cfg["add_bos_token"].get<bool>();
    }
    if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) {
      spec.add_eos = cfg["add_eos_token"].get<bool>();
    }
    const json tmpl = cfg.value("chat_template", json());
    if (tmpl.is_string()) {
      spec.chat_template = tmpl.get<std::string>();
    } else if (tmpl.is_array()) {
      for (const auto& t : tmpl) {
        if (t.value("name", std::string()) == "default")
          spec.chat_template = t.value("template", std::string());
      }
    }
  }
  if (spec.chat_template.empty()) {
    // transformers 5 saves the template beside tokenizer.json as chat_template.jinja.
    const auto jinja =
        std::filesystem::path(tokenizer_json_path).parent_path() / "chat_template.jinja";
    std::ifstream in(jinja, std::ios::binary);
    if (in) {
      std::stringstream buf;
      buf << in.rdbuf();
      spec.chat_template = buf.str();
    }
  }
  return make_tokenizer(std::move(spec));
}

}  // namespace tessera
