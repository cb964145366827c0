#include "model/tokenizer_spm.h"

#include <cstdio>

#include "common/error.h"
#include "model/bpe.h"
#include "model/unicode.h"

namespace tessera {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 '▁'

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

// "<0x41>" -> 0x41; -1 when the piece is not a byte piece.
int parse_byte_piece(const std::string& p) {
  unsigned v = 0;
  char tail = 0;
  if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%2X%c", &v, &tail) == 2 && tail == '>') {
    return static_cast<int>(v);
  }
  return -1;
}

std::vector<std::string> decode_vocab(const TokenizerSpec& spec) {
  std::vector<std::string> out(spec.tokens.size());
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    const TokenType t = spec.types.empty() ? TokenType::kNormal : spec.types[i];
    const int byte = parse_byte_piece(spec.tokens[i]);
    if (t == TokenType::kByte && byte >= 0) {
      out[i] = std::string(1, static_cast<char>(byte));
    } else if (t == TokenType::kControl || t == TokenType::kUnknown) {
      out[i] = spec.tokens[i];
    } else {
      out[i] = replace_all(spec.tokens[i], kSpace, " ");
    }
  }
  return out;
}

}  // namespace

SpmBpeTokenizer::SpmBpeTokenizer(const TokenizerSpec& spec)
    : VocabTokenizer(spec, decode_vocab(spec)),
      scores_(spec.scores),
      unk_id_(spec.unk_id),
      add_space_prefix_(spec.add_space_prefix),
      space_prefix_first_only_(spec.space_prefix_first_only),
      space_prefix_if_no_space_(spec.space_prefix_if_no_space) {
  if (spec.merges.empty() && scores_.size() != spec.tokens.size()) {
    throw Error(ErrorKind::kCorruptFile, spec.source + ": " + std::to_string(scores_.size()) +
                                             " scores for " + std::to_string(spec.tokens.size()) +
                                             " tokens");
  }
  decode_strips_leading_space_ = add_space_prefix_;
  byte_id_.fill(-1);
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const TokenType t = type_of(id);
    if (t == TokenType::kByte) {
      const int b = parse_byte_piece(spec.tokens[i]);
      if (b >= 0 && byte_id_[b] < 0) byte_id_[b] = id;
    } else if (t == TokenType::kNormal || t == TokenType::kUserDefined) {
      // SentencePiece never forms control, unknown or byte pieces by merging.
      pieces_.emplace(spec.tokens[i], id);
    }
  }
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [a, b] = spec.merges[rank];
    merge_rank_.emplace(a + " " + b, static_cast<int32_t>(rank));
  }
}

int32_t SpmBpeTokenizer::piece_id(std::string_view piece) const {
  const auto it = pieces_.find(std::string(piece));
  return it == pieces_.end() ? -1 : it->second;
}

void SpmBpeTokenizer::encode_fragment(std::string_view text, bool at_start,
                                      std::vector<int32_t>* out) const {
  if (text.empty()) return;
  // Like llama.cpp (and HF's legacy Llama tokenizer), the '▁' prefix goes before every text
  // fragment, i.e. also after each special token; HF's Metaspace prepend_scheme "first" puts
  // it only before text that begins the input, and Metaspace never before text that already
  // starts with a space.
  const bool prefix = add_space_prefix_ && (at_start || !space_prefix_first_only_) &&
                      !(space_prefix_if_no_space_ && text[0] == ' ');
  std::string s = prefix ? std::string(kSpace) : std::string();
  s += replace_all(text, " ", kSpace);

  std::vector<BpeSymbol> syms;
  size_t pos = 0;
  uint32_t cp = 0;
  size_t bad = 0;
  while (pos < s.size()) {
    size_t n = decode_utf8(s, pos, &cp, &bad);
    if (n == 0) n = bad;  // cannot happen on sanitized text; keep the bytes together anyway
    const auto idx = static_cast<int32_t>(syms.size());
    syms.push_back(BpeSymbol{static_cast<uint32_t>(pos), static_cast<uint32_t>(n),
                             piece_id(std::string_view(s).substr(pos, n)), idx - 1, idx + 1});
    pos += n;
  }
  syms.back().next = -1;

  const std::string_view sv = s;
  bpe_merge(syms, [&](const BpeSymbol& l, const BpeSymbol& r) -> std::optional<BpeCandidate> {
    const int32_t id = piece_id(sv.substr(l.begin, l.len + r.len));
    if (id < 0) return std::nullopt;
    if (!merge_rank_.empty()) {
      std::string key(sv.substr(l.begin, l.len));
      key.push_back(' ');
      key.append(sv.substr(r.begin, r.len));
      const auto it = merge_rank_.find(key);
      if (it == merge_rank_.end()) return std::nullopt;
      return BpeCandidate{static_cast<double>(it->second), id};
    }
    return BpeCandidate{-static_cast<double>(scores_[static_cast<size_t>(id)]), id};
  });

  for (const BpeSymbol& sym : syms) {
    if (sym.len == 0) continue;
    if (sym.id >= 0) {
      out->push_back(sym.id);
      continue;
    }
    // Byte fallback: each byte of an uncovered character becomes its <0xXX> piece.
    for (uint32_t k = 0; k < sym.len; ++k) {
      const int32_t b = byte_id_[static_cast<uint8_t>(s[sym.begin + k])];
      if (b >= 0) {
        out->push_back(b);
      } else if (unk_id_ >= 0) {
        out->push_back(unk_id_);
        break;  // one <unk> per uncovered character, as SentencePiece emits
      } else {
        throw Error(ErrorKind::kInvalidArgument,
                    "text has a character the vocabulary cannot encode (no byte pieces, no <unk>)");
      }
    }
  }
}

}  // namespace tessera
