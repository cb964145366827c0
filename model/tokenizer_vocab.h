#pragma once
// What byte-level BPE and SentencePiece BPE share: the vocabulary as decoded bytes, token
// types, the added/special token matcher, BOS/EOS rules and the encode driver that cuts
// text at special tokens before the model-specific part runs on each plain fragment.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/tokenizer.h"
#include "model/tokenizer_spec.h"
#include "model/tokenizer_special.h"

namespace tessera {

class VocabTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::string token_bytes(int32_t id) const override;
  bool is_special(int32_t id) const override;
  int32_t token_id(std::string_view text) const override;

 protected:
  // Fills the shared parts; `decoded[i]` is the text token i stands for.
  VocabTokenizer(const TokenizerSpec& spec, std::vector<std::string> decoded);
  // Tokenizes one fragment of plain text (valid UTF-8, no special tokens in it). Fragments
  // alternate with matched tokens; `at_start` is true when the fragment begins the input.
  virtual void encode_fragment(std::string_view text, bool at_start,
                               std::vector<int32_t>* out) const = 0;

  TokenType type_of(int32_t id) const { return types_[static_cast<size_t>(id)]; }

  std::vector<std::string> decoded_;  // bytes each token decodes to
  std::vector<TokenType> types_;
  std::unordered_map<std::string, int32_t> by_text_;  // decoded text -> lowest id
  AddedTokenMatcher added_;
  bool add_bos_ = false;
  bool add_eos_ = false;
};

}  // namespace tessera
