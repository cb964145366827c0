#pragma once
// The tokenizer of a model that has none (dummy weights for benchmarks): every token decodes
// to no text, encoding is refused. Requests must then be given as token ids.
#include "model/tokenizer.h"

namespace tessera {

class NullTokenizer final : public Tokenizer {
 public:
  NullTokenizer(int vocab_size, int eos_id);
  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::string token_bytes(int32_t) const override { return {}; }
  bool is_special(int32_t) const override { return false; }
  int32_t token_id(std::string_view) const override { return -1; }
};

}  // namespace tessera
