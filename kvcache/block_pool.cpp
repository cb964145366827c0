#include "kvcache/block_pool.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace tessera {

BlockPool::BlockPool(int num_blocks, int block_size)
    : num_blocks_(num_blocks), block_size_(block_size) {
  if (num_blocks < 2 || block_size < 1) {
    throw Error(ErrorKind::kInvalidArgument,
                "BlockPool needs num_blocks >= 2 (block 0 is reserved) and block_size >= 1, got " +
                    std::to_string(num_blocks) + " and " + std::to_string(block_size));
  }
  meta_.resize(num_blocks);
  tokens_.assign(static_cast<size_t>(num_blocks) * block_size, 0);
  // Ascending ids on the free list: fresh pools hand out 1, 2, 3, ...
  for (BlockId id = 1; id < num_blocks; ++id) push_tail(id);
}

void BlockPool::check_id(BlockId id, const char* what) const {
  if (id <= kNullBlock || id >= num_blocks_) {
    throw Error(ErrorKind::kInternal, std::string(what) + ": invalid block id " +
                                          std::to_string(id) + " (pool has " +
                                          std::to_string(num_blocks_) + ")");
  }
}

int BlockPool::ref_count(BlockId id) const {
  check_id(id, "ref_count");
  return meta_[id].ref_count;
}

bool BlockPool::is_cached(BlockId id) const {
  check_id(id, "is_cached");
  return meta_[id].cached;
}

void BlockPool::unlink(BlockId id) {
  Meta& m = meta_[id];
  if (m.prev >= 0)
    meta_[m.prev].next = m.next;
  else
    head_ = m.next;
  if (m.next >= 0)
    meta_[m.next].prev = m.prev;
  else
    tail_ = m.prev;
  m.prev = m.next = -1;
  m.on_free_list = false;
  --num_free_;
}

void BlockPool::push_head(BlockId id) {
  Meta& m = meta_[id];
  m.prev = -1;
  m.next = head_;
  if (head_ >= 0)
    meta_[head_].prev = id;
  else
    tail_ = id;
  head_ = id;
  m.on_free_list = true;
  ++num_free_;
}

void BlockPool::push_tail(BlockId id) {
  Meta& m = meta_[id];
  m.next = -1;
  m.prev = tail_;
  if (tail_ >= 0)
    meta_[tail_].next = id;
  else
    head_ = id;
  tail_ = id;
  m.on_free_list = true;
  ++num_free_;
}

void BlockPool::drop_from_cache(BlockId id) {
  Meta& m = meta_[id];
  if (!m.cached) return;
  auto it = cache_.find(m.key);
  if (it != cache_.end() && it->second == id) cache_.erase(it);
  m.cached = false;
}

std::optional<BlockId> BlockPool::allocate() {
  if (head_ < 0) return std::nullopt;
  BlockId id = head_;
  unlink(id);
  if (meta_[id].cached) {
    drop_from_cache(id);
    ++num_evictions_;
  }
  meta_[id].ref_count = 1;
  return id;
}

void BlockPool::retain(BlockId id) {
  check_id(id, "retain");
  Meta& m = meta_[id];
  if (m.ref_count == 0) {
    if (!m.on_free_list)
      throw Error(ErrorKind::kInternal,
                  "retain: unreferenced block " + std::to_string(id) + " is not on the free list");
    unlink(id);
  }
  ++m.ref_count;
}

void BlockPool::release(BlockId id) {
  check_id(id, "release");
  Meta& m = meta_[id];
  if (m.ref_count <= 0) {
    throw Error(ErrorKind::kInternal, "double free of KV block " + std::to_string(id));
  }
  if (--m.ref_count > 0) return;
  if (m.cached)
    push_tail(id);
  else
    push_head(id);
}

std::span<const int32_t> BlockPool::cached_tokens(BlockId id) const {
  return {tokens_.data() + static_cast<size_t>(id) * block_size_, static_cast<size_t>(block_size_)};
}

std::optional<BlockId> BlockPool::find_cached(BlockHash key, BlockHash parent,
                                              std::span<const int32_t> tokens) const {
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  const Meta& m = meta_[it->second];
  if (m.parent != parent || tokens.size() != static_cast<size_t>(block_size_)) return std::nullopt;
  auto stored = cached_tokens(it->second);
  if (!std::equal(stored.begin(), stored.end(), tokens.begin())) return std::nullopt;
  return it->second;
}

bool BlockPool::add_to_cache(BlockId id, BlockHash key, BlockHash parent,
                             std::span<const int32_t> tokens) {
  check_id(id, "add_to_cache");
  Meta& m = meta_[id];
  if (m.ref_count <= 0) {
    throw Error(ErrorKind::kInternal, "add_to_cache: block " + std::to_string(id) + " is free");
  }
  if (tokens.size() != static_cast<size_t>(block_size_)) {
    throw Error(ErrorKind::kInternal, "add_to_cache: only full blocks can be cached");
  }
  if (m.cached || cache_.count(key)) return false;
  m.cached = true;
  m.key = key;
  m.parent = parent;
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + static_cast<size_t>(id) * block_size_);
  cache_.emplace(key, id);
  return true;
}

void BlockPool::check_invariants() const {
  auto fail = [](const std::string& what) {
    throw Error(ErrorKind::kInternal, "BlockPool invariant: " + what);
  };
  const Meta& null_meta = meta_[kNullBlock];
  if (null_meta.ref_count != 0 || null_meta.on_free_list || null_meta.cached) {
    fail("block 0 was touched");
  }
  // Walk the free list: links consistent, no block twice, every member unreferenced.
  std::vector<char> seen(num_blocks_, 0);
  int count = 0;
  BlockId prev = -1;
  for (BlockId id = head_; id >= 0; id = meta_[id].next) {
    if (id == kNullBlock || id >= num_blocks_) fail("free list holds id " + std::to_string(id));
    if (seen[id]) fail("block " + std::to_string(id) + " twice on the free list");
    seen[id] = 1;
    if (meta_[id].prev != prev) fail("broken back link at block " + std::to_string(id));
    if (!meta_[id].on_free_list) fail("block " + std::to_string(id) + " not flagged free");
    if (meta_[id].ref_count != 0) {
      fail("referenced block " + std::to_string(id) + " on the free list");
    }
    prev = id;
    if (++count > num_blocks_) fail("free list cycles");
  }
  if (prev != tail_) fail("tail does not end the free list");
  if (count != num_free_) {
    fail("free count " + std::to_string(num_free_) + " but list holds " + std::to_string(count));
  }
  int num_cached = 0;
  for (BlockId id = 1; id < num_blocks_; ++id) {
    const Meta& m = meta_[id];
    if (m.ref_count < 0) fail("negative ref count on block " + std::to_string(id));
    if (m.ref_count == 0 && !seen[id]) fail("unreferenced block " + std::to_string(id) + " leaked");
    if (m.cached) {
      ++num_cached;
      auto it = cache_.find(m.key);
      if (it == cache_.end() || it->second != id) {
        fail("cached block " + std::to_string(id) + " missing from the index");
      }
    }
  }
  if (num_cached != static_cast<int>(cache_.size())) fail("cache index holds stale entries");
}

}  // namespace tessera
