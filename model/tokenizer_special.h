#pragma once
// Finds added and special tokens in text before pre-tokenization, as HF tokenizers does:
// leftmost match first, the longest one when several start at the same byte.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tessera {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;  // matched only when parse_special is on
  bool lstrip = false;   // swallows whitespace to its left
  bool rstrip = false;   // swallows whitespace to its right
};

struct TextFragment {
  std::string_view text;  // when id < 0
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  void add(const AddedToken& token);
  bool empty() const { return tokens_.empty(); }
  // Cuts `text` into plain-text fragments and matched token ids, in order.
  void split(std::string_view text, bool parse_special, std::vector<TextFragment>* out) const;

 private:
  struct Node {
    std::unordered_map<unsigned char, int32_t> child;
    int32_t token = -1;  // index into tokens_ of the token ending here
  };
  // Longest token starting at text[pos] that may be matched; -1 if none.
  int32_t longest_at(std::string_view text, size_t pos, bool parse_special, size_t* len) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> trie_{Node{}};
  bool first_byte_[256] = {};
};

}  // namespace tessera
