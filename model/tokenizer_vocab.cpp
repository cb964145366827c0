#include "model/tokenizer_vocab.h"

#include <algorithm>

#include "common/error.h"
#include "model/unicode.h"

namespace tessera {

namespace {

// Stop markers that end a turn in the chat formats we serve; any that the vocabulary has
// as a special token joins EOS in stop_ids().
constexpr const char* kEndOfTurnTokens[] = {
    "<|im_end|>", "<|eot_id|>",    "<|end_of_text|>", "<|endoftext|>",
    "<|eom_id|>", "<end_of_turn>", "<|end|>",         "</s>",
};

}  // namespace

VocabTokenizer::VocabTokenizer(const TokenizerSpec& spec, std::vector<std::string> decoded)
    : decoded_(std::move(decoded)) {
  const size_t n = decoded_.size();
  types_ = spec.types.empty() ? std::vector<TokenType>(n, TokenType::kNormal) : spec.types;
  if (types_.size() != n) {
    throw Error(ErrorKind::kCorruptFile, spec.source + ": " + std::to_string(types_.size()) +
                                             " token types for " + std::to_string(n) + " tokens");
  }
  vocab_size_ = static_cast<int>(n);
  const auto check_id = [&](int32_t id, const char* what) {
    if (id < -1 || id >= static_cast<int32_t>(n)) {
      throw Error(ErrorKind::kCorruptFile, spec.source + ": " + what + " id " + std::to_string(id) +
                                               " is outside the vocabulary");
    }
    return id;
  };
  bos_id_ = check_id(spec.bos_id, "BOS");
  eos_id_ = check_id(spec.eos_id, "EOS");
  check_id(spec.eot_id, "EOT");
  check_id(spec.eom_id, "EOM");
  add_bos_ = spec.add_bos && bos_id_ >= 0;
  add_eos_ = spec.add_eos && eos_id_ >= 0;
  chat_template_ = spec.chat_template;

  for (size_t i = 0; i < n; ++i) by_text_.emplace(decoded_[i], static_cast<int32_t>(i));

  // Control and user-defined tokens are matched in text as wholes; only control (special)
  // ones depend on parse_special.
  if (!spec.added_tokens.empty()) {
    for (const AddedToken& t : spec.added_tokens) {
      check_id(t.id, "added token");
      added_.add(t);
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const TokenType t = types_[i];
      // <unk> is matched too (as llama.cpp and HF, which list it among the special tokens).
      const bool special = t == TokenType::kControl || t == TokenType::kUnknown;
      if (special || t == TokenType::kUserDefined) {
        added_.add(AddedToken{decoded_[i], static_cast<int32_t>(i), special});
      }
    }
  }

  for (const int32_t id : {eos_id_, spec.eot_id, spec.eom_id}) {
    if (id >= 0) stop_ids_.push_back(id);
  }
  for (const char* marker : kEndOfTurnTokens) {
    const auto it = by_text_.find(marker);
    if (it != by_text_.end() && is_special(it->second)) stop_ids_.push_back(it->second);
  }
  std::sort(stop_ids_.begin(), stop_ids_.end());
  stop_ids_.erase(std::unique(stop_ids_.begin(), stop_ids_.end()), stop_ids_.end());
}

std::vector<int32_t> VocabTokenizer::encode(std::string_view text, bool add_special,
                                            bool parse_special) const {
  // Invalid UTF-8 never reaches the regexes: each ill-formed subpart becomes U+FFFD, the
  // same text a Python client gets from bytes.decode("utf-8", "replace").
  std::string clean;
  if (!is_valid_utf8(text)) {
    clean = sanitize_utf8(text);
    text = clean;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_special && add_bos_) ids.push_back(bos_id_);
  std::vector<TextFragment> fragments;
  added_.split(text, parse_special, &fragments);
  for (size_t i = 0; i < fragments.size(); ++i) {
    if (fragments[i].id >= 0) {
      ids.push_back(fragments[i].id);
    } else {
      encode_fragment(fragments[i].text, i == 0, &ids);
    }
  }
  if (add_special && add_eos_) ids.push_back(eos_id_);
  return ids;
}

std::string VocabTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size_) {
    throw Error(ErrorKind::kInvalidArgument, "token id " + std::to_string(id) +
                                                 " is outside the vocabulary (size " +
                                                 std::to_string(vocab_size_) + ")");
  }
  return decoded_[static_cast<size_t>(id)];
}

bool VocabTokenizer::is_special(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return false;
  const TokenType t = type_of(id);
  return t == TokenType::kControl || t == TokenType::kUnknown;
}

int32_t VocabTokenizer::token_id(std::string_view text) const {
  const auto it = by_text_.find(std::string(text));
  return it == by_text_.end() ? -1 : it->second;
}

}  // namespace tessera
