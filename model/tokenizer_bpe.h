#pragma once
// Byte-level BPE (GPT-2, SmolLM2, Llama-3, Qwen2): pre-tokenizer regexes cut the text, each
// piece is taken as raw bytes and merged by rank.
#include <array>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/tokenizer_vocab.h"

namespace tessera {

class ByteLevelBpeTokenizer final : public VocabTokenizer {
 public:
  explicit ByteLevelBpeTokenizer(const TokenizerSpec& spec);

 private:
  void encode_fragment(std::string_view text, bool at_start,
                       std::vector<int32_t>* out) const override;
  void encode_piece(std::string_view piece, std::vector<int32_t>* out) const;
  void merge_piece(std::string_view piece, std::vector<int32_t>* out) const;

  struct Merge {
    int32_t rank;
    int32_t id;
  };
  PreTokenizer pre_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> merge
  std::array<int32_t, 256> byte_id_{};
  // Results per pre-token: text repeats a small set of words, so most pieces hit here.
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace tessera
