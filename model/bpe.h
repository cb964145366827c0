#pragma once
// The BPE merge loop shared by byte-level BPE (merge ranks) and SentencePiece-style BPE
// (piece scores): adjacent symbols live in a linked list, candidate pairs in a min-heap
// ordered by (priority, position), so a word of n symbols costs O(n log n), not O(n^2).
#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace tessera {

struct BpeSymbol {
  uint32_t begin = 0;  // byte offset of the symbol in the word
  uint32_t len = 0;    // bytes; 0 marks a symbol merged into its left neighbour
  int32_t id = -1;     // token id, or -1 while the symbol is not a vocabulary entry
  int32_t prev = -1;
  int32_t next = -1;
};

struct BpeCandidate {
  double priority = 0;  // lower merges first (a merge rank, or minus a piece score)
  int32_t id = -1;      // token id of the merged symbol
};

// Repeatedly merges the adjacent pair with the lowest priority, the leftmost on ties (the
// order HF tokenizers and SentencePiece both use). `lookup(left, right)` returns the merge
// of two adjacent symbols, or nullopt when they do not merge.
template <class Lookup>
void bpe_merge(std::vector<BpeSymbol>& syms, Lookup&& lookup) {
  struct Entry {
    double priority;
    uint32_t begin;  // position of the left symbol: the tie-breaker
    int32_t left, right;
    uint32_t left_len, right_len;
    int32_t id;
    bool operator>(const Entry& o) const {
      return priority != o.priority ? priority > o.priority : begin > o.begin;
    }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  const auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    if (const std::optional<BpeCandidate> c = lookup(syms[l], syms[r])) {
      heap.push(Entry{c->priority, syms[l].begin, l, r, syms[l].len, syms[r].len, c->id});
    }
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) {
    consider(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));
  }
  while (!heap.empty()) {
    const Entry e = heap.top();
    heap.pop();
    BpeSymbol& l = syms[e.left];
    // Stale entry: one side was merged away or grew since the pair was queued.
    if (l.len != e.left_len || l.next != e.right || syms[e.right].len != e.right_len) continue;
    BpeSymbol& r = syms[e.right];
    l.len += r.len;
    l.id = e.id;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = e.left;
    r.len = 0;
    consider(l.prev, e.left);
    consider(e.left, l.next);
  }
}

}  // namespace tessera
