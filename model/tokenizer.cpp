#include "model/tokenizer.h"

#include "common/error.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_spm.h"
#include "model/unicode.h"

namespace tessera {

std::shared_ptr<Tokenizer> make_tokenizer(TokenizerSpec spec) {
  if (spec.tokens.empty()) {
    throw Error(ErrorKind::kCorruptFile, spec.source + ": the vocabulary is empty");
  }
  switch (spec.kind) {
    case TokenizerKind::kByteLevelBpe:
      return std::make_shared<ByteLevelBpeTokenizer>(spec);
    case TokenizerKind::kSpmBpe:
      return std::make_shared<SpmBpeTokenizer>(spec);
  }
  throw Error(ErrorKind::kInternal, "unknown tokenizer kind");
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (const int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    bytes += token_bytes(id);
  }
  if (decode_strips_leading_space_ && !bytes.empty() && bytes[0] == ' ') bytes.erase(0, 1);
  return sanitize_utf8(bytes);
}

std::string IncrementalDecoder::push(int32_t id) {
  if (skip_ && tok_.is_special(id)) return {};
  pending_ += tok_.token_bytes(id);
  const size_t ready = utf8_complete_prefix(pending_);
  std::string out = sanitize_utf8(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out = sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace tessera
