#include "kvcache/kv_cache_manager.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "common/error.h"

namespace tessera {

KvCacheConfig KvCacheConfig::from_budget(int64_t budget_bytes, int64_t bytes_per_token,
                                         int block_size, bool enable_prefix_caching) {
  if (bytes_per_token <= 0 || block_size <= 0) {
    throw Error(ErrorKind::kInvalidArgument,
                "KV cache: bytes_per_token and block_size must be positive, got " +
                    std::to_string(bytes_per_token) + " and " + std::to_string(block_size));
  }
  const int64_t bytes_per_block = bytes_per_token * block_size;
  const int64_t num_blocks = budget_bytes / bytes_per_block;
  if (num_blocks < 2) {
    throw Error(ErrorKind::kResourceExhausted,
                "KV cache budget of " + std::to_string(budget_bytes) + " bytes holds " +
                    std::to_string(num_blocks) + " blocks of " + std::to_string(block_size) +
                    " tokens x " + std::to_string(bytes_per_token) +
                    " bytes/token = " + std::to_string(bytes_per_block) +
                    " bytes; need at least 2 (block 0 is reserved)");
  }
  KvCacheConfig c;
  c.block_size = block_size;
  c.num_blocks = static_cast<int>(std::min<int64_t>(num_blocks, int64_t{1} << 30));
  c.enable_prefix_caching = enable_prefix_caching;
  return c;
}

void KvCacheConfig::validate() const {
  if (block_size < 1 || block_size > 4096) {
    throw Error(ErrorKind::kInvalidArgument,
                "kv.block_size must be in [1, 4096], got " + std::to_string(block_size));
  }
  if (num_blocks < 2) {
    throw Error(
        ErrorKind::kInvalidArgument,
        "kv.num_blocks must be >= 2 (block 0 is reserved), got " + std::to_string(num_blocks));
  }
}

// ---- SequenceKv ----

void SequenceKv::take_from(SequenceKv& other) noexcept {
  owner_ = other.owner_;
  blocks_ = std::move(other.blocks_);
  keys_ = std::move(other.keys_);
  if (owner_) {
    owner_->untrack(&other);
    owner_->track(this);
  }
  other.owner_ = nullptr;
  other.blocks_.clear();
  other.keys_.clear();
}

SequenceKv::SequenceKv(SequenceKv&& other) noexcept {
  take_from(other);
}

SequenceKv::~SequenceKv() {
  if (owner_) {
    owner_->release_all(*this);
    owner_->untrack(this);
  }
}

SequenceKv& SequenceKv::operator=(SequenceKv&& other) noexcept {
  if (this != &other) {
    reset();
    if (owner_) owner_->untrack(this);
    owner_ = nullptr;
    take_from(other);
  }
  return *this;
}

void SequenceKv::reset() {
  if (owner_) owner_->release_all(*this);
}

// ---- KvCacheManager ----

KvCacheManager::KvCacheManager(const KvCacheConfig& config)
    : config_((config.validate(), config)), pool_(config.num_blocks, config.block_size) {}

int KvCacheManager::blocks_for_tokens(int64_t num_tokens) const {
  return static_cast<int>((num_tokens + config_.block_size - 1) / config_.block_size);
}

KvStats KvCacheManager::stats() const {
  KvStats s;
  s.block_size = config_.block_size;
  s.num_total = pool_.num_total();
  s.num_used = pool_.num_used();
  s.num_free = pool_.num_free();
  s.num_cached = pool_.num_cached();
  s.num_evictions = pool_.num_evictions();
  s.prefix_query_tokens = prefix_query_tokens_;
  s.prefix_hit_tokens = prefix_hit_tokens_;
  return s;
}

SequenceKv KvCacheManager::create() {
  SequenceKv seq;
  seq.owner_ = this;
  track(&seq);
  return seq;  // NRVO or move: either keeps the registry exact
}

void KvCacheManager::release_all(SequenceKv& seq) {
  // Tail blocks first: they land nearer the free list's head and are evicted before the
  // prompt's leading blocks, which more requests share.
  for (auto it = seq.blocks_.rbegin(); it != seq.blocks_.rend(); ++it) pool_.release(*it);
  seq.blocks_.clear();
  seq.keys_.clear();
}

PrefixMatch KvCacheManager::match_prefix(std::span<const int32_t> tokens, int max_tokens) const {
  PrefixMatch match;
  if (!config_.enable_prefix_caching) return match;
  const int bs = config_.block_size;
  const int limit = std::min<int>(max_tokens, static_cast<int>(tokens.size()));
  BlockHash parent = kRootBlockHash;
  for (int start = 0; start + bs <= limit; start += bs) {
    auto block_tokens = tokens.subspan(start, bs);
    BlockHash key = hash_block_tokens(parent, block_tokens);
    auto id = pool_.find_cached(key, parent, block_tokens);
    if (!id) break;
    match.blocks.push_back(*id);
    match.keys.push_back(key);
    if (pool_.ref_count(*id) == 0) ++match.num_evictable;
    parent = key;
  }
  match.num_tokens = static_cast<int>(match.blocks.size()) * bs;
  return match;
}

void KvCacheManager::record_prefix_query(int query_tokens, int hit_tokens) {
  prefix_query_tokens_ += query_tokens;
  prefix_hit_tokens_ += hit_tokens;
}

int KvCacheManager::blocks_needed(const SequenceKv& seq, int start, int end) const {
  const int bs = config_.block_size;
  int needed = std::max(0, blocks_for_tokens(end) - seq.num_blocks());
  // The block holding position `start` is written this step; if it already holds earlier
  // tokens and another table shares it, it must be copied first.
  if (start % bs != 0 && start / bs < seq.num_blocks() && start < end &&
      num_owners(seq.blocks_[start / bs]) > 1) {
    ++needed;
  }
  return needed;
}

bool KvCacheManager::allocate_slots(SequenceKv& seq, int start, int end,
                                    std::vector<BlockCopy>& copies) {
  if (seq.owner_ != this) throw Error(ErrorKind::kInternal, "allocate_slots: foreign handle");
  if (start < 0 || end < start || blocks_for_tokens(start) > seq.num_blocks()) {
    throw Error(ErrorKind::kInternal, "allocate_slots: bad range [" + std::to_string(start) + ", " +
                                          std::to_string(end) + ") for a table of " +
                                          std::to_string(seq.num_blocks()) + " blocks");
  }
  if (blocks_needed(seq, start, end) > pool_.num_free()) return false;
  const int bs = config_.block_size;
  if (start % bs != 0 && start < end && start / bs < seq.num_blocks()) {
    BlockId& shared = seq.blocks_[start / bs];
    if (num_owners(shared) > 1) {
      BlockId copy = *pool_.allocate();
      copies.push_back({shared, copy});
      // The table's reference becomes a pin: the source cannot be reallocated (and
      // overwritten) before the copy has run, even if every owner lets go meanwhile.
      ++pins_[shared];
      shared = copy;
    }
  }
  while (seq.num_blocks() < blocks_for_tokens(end)) seq.blocks_.push_back(*pool_.allocate());
  return true;
}

bool KvCacheManager::allocate_with_prefix(SequenceKv& seq, const PrefixMatch& match, int end,
                                          int keep_free) {
  if (seq.owner_ != this || seq.num_blocks() != 0) {
    throw Error(ErrorKind::kInternal, "allocate_with_prefix: needs an empty handle");
  }
  const int new_blocks =
      std::max(0, blocks_for_tokens(end) - static_cast<int>(match.blocks.size()));
  if (new_blocks + match.num_evictable + std::max(0, keep_free) > pool_.num_free()) return false;
  // Revive the hits before allocating, so allocation cannot evict them.
  for (BlockId id : match.blocks) {
    pool_.retain(id);
    seq.blocks_.push_back(id);
  }
  seq.keys_ = match.keys;
  while (seq.num_blocks() < blocks_for_tokens(end)) seq.blocks_.push_back(*pool_.allocate());
  return true;
}

int KvCacheManager::num_owners(BlockId id) const {
  auto it = pins_.find(id);
  return pool_.ref_count(id) - (it == pins_.end() ? 0 : it->second);
}

void KvCacheManager::release_copy_sources() {
  for (const auto& [id, n] : pins_) {
    for (int i = 0; i < n; ++i) pool_.release(id);
  }
  pins_.clear();
}

void KvCacheManager::cache_computed_blocks(SequenceKv& seq, std::span<const int32_t> tokens,
                                           int num_computed) {
  if (!config_.enable_prefix_caching) return;
  const int bs = config_.block_size;
  const int num_full = std::min<int>(num_computed, static_cast<int>(tokens.size())) / bs;
  if (num_full > seq.num_blocks()) {
    throw Error(ErrorKind::kInternal, "cache_computed_blocks: computed tokens exceed the table");
  }
  for (int i = seq.num_cached_blocks(); i < num_full; ++i) {
    BlockHash parent = i == 0 ? kRootBlockHash : seq.keys_[i - 1];
    auto block_tokens = tokens.subspan(static_cast<size_t>(i) * bs, bs);
    BlockHash key = hash_block_tokens(parent, block_tokens);
    pool_.add_to_cache(seq.blocks_[i], key, parent, block_tokens);
    seq.keys_.push_back(key);  // the chain continues even when another block holds the key
  }
}

void KvCacheManager::truncate(SequenceKv& seq, int num_tokens) {
  if (seq.owner_ != this) throw Error(ErrorKind::kInternal, "truncate: foreign handle");
  const int keep = std::max(blocks_for_tokens(num_tokens), seq.num_cached_blocks());
  while (seq.num_blocks() > keep) {
    pool_.release(seq.blocks_.back());
    seq.blocks_.pop_back();
  }
}

SequenceKv KvCacheManager::fork(const SequenceKv& parent, int num_tokens) {
  if (parent.owner_ != this) throw Error(ErrorKind::kInternal, "fork: foreign handle");
  const int n = blocks_for_tokens(num_tokens);
  if (n > parent.num_blocks()) {
    throw Error(ErrorKind::kInternal,
                "fork: parent table covers fewer than " + std::to_string(num_tokens) + " tokens");
  }
  SequenceKv child = create();
  for (int i = 0; i < n; ++i) {
    pool_.retain(parent.blocks_[i]);
    child.blocks_.push_back(parent.blocks_[i]);
  }
  const int keys = std::min(parent.num_cached_blocks(), num_tokens / config_.block_size);
  child.keys_.assign(parent.keys_.begin(), parent.keys_.begin() + keys);
  return child;
}

void KvCacheManager::check_invariants() const {
  pool_.check_invariants();
  std::unordered_map<BlockId, int> owners = pins_;
  for (const SequenceKv* seq : live_) {
    if (seq->owner_ != this) throw Error(ErrorKind::kInternal, "KV invariant: stray handle");
    if (seq->num_cached_blocks() > seq->num_blocks()) {
      throw Error(ErrorKind::kInternal, "KV invariant: more keys than blocks in a table");
    }
    for (BlockId id : seq->blocks_) {
      if (id <= kNullBlock || id > pool_.num_total()) {
        throw Error(ErrorKind::kInternal, "KV invariant: table holds block " + std::to_string(id));
      }
      ++owners[id];
    }
  }
  int used = 0;
  for (BlockId id = 1; id <= pool_.num_total(); ++id) {
    auto it = owners.find(id);
    const int expected = it == owners.end() ? 0 : it->second;
    if (pool_.ref_count(id) != expected) {
      throw Error(ErrorKind::kInternal, "KV invariant: block " + std::to_string(id) +
                                            " has ref count " +
                                            std::to_string(pool_.ref_count(id)) + " but " +
                                            std::to_string(expected) + " owning tables");
    }
    if (expected > 0) ++used;
  }
  if (used != pool_.num_used()) {
    throw Error(ErrorKind::kInternal, "KV invariant: used count disagrees with owners");
  }
}

}  // namespace tessera
