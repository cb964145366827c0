// BlockPool and KvCacheManager: capacity, ref counts, free-list eviction order, RAII tables,
// prefix matching, copy-on-write forks, invariant checks.
#include <catch2/catch.hpp>

#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "common/error.h"
#include "kvcache/block_pool.h"
#include "kvcache/kv_cache_manager.h"

using namespace tessera;

namespace {

std::vector<int32_t> iota_tokens(int n, int32_t first = 100) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

KvCacheConfig small_config(int usable_blocks, int block_size = 4, bool prefix = true) {
  KvCacheConfig c;
  c.block_size = block_size;
  c.num_blocks = usable_blocks + 1;
  c.enable_prefix_caching = prefix;
  return c;
}

}  // namespace

TEST_CASE("capacity comes from the byte budget", "[kvcache]") {
  // 1 MiB / (1024 bytes/token * 16 tokens) = 64 blocks, block 0 reserved.
  KvCacheConfig c = KvCacheConfig::from_budget(1 << 20, 1024, 16);
  CHECK(c.num_blocks == 64);
  CHECK(c.capacity_tokens() == 63 * 16);
  KvCacheManager kv(c);
  CHECK(kv.num_total_blocks() == 63);
  CHECK(kv.num_free_blocks() == 63);
  // A remainder that does not fill a whole block is not counted.
  CHECK(KvCacheConfig::from_budget((1 << 20) + 16383, 1024, 16).num_blocks == 64);

  try {
    KvCacheConfig::from_budget(20000, 1024, 16);  // one block fits: nothing usable
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kResourceExhausted);
    CHECK_THAT(e.what(), Catch::Contains("20000") && Catch::Contains("16384"));
  }
  CHECK_THROWS_AS(KvCacheConfig::from_budget(1 << 20, 0, 16), Error);
  KvCacheConfig bad;
  bad.num_blocks = 1;
  CHECK_THROWS_AS(KvCacheManager(bad), Error);
}

TEST_CASE("pool hands out every usable block once, never block 0", "[kvcache]") {
  BlockPool pool(9, 4);
  std::set<BlockId> got;
  for (int i = 0; i < 8; ++i) {
    auto id = pool.allocate();
    REQUIRE(id);
    CHECK(*id != kNullBlock);
    CHECK(got.insert(*id).second);
    pool.check_invariants();
  }
  CHECK_FALSE(pool.allocate());
  CHECK(pool.num_used() == 8);
  CHECK(pool.num_free() == 0);
  for (BlockId id : got) pool.release(id);
  CHECK(pool.num_used() == 0);
  pool.check_invariants();
  // Double free and bad ids are bugs reported as kInternal, never silent corruption.
  try {
    pool.release(*got.begin());
    FAIL("double free not detected");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kInternal);
    CHECK_THAT(e.what(), Catch::Contains("double free"));
  }
  CHECK_THROWS_AS(pool.release(kNullBlock), Error);
  CHECK_THROWS_AS(pool.retain(9), Error);
  pool.check_invariants();
}

TEST_CASE("free list evicts uncached blocks first, then cached ones LRU", "[kvcache]") {
  BlockPool pool(5, 2);  // usable 1..4
  std::vector<BlockId> b;
  for (int i = 0; i < 4; ++i) b.push_back(*pool.allocate());
  const std::vector<int32_t> t1{1, 2}, t2{3, 4}, t3{5, 6};
  REQUIRE(pool.add_to_cache(b[0], 11, kRootBlockHash, t1));
  REQUIRE(pool.add_to_cache(b[1], 22, kRootBlockHash, t2));
  REQUIRE(pool.add_to_cache(b[2], 33, kRootBlockHash, t3));
  CHECK_FALSE(pool.add_to_cache(b[3], 33, kRootBlockHash, t3));  // key taken: first wins
  CHECK(pool.num_cached() == 3);
  // Release order: b1 (oldest cached), b3 (uncached), b0, b2.
  pool.release(b[1]);
  pool.release(b[3]);
  pool.release(b[0]);
  pool.release(b[2]);
  pool.check_invariants();
  CHECK(pool.num_free() == 4);
  CHECK(pool.num_cached() == 3);  // unreferenced cached blocks keep their keys
  // Revive b0 from the cache: it leaves the free list.
  auto hit = pool.find_cached(11, kRootBlockHash, t1);
  REQUIRE(hit);
  CHECK(*hit == b[0]);
  pool.retain(*hit);
  CHECK(pool.num_free() == 3);
  pool.check_invariants();
  // Allocation order: the uncached block, then cached ones least recently released first.
  CHECK(*pool.allocate() == b[3]);
  CHECK(pool.num_evictions() == 0);
  CHECK(*pool.allocate() == b[1]);
  CHECK(pool.num_evictions() == 1);
  CHECK_FALSE(pool.find_cached(22, kRootBlockHash, t2));  // evicted
  CHECK(*pool.allocate() == b[2]);
  CHECK_FALSE(pool.allocate());
  pool.check_invariants();
}

TEST_CASE("cache lookups verify parent key and tokens", "[kvcache]") {
  BlockPool pool(3, 2);
  BlockId b = *pool.allocate();
  const std::vector<int32_t> t{7, 8};
  REQUIRE(pool.add_to_cache(b, 42, 5, t));
  CHECK(pool.find_cached(42, 5, t));
  CHECK_FALSE(pool.find_cached(42, 6, t));                           // other parent
  CHECK_FALSE(pool.find_cached(42, 5, std::vector<int32_t>{7, 9}));  // other tokens
  CHECK_FALSE(pool.find_cached(43, 5, t));
  CHECK_THROWS_AS(pool.add_to_cache(b, 44, 5, std::vector<int32_t>{1}), Error);  // not full
}

TEST_CASE("chained block keys depend on the whole prefix", "[kvcache]") {
  const std::vector<int32_t> a{1, 2, 3, 4}, b{1, 2, 3, 5};
  CHECK(hash_block_tokens(kRootBlockHash, a) == hash_block_tokens(kRootBlockHash, a));
  CHECK(hash_block_tokens(kRootBlockHash, a) != hash_block_tokens(kRootBlockHash, b));
  const BlockHash pa = hash_block_tokens(kRootBlockHash, a);
  const BlockHash pb = hash_block_tokens(kRootBlockHash, b);
  CHECK(hash_block_tokens(pa, a) != hash_block_tokens(pb, a));
  CHECK(hash_block_tokens(kRootBlockHash, std::vector<int32_t>{-1}) !=
        hash_block_tokens(kRootBlockHash, std::vector<int32_t>{0}));
}

TEST_CASE("RAII tables return their blocks; moves keep ownership exact", "[kvcache]") {
  KvCacheManager kv(small_config(8));
  std::vector<BlockCopy> copies;
  {
    SequenceKv a = kv.create();
    REQUIRE(kv.allocate_slots(a, 0, 10, copies));  // 10 tokens -> 3 blocks of 4
    CHECK(a.num_blocks() == 3);
    CHECK(kv.stats().num_used == 3);
    SequenceKv b = std::move(a);
    CHECK(a.num_blocks() == 0);  // NOLINT(bugprone-use-after-move): moved-from is empty
    CHECK_FALSE(a.attached());
    CHECK(b.num_blocks() == 3);
    kv.check_invariants();
    // Grow across a boundary: [10, 13) needs a 4th block.
    REQUIRE(kv.allocate_slots(b, 10, 13, copies));
    CHECK(b.num_blocks() == 4);
    // All or nothing: 5 more blocks do not fit in the 4 left.
    CHECK_FALSE(kv.allocate_slots(b, 13, 13 + 20, copies));
    CHECK(b.num_blocks() == 4);
    CHECK(kv.stats().num_used == 4);
    std::vector<SequenceKv> many;
    for (int i = 0; i < 4; ++i) {
      many.push_back(kv.create());
      REQUIRE(kv.allocate_slots(many.back(), 0, 4, copies));
      kv.check_invariants();  // vector growth moved the handles
    }
    CHECK(kv.num_free_blocks() == 0);
    b.reset();
    CHECK(kv.stats().num_used == 4);
    kv.check_invariants();
  }
  CHECK(kv.stats().num_used == 0);
  CHECK(kv.stats().num_free == 8);
  CHECK(copies.empty());
  kv.check_invariants();
}

TEST_CASE("prefix match finds computed full blocks only, leaving a token to compute", "[kvcache]") {
  KvCacheManager kv(small_config(16));
  const auto tokens = iota_tokens(14);  // 3 full blocks + 2
  SequenceKv a = kv.create();
  REQUIRE(kv.allocate_with_prefix(a, kv.match_prefix(tokens, 13), 14));
  // Nothing is cached before the KV is written.
  CHECK(kv.match_prefix(tokens, 13).num_tokens == 0);
  kv.cache_computed_blocks(a, tokens, 9);  // blocks 0 and 1 full and computed
  CHECK(kv.stats().num_cached == 2);
  CHECK(kv.match_prefix(tokens, 13).num_tokens == 8);
  kv.cache_computed_blocks(a, tokens, 14);
  CHECK(kv.stats().num_cached == 3);
  PrefixMatch m = kv.match_prefix(tokens, 13);
  CHECK(m.num_tokens == 12);
  CHECK(m.num_evictable == 0);
  CHECK(m.blocks == std::vector<BlockId>(a.blocks().begin(), a.blocks().begin() + 3));
  // A 12-token prompt may reuse only 8: its last block must be computed for logits.
  CHECK(kv.match_prefix(std::span(tokens).first(12), 11).num_tokens == 8);
  // Divergence inside block 1 stops the match after block 0.
  auto other = tokens;
  other[5] = 9999;
  CHECK(kv.match_prefix(other, 13).num_tokens == 4);
  // The chain: equal block 1 after a different block 0 does not match.
  auto shifted = tokens;
  shifted[0] = 9999;
  CHECK(kv.match_prefix(shifted, 13).num_tokens == 0);

  // Shared use: a second table adopts the three blocks (ref count 2).
  SequenceKv b = kv.create();
  REQUIRE(kv.allocate_with_prefix(b, m, 14));
  CHECK(b.num_blocks() == 4);
  for (int i = 0; i < 3; ++i) {
    CHECK(b.blocks()[i] == a.blocks()[i]);
    CHECK(kv.pool().ref_count(a.blocks()[i]) == 2);
  }
  CHECK(b.blocks()[3] != a.blocks()[3]);
  kv.check_invariants();
  a.reset();
  b.reset();
  // Unreferenced but still cached: evictable hits cost a free block each.
  m = kv.match_prefix(tokens, 13);
  CHECK(m.num_tokens == 12);
  CHECK(m.num_evictable == 3);
  CHECK(kv.stats().num_used == 0);
  kv.check_invariants();
}

TEST_CASE("unreferenced cached blocks are evicted when the pool needs space", "[kvcache]") {
  KvCacheManager kv(small_config(4));
  const auto tokens = iota_tokens(9);
  {
    SequenceKv a = kv.create();
    REQUIRE(kv.allocate_with_prefix(a, {}, 9));
    kv.cache_computed_blocks(a, tokens, 9);
  }
  CHECK(kv.match_prefix(tokens, 8).num_tokens == 8);
  // Two uncached free blocks go first; the cached pair survives that.
  SequenceKv b = kv.create();
  std::vector<BlockCopy> copies;
  REQUIRE(kv.allocate_slots(b, 0, 4, copies));
  CHECK(kv.match_prefix(tokens, 8).num_tokens == 8);
  // One more uncached block, then one eviction: the prompt's second block goes first,
  // because a table releases its tail first and leading blocks are shared more often.
  REQUIRE(kv.allocate_slots(b, 4, 12, copies));
  CHECK(kv.match_prefix(tokens, 8).num_tokens == 4);
  CHECK(kv.stats().num_evictions == 1);
  REQUIRE(kv.allocate_slots(b, 12, 16, copies));
  CHECK(kv.match_prefix(tokens, 8).num_tokens == 0);
  CHECK(kv.stats().num_evictions == 2);
  CHECK(kv.stats().num_cached == 0);
  kv.check_invariants();
}

TEST_CASE("revived cache hits cannot be evicted by the same allocation", "[kvcache]") {
  KvCacheManager kv(small_config(3));
  const auto tokens = iota_tokens(9);
  {
    SequenceKv a = kv.create();
    REQUIRE(kv.allocate_with_prefix(a, {}, 9));
    kv.cache_computed_blocks(a, tokens, 9);
  }
  PrefixMatch m = kv.match_prefix(tokens, 8);
  REQUIRE(m.num_tokens == 8);
  REQUIRE(m.num_evictable == 2);
  SequenceKv b = kv.create();
  CHECK_FALSE(kv.allocate_with_prefix(b, m, 13));  // 2 revived + 2 new > 3
  CHECK(b.num_blocks() == 0);
  REQUIRE(kv.allocate_with_prefix(b, m, 9));  // 2 revived + 1 new
  CHECK(std::vector<BlockId>(b.blocks().begin(), b.blocks().begin() + 2) == m.blocks);
  kv.check_invariants();
}

TEST_CASE("forks share blocks and copy a shared partial block on write", "[kvcache]") {
  KvCacheManager kv(small_config(8));
  std::vector<BlockCopy> copies;
  const auto tokens = iota_tokens(6);
  SequenceKv parent = kv.create();
  REQUIRE(kv.allocate_slots(parent, 0, 6, copies));  // blocks [p0 full, p1 half]
  kv.cache_computed_blocks(parent, tokens, 6);
  SequenceKv child = kv.fork(parent, 6);
  CHECK(child.blocks() == parent.blocks());
  CHECK(kv.pool().ref_count(parent.blocks()[1]) == 2);
  CHECK(kv.stats().num_used == 2);
  kv.check_invariants();

  CHECK(kv.blocks_needed(child, 6, 7) == 1);
  REQUIRE(kv.allocate_slots(child, 6, 7, copies));
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].src == parent.blocks()[1]);
  CHECK(copies[0].dst == child.blocks()[1]);
  CHECK(child.blocks()[0] == parent.blocks()[0]);  // the full block stays shared
  CHECK(child.blocks()[1] != parent.blocks()[1]);
  // Now the parent is the block's only owner: it writes in place, no copy.
  const BlockId src = copies[0].src;
  copies.clear();
  CHECK(kv.num_owners(src) == 1);
  CHECK(kv.blocks_needed(parent, 6, 7) == 0);
  REQUIRE(kv.allocate_slots(parent, 6, 7, copies));
  CHECK(copies.empty());
  kv.check_invariants();
  // The copy source stays pinned until the round ends, so no later allocation of the same
  // round can hand it out as a destination while the copy is pending.
  CHECK(kv.pool().ref_count(src) == 2);
  kv.release_copy_sources();
  CHECK(kv.pool().ref_count(src) == 1);
  kv.check_invariants();

  // A fork at a block boundary needs no copy at all: the next write opens a new block.
  SequenceKv p2 = kv.create();
  REQUIRE(kv.allocate_slots(p2, 0, 8, copies));
  SequenceKv c2 = kv.fork(p2, 8);
  REQUIRE(kv.allocate_slots(c2, 8, 9, copies));
  CHECK(copies.empty());
  CHECK(c2.num_blocks() == 3);
  kv.check_invariants();
  parent.reset();
  child.reset();
  p2.reset();
  c2.reset();
  CHECK(kv.stats().num_used == 0);
  kv.check_invariants();
}

TEST_CASE("prefix caching off: nothing is keyed or matched", "[kvcache]") {
  KvCacheManager kv(small_config(8, 4, false));
  const auto tokens = iota_tokens(12);
  SequenceKv a = kv.create();
  REQUIRE(kv.allocate_with_prefix(a, {}, 12));
  kv.cache_computed_blocks(a, tokens, 12);
  CHECK(kv.stats().num_cached == 0);
  CHECK(kv.match_prefix(tokens, 11).num_tokens == 0);
}

TEST_CASE("random table operations keep every KV invariant", "[kvcache]") {
  std::mt19937 rng(1234);
  KvCacheManager kv(small_config(24, 4));
  struct Live {
    SequenceKv table;
    std::vector<int32_t> tokens;
    int computed = 0;
  };
  std::vector<Live> live;
  std::vector<BlockCopy> copies;
  int allocations_refused = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 3 || live.empty()) {  // new table with a (shared-ish) prompt
      Live l{kv.create(), {}, 0};
      const int len = 1 + static_cast<int>(rng() % 20);
      for (int i = 0; i < len; ++i) l.tokens.push_back(i < 8 ? static_cast<int32_t>(rng() % 2) : i);
      PrefixMatch m = kv.match_prefix(l.tokens, len - 1);
      if (kv.allocate_with_prefix(l.table, m, len)) {
        l.computed = len;
        kv.cache_computed_blocks(l.table, l.tokens, len);
        live.push_back(std::move(l));
      } else {
        ++allocations_refused;
      }
    } else if (op < 6) {  // append one token
      Live& l = live[rng() % live.size()];
      if (kv.allocate_slots(l.table, l.computed, l.computed + 1, copies)) {
        l.tokens.push_back(static_cast<int32_t>(rng() % 50));
        ++l.computed;
        kv.cache_computed_blocks(l.table, l.tokens, l.computed);
      } else {
        ++allocations_refused;
      }
    } else if (op < 7) {  // fork
      Live& l = live[rng() % live.size()];
      Live c{kv.fork(l.table, l.computed), l.tokens, l.computed};
      live.push_back(std::move(c));
    } else {  // drop
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(rng() % live.size()));
    }
    if (iter % 3 == 0) kv.release_copy_sources();  // a scheduling round ends
    kv.check_invariants();
    const KvStats s = kv.stats();
    REQUIRE(s.num_used + s.num_free == s.num_total);
  }
  CHECK(allocations_refused > 0);  // the pool really ran out along the way
  live.clear();
  kv.release_copy_sources();
  CHECK(kv.stats().num_used == 0);
  kv.check_invariants();
}
