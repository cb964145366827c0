#pragma once
// KvCacheManager: per-sequence block tables over a BlockPool, with prefix caching and
// copy-on-write forks. Pure bookkeeping: it decides block ids, the backend moves bytes.
//
// A sequence's table is append-only and covers token positions [0, num_blocks * block_size):
//
//   positions:  0 ........ 15 | 16 ....... 31 | 32 .. 37 ______ |
//   table:      [   b7        |    b3         |    b12 (partial)]
//               full+computed: keyed in the    written up to the
//               prefix cache, maybe shared     sequence's computed count
//
// Full computed blocks are immutable (shared safely). Only a table's last, partial block is
// ever written; if it is shared (a fork), the next write first copies it (BlockCopy).
//
// Usage (one sequence):
//   KvCacheManager kv(KvCacheConfig::from_budget(256 << 20, bytes_per_token));
//   SequenceKv seq = kv.create();
//   PrefixMatch hit = kv.match_prefix(prompt, prompt.size() - 1);  // >= 1 token to compute
//   if (!kv.allocate_with_prefix(seq, hit, end)) { /* preempt someone, retry */ }
//   ... backend computes [hit.num_tokens, end) ...
//   kv.cache_computed_blocks(seq, tokens, end);
//   // dropping `seq` returns its blocks (RAII)
//
// Not thread-safe. The manager must outlive every SequenceKv it created.
#include <cstdint>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "kvcache/block_pool.h"

namespace tessera {

struct KvCacheConfig {
  int block_size = 16;  // tokens per block
  int num_blocks = 0;   // including the reserved null block 0
  bool enable_prefix_caching = true;

  // num_blocks = floor(budget / (bytes_per_token * block_size)); bytes_per_token covers all
  // layers, K and V. Throws Error(kResourceExhausted) with the arithmetic when fewer than two
  // blocks (the null block plus one usable) fit.
  static KvCacheConfig from_budget(int64_t budget_bytes, int64_t bytes_per_token,
                                   int block_size = 16, bool enable_prefix_caching = true);
  int capacity_tokens() const { return (num_blocks - 1) * block_size; }
  void validate() const;  // throws Error(kInvalidArgument) naming the field
};

// Copy block src's KV (all layers, K and V) into dst before this step's forward pass.
struct BlockCopy {
  BlockId src = kNullBlock;
  BlockId dst = kNullBlock;
  bool operator==(const BlockCopy&) const = default;
};

struct KvStats {
  int block_size = 0;
  int num_total = 0;   // usable blocks
  int num_used = 0;    // referenced by at least one sequence
  int num_free = 0;    // num_total - num_used (includes evictable cached blocks)
  int num_cached = 0;  // blocks holding a prefix key (used or evictable)
  int64_t num_evictions = 0;
  int64_t prefix_query_tokens = 0;  // prompt tokens looked up on admission
  int64_t prefix_hit_tokens = 0;    // of those, served from the cache
  double usage() const { return num_total ? double(num_used) / num_total : 0.0; }
};

class KvCacheManager;

// RAII block table of one sequence: destroying or reset()ting it releases its blocks.
// Move-only. A default-constructed handle is detached (owns nothing).
class SequenceKv {
 public:
  SequenceKv() = default;
  SequenceKv(SequenceKv&& other) noexcept;
  SequenceKv& operator=(SequenceKv&& other) noexcept;
  SequenceKv(const SequenceKv&) = delete;
  SequenceKv& operator=(const SequenceKv&) = delete;
  ~SequenceKv();

  const std::vector<BlockId>& blocks() const { return blocks_; }
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  int num_cached_blocks() const { return static_cast<int>(keys_.size()); }
  bool attached() const { return owner_ != nullptr; }
  void reset();  // releases every block; the handle stays attached and empty

 private:
  friend class KvCacheManager;
  void take_from(SequenceKv& other) noexcept;

  KvCacheManager* owner_ = nullptr;
  std::vector<BlockId> blocks_;
  std::vector<BlockHash> keys_;  // chained keys of blocks_[0 .. keys_.size()): full, computed
};

// Longest cached prefix of a token run, in whole blocks. Valid until the manager is next
// modified.
struct PrefixMatch {
  std::vector<BlockId> blocks;
  std::vector<BlockHash> keys;
  int num_tokens = 0;     // blocks.size() * block_size
  int num_evictable = 0;  // of blocks, those unreferenced now: each costs one free block
};

class KvCacheManager {
 public:
  explicit KvCacheManager(const KvCacheConfig& config);
  KvCacheManager(const KvCacheManager&) = delete;
  KvCacheManager& operator=(const KvCacheManager&) = delete;

  const KvCacheConfig& config() const { return config_; }
  int block_size() const { return config_.block_size; }
  int num_free_blocks() const { return pool_.num_free(); }
  int num_total_blocks() const { return pool_.num_total(); }
  int blocks_for_tokens(int64_t num_tokens) const;
  KvStats stats() const;
  const BlockPool& pool() const { return pool_; }

  SequenceKv create();

  // Cached full blocks matching tokens[0, n), n <= max_tokens (callers pass len - 1 so at
  // least one token is computed and produces logits). Empty when prefix caching is off.
  PrefixMatch match_prefix(std::span<const int32_t> tokens, int max_tokens) const;
  // Counts one admission's lookup in the stats (tokens queried, tokens hit).
  void record_prefix_query(int query_tokens, int hit_tokens);

  // Free blocks that allocate_slots(seq, start, end) would take (including a COW copy).
  int blocks_needed(const SequenceKv& seq, int start, int end) const;
  // Makes seq's table cover [0, end) ready for writes at [start, end): copies a shared
  // partial block at `start` (appending to `copies`), then appends new blocks. All or
  // nothing: false and no change when too few free blocks. start = tokens already computed.
  // A copy's source stays pinned (not reallocatable) until release_copy_sources(), so all of
  // a step's copies may run in parallel: no destination is another copy's source.
  bool allocate_slots(SequenceKv& seq, int start, int end, std::vector<BlockCopy>& copies);
  // Ends a planning round: drops the pins of this round's copy sources.
  void release_copy_sources();
  // Tables sharing a block (its ref count less copy pins).
  int num_owners(BlockId id) const;
  // For an empty seq: adopts the match's blocks, then allocates up to `end`, leaving at
  // least `keep_free` blocks free. All or nothing.
  bool allocate_with_prefix(SequenceKv& seq, const PrefixMatch& match, int end, int keep_free = 0);

  // After the backend has written KV for tokens[0, num_computed): keys every newly full
  // block so later prompts can share it. No-op when prefix caching is off.
  void cache_computed_blocks(SequenceKv& seq, std::span<const int32_t> tokens, int num_computed);

  // Speculative decoding rolled back a rejected tail: keeps the blocks covering positions
  // [0, num_tokens) and releases the rest (never a cached block: those are computed).
  void truncate(SequenceKv& seq, int num_tokens);

  // A new table sharing parent's blocks for positions [0, num_tokens) (ref counts +1).
  // Writes into a shared partial block are copied first (see allocate_slots).
  SequenceKv fork(const SequenceKv& parent, int num_tokens);

  // Pool invariants plus: every ref count equals the number of live tables holding the
  // block plus its copy pins; no table holds block 0. Throws Error(kInternal) on the first
  // violation.
  void check_invariants() const;

 private:
  friend class SequenceKv;
  void release_all(SequenceKv& seq);
  void track(SequenceKv* seq) { live_.insert(seq); }
  void untrack(SequenceKv* seq) { live_.erase(seq); }

  KvCacheConfig config_;
  BlockPool pool_;
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
  std::unordered_set<SequenceKv*> live_;
  std::unordered_map<BlockId, int> pins_;  // copy sources held until release_copy_sources()  //
                                           // every attached handle, for check_invariants()
};

}  // namespace tessera
