#include "model/tokenizer_bpe.h"

#include "common/error.h"
#include "model/bpe.h"
#include "model/unicode.h"

namespace tessera {

namespace {

constexpr size_t kMaxCachedPieceBytes = 64;
constexpr size_t kMaxCacheEntries = 1 << 16;

// Byte-level vocabularies spell normal tokens in GPT-2's byte alphabet; added tokens are
// plain text. A token that is not valid in the alphabet is taken literally.
std::vector<std::string> decode_vocab(const TokenizerSpec& spec) {
  std::vector<std::string> out(spec.tokens.size());
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    const bool literal = !spec.types.empty() && (spec.types[i] == TokenType::kControl ||
                                                 spec.types[i] == TokenType::kUnknown ||
                                                 spec.types[i] == TokenType::kUserDefined);
    if (literal || !byte_level_decode(spec.tokens[i], &out[i])) out[i] = spec.tokens[i];
  }
  return out;
}

uint64_t pair_key(int32_t l, int32_t r) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
}

}  // namespace

ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(const TokenizerSpec& spec)
    : VocabTokenizer(spec, decode_vocab(spec)), pre_(spec.pre) {
  // Ids of the stored (byte-alphabet) spellings, to resolve merges written in that form.
  std::unordered_map<std::string, int32_t> stored;
  stored.reserve(spec.tokens.size());
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    stored.emplace(spec.tokens[i], static_cast<int32_t>(i));
  }
  // Some vocabularies lack a few bytes (SmolLM2 has no token for 0x04, nor for bytes that
  // never occur in UTF-8). HF then drops that byte from the word, and so do we (id -1).
  const auto& table = byte_to_unicode();
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    append_utf8(ch, table[b]);
    const auto it = stored.find(ch);
    byte_id_[b] = it == stored.end() ? -1 : it->second;
  }
  merges_.reserve(spec.merges.size() * 2);
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [a, b] = spec.merges[rank];
    const auto ia = stored.find(a), ib = stored.find(b), ir = stored.find(a + b);
    if (ia == stored.end() || ib == stored.end() || ir == stored.end()) {
      throw Error(ErrorKind::kCorruptFile, spec.source + ": merge " + std::to_string(rank) + " ('" +
                                               a + "' '" + b +
                                               "') names a token that is not in the vocabulary");
    }
    // A pair listed twice keeps its first (best) rank, as HF does.
    merges_.emplace(pair_key(ia->second, ib->second),
                    Merge{static_cast<int32_t>(rank), ir->second});
  }
}

void ByteLevelBpeTokenizer::encode_fragment(std::string_view text, bool /*at_start*/,
                                            std::vector<int32_t>* out) const {
  std::string prefixed;
  if (pre_.add_prefix_space() && !text.empty() && text[0] != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  for (const std::string_view piece : pre_.split(text)) encode_piece(piece, out);
}

void ByteLevelBpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>* out) const {
  if (pre_.ignore_merges()) {
    const int32_t whole = token_id(piece);
    if (whole >= 0 && type_of(whole) == TokenType::kNormal) {
      out->push_back(whole);
      return;
    }
  }
  if (piece.size() > kMaxCachedPieceBytes) {
    merge_piece(piece, out);
    return;
  }
  const std::string key(piece);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_piece(piece, &ids);
  out->insert(out->end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(key, std::move(ids));
}

void ByteLevelBpeTokenizer::merge_piece(std::string_view piece, std::vector<int32_t>* out) const {
  std::vector<BpeSymbol> syms;
  syms.reserve(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) {
    const int32_t id = byte_id_[static_cast<uint8_t>(piece[i])];
    if (id < 0) continue;  // a byte the vocabulary lacks: its neighbours become adjacent
    const auto idx = static_cast<int32_t>(syms.size());
    syms.push_back(BpeSymbol{static_cast<uint32_t>(i), 1, id, idx - 1, idx + 1});
  }
  if (syms.empty()) return;
  syms.back().next = -1;
  bpe_merge(syms, [&](const BpeSymbol& l, const BpeSymbol& r) -> std::optional<BpeCandidate> {
    const auto it = merges_.find(pair_key(l.id, r.id));
    if (it == merges_.end()) return std::nullopt;
    return BpeCandidate{static_cast<double>(it->second.rank), it->second.id};
  });
  for (const BpeSymbol& s : syms) {
    if (s.len != 0) out->push_back(s.id);
  }
}

}  // namespace tessera
