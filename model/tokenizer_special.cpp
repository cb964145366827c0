#include "model/tokenizer_special.h"

namespace tessera {

namespace {

// ASCII whitespace is what lstrip/rstrip tokens swallow in practice (spaces and newlines
// around <|im_start|>-style markers).
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

void AddedTokenMatcher::add(const AddedToken& token) {
  if (token.content.empty()) return;  // an empty token would match everywhere
  int32_t node = 0;
  for (const char ch : token.content) {
    const auto c = static_cast<unsigned char>(ch);
    const auto it = trie_[node].child.find(c);
    if (it != trie_[node].child.end()) {
      node = it->second;
    } else {
      trie_.push_back(Node{});
      const auto next = static_cast<int32_t>(trie_.size() - 1);
      trie_[node].child.emplace(c, next);
      node = next;
    }
  }
  if (trie_[node].token >= 0) return;  // same content twice: the first id wins
  trie_[node].token = static_cast<int32_t>(tokens_.size());
  tokens_.push_back(token);
  first_byte_[static_cast<unsigned char>(token.content[0])] = true;
}

int32_t AddedTokenMatcher::longest_at(std::string_view text, size_t pos, bool parse_special,
                                      size_t* len) const {
  int32_t node = 0;
  int32_t best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto it = trie_[node].child.find(static_cast<unsigned char>(text[i]));
    if (it == trie_[node].child.end()) break;
    node = it->second;
    const int32_t t = trie_[node].token;
    if (t >= 0 && (parse_special || !tokens_[t].special)) {
      best = t;
      *len = i + 1 - pos;
    }
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, bool parse_special,
                              std::vector<TextFragment>* out) const {
  size_t emitted = 0;  // text before this offset has been handed out
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t len = 0;
    const int32_t t = longest_at(text, pos, parse_special, &len);
    if (t < 0) {
      ++pos;
      continue;
    }
    size_t b = pos;
    size_t e = pos + len;
    if (tokens_[t].lstrip) {
      while (b > emitted && is_space(text[b - 1])) --b;
    }
    if (tokens_[t].rstrip) {
      while (e < text.size() && is_space(text[e])) ++e;
    }
    if (b > emitted) out->push_back(TextFragment{text.substr(emitted, b - emitted), -1});
    out->push_back(TextFragment{{}, tokens_[t].id});
    emitted = pos = e;
  }
  if (emitted < text.size()) out->push_back(TextFragment{text.substr(emitted), -1});
}

}  // namespace tessera
