#pragma once
// Everything a tokenizer is built from, independent of the file it came from (GGUF metadata
// or tokenizer.json). Loaders fill a TokenizerSpec; make_tokenizer() validates and builds.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/pretokenizer.h"
#include "model/tokenizer_special.h"

namespace tessera {

class Tokenizer;

// GGUF token types (llama.cpp's numbering, also used for tokenizer.json added tokens).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // special: <|im_start|>, <s>; skipped by decode(skip_special)
  kUserDefined = 4,  // added, not special: always matched in text as a whole
  kUnused = 5,
  kByte = 6,  // SentencePiece byte fallback piece <0xXX>
};

enum class TokenizerKind {
  kByteLevelBpe,  // GPT-2 family: tokens written in the byte-to-unicode alphabet, merge ranks
  kSpmBpe,        // SentencePiece BPE: '▁' for spaces, piece scores, <0xXX> byte fallback
};

struct TokenizerSpec {
  TokenizerKind kind = TokenizerKind::kByteLevelBpe;
  std::string source;               // file name, for error messages
  std::vector<std::string> tokens;  // as stored: "Ġhello" (byte-level), "▁hello" (SPM)
  std::vector<TokenType> types;     // empty means all kNormal
  std::vector<float> scores;        // SPM: higher merges first
  // Byte-level: merges in rank order, as the two token strings. For SPM built from a
  // tokenizer.json, merges (if any) take the place of scores.
  std::vector<std::pair<std::string, std::string>> merges;
  PreTokenizer pre;
  // tokenizer.json's added_tokens (with lstrip/rstrip). When empty, the control and
  // user-defined entries of `types` are the tokens matched in text.
  std::vector<AddedToken> added_tokens;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t eot_id = -1;
  int32_t eom_id = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // SPM: a '▁' goes before the text (and after each special)
  bool space_prefix_first_only = false;   // SPM: only before text that starts the input
  bool space_prefix_if_no_space = false;  // SPM: not before text that starts with a space
  std::string chat_template;
};

std::shared_ptr<Tokenizer> make_tokenizer(TokenizerSpec spec);

}  // namespace tessera
