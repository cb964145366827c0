#pragma once
// SentencePiece-style BPE (Llama-2 family, GGUF `llama` vocab): spaces become '▁', a '▁' is
// put before the text, UTF-8 characters are merged by the score of the piece they form, and
// characters no piece covers fall back to <0xXX> byte pieces.
#include <array>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/tokenizer_vocab.h"

namespace tessera {

class SpmBpeTokenizer final : public VocabTokenizer {
 public:
  explicit SpmBpeTokenizer(const TokenizerSpec& spec);

 private:
  void encode_fragment(std::string_view text, bool at_start,
                       std::vector<int32_t>* out) const override;
  int32_t piece_id(std::string_view piece) const;

  std::unordered_map<std::string, int32_t> pieces_;  // stored text ('▁') -> mergeable id
  std::vector<float> scores_;
  // Set when built from a tokenizer.json: merge ranks decide instead of scores.
  std::unordered_map<std::string, int32_t> merge_rank_;  // "left right" -> rank
  std::array<int32_t, 256> byte_id_{};
  int32_t unk_id_ = -1;
  bool add_space_prefix_ = true;
  bool space_prefix_first_only_ = false;
  bool space_prefix_if_no_space_ = false;
};

}  // namespace tessera
