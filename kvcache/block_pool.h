#pragma once
// BlockPool: bookkeeping for the paged KV cache's fixed-size blocks (no KV memory here; the
// backend owns that, sized by KvCacheShape::num_blocks). Ids index the backend's pools.
//
//   ids:        0        1    2    3   ...   num_blocks-1
//              [null]  [ usable blocks, handed to sequences       ]
//
//   free list (eviction order; allocate() pops the head):
//     head -> [never-cached blocks ...] [cached, unreferenced: LRU ... MRU] <- tail
//
// Block 0 is the null/padding block: never allocated, never freed, never cached.
// A block is "used" while its reference count > 0 (one count per owning block table).
// A full, computed block may also carry a prefix-cache key (see block_hash.h); when its last
// owner lets go it stays on the free list with its key, so a later prompt can revive it
// (retain()) until allocate() evicts it, least recently released first.
//
// Not thread-safe: one owner (the scheduler, on the engine thread) drives it.
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "kvcache/block_hash.h"

namespace tessera {

using BlockId = int32_t;
inline constexpr BlockId kNullBlock = 0;

class BlockPool {
 public:
  // num_blocks includes the reserved block 0; block_size is tokens per block.
  BlockPool(int num_blocks, int block_size);

  int block_size() const { return block_size_; }
  int num_total() const { return num_blocks_ - 1; }  // usable blocks (excludes block 0)
  int num_free() const { return num_free_; }  // unreferenced: never-cached + evictable cached
  int num_used() const { return num_total() - num_free_; }
  int num_cached() const { return static_cast<int>(cache_.size()); }  // blocks holding a key
  int64_t num_evictions() const { return num_evictions_; }
  int ref_count(BlockId id) const;
  bool is_cached(BlockId id) const;

  // Takes the free list's head with ref count 1 (dropping its prefix key, if any).
  // nullopt when every block is referenced.
  std::optional<BlockId> allocate();
  // One more owner. An unreferenced cached block leaves the free list (prefix-cache revival).
  void retain(BlockId id);
  // One owner fewer; at zero the block returns to the free list: cached blocks at the tail
  // (most recently used), others at the head (reused first, they hold nothing of value).
  // Releasing an unreferenced block throws Error(kInternal): a double free is a bug.
  void release(BlockId id);

  // The cached block with this key whose parent key and tokens match, if any.
  std::optional<BlockId> find_cached(BlockHash key, BlockHash parent,
                                     std::span<const int32_t> tokens) const;
  // Gives a referenced, full block a key. Returns false (block stays uncached) when another
  // block already holds the key or this block has one: the first writer wins.
  bool add_to_cache(BlockId id, BlockHash key, BlockHash parent, std::span<const int32_t> tokens);

  // Throws Error(kInternal) describing the first broken invariant: free list well formed,
  // every block on it at most once and exactly the unreferenced ones, block 0 untouched,
  // counters and cache index consistent.
  void check_invariants() const;

 private:
  struct Meta {
    int32_t ref_count = 0;
    BlockId prev = -1;  // free-list links; -1 = none
    BlockId next = -1;
    bool on_free_list = false;
    bool cached = false;
    BlockHash key = 0;
    BlockHash parent = 0;
  };

  void check_id(BlockId id, const char* what) const;
  void unlink(BlockId id);
  void push_head(BlockId id);
  void push_tail(BlockId id);
  void drop_from_cache(BlockId id);
  std::span<const int32_t> cached_tokens(BlockId id) const;

  int num_blocks_;
  int block_size_;
  int num_free_ = 0;
  int64_t num_evictions_ = 0;
  BlockId head_ = -1;
  BlockId tail_ = -1;
  std::vector<Meta> meta_;
  std::vector<int32_t> tokens_;  // [num_blocks, block_size]: the tokens of cached blocks
  std::unordered_map<BlockHash, BlockId> cache_;
};

}  // namespace tessera
