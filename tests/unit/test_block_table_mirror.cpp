// BlockTableMirror: the device-side block tables must always equal what the layouts said,
// whatever the order of growth, new sequences, slot reuse and resizes. An independent model
// applies each step's updates to a plain array and reads every sequence's row back.
#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <vector>

#include "kernels/block_table_mirror.h"

using namespace tessera;

namespace {

struct Step {
  std::vector<int64_t> keys;
  std::vector<int32_t> start{0};
  std::vector<int32_t> tables;
  void add(int64_t key, const std::vector<int32_t>& table) {
    keys.push_back(key);
    tables.insert(tables.end(), table.begin(), table.end());
    start.push_back(static_cast<int32_t>(tables.size()));
  }
};

}  // namespace

TEST_CASE("block table mirror: decode growth sends one entry per new block", "[block_tables]") {
  BlockTableMirror m;
  std::vector<int32_t> device;
  Step a;
  a.add(7, {3, 4});
  a.add(9, {5});
  auto r = m.apply(a.keys, a.start, a.tables);
  CHECK(r.resized);
  CHECK(r.updates.size() == 3);
  Step b;  // same tables: nothing to send
  b.add(7, {3, 4});
  b.add(9, {5});
  r = m.apply(b.keys, b.start, b.tables);
  CHECK_FALSE(r.resized);
  CHECK(r.updates.empty());
  Step c;  // one sequence grows by a block
  c.add(9, {5, 8});
  c.add(7, {3, 4});
  r = m.apply(c.keys, c.start, c.tables);
  REQUIRE(r.updates.size() == 1);
  CHECK(r.updates[0].block == 8);
  CHECK(r.updates[0].index == r.row_start[0] + 1);
}

TEST_CASE("block table mirror: random steps always read back the layouts' tables",
          "[block_tables]") {
  std::mt19937 rng(42);
  BlockTableMirror m;
  std::vector<int32_t> device;  // what the backend holds after applying every update
  std::map<int64_t, std::vector<int32_t>> live;
  int64_t next_key = 1;
  int resizes = 0;
  for (int step = 0; step < 3000; ++step) {
    // Sequences arrive, grow, get a copy-on-write block, shrink (rejected drafts), leave.
    if (live.size() < 40 && rng() % 3 == 0) live[next_key++] = {};
    for (auto it = live.begin(); it != live.end();) {
      const unsigned op = rng() % 20;
      std::vector<int32_t>& t = it->second;
      if (op == 0 && !t.empty()) t.back() = static_cast<int32_t>(rng() % 1000);
      if (op == 1 && t.size() > 1) t.pop_back();
      if (op < 8 || t.empty()) t.push_back(static_cast<int32_t>(rng() % 1000));
      if (op == 19 || t.size() > 300) {
        it = live.erase(it);
      } else {
        ++it;
      }
    }
    Step s;
    std::vector<const std::vector<int32_t>*> rows;
    for (auto& [key, t] : live) {
      if (rng() % 4 == 0) continue;  // not in this step
      s.add(key, t);
      rows.push_back(&t);
    }
    if (rng() % 5 == 0) s.add(-1, {0});  // padding sequences share a key
    if (rng() % 5 == 0) s.add(-1, {0});
    if (s.keys.empty()) continue;
    const auto r = m.apply(s.keys, s.start, s.tables);
    if (r.resized) {
      ++resizes;
      device.assign(static_cast<size_t>(m.size()), -7);  // fresh memory: garbage
    }
    for (const auto& u : r.updates) device.at(static_cast<size_t>(u.index)) = u.block;
    for (size_t i = 0; i < s.keys.size(); ++i) {
      const int32_t n = s.start[i + 1] - s.start[i];
      REQUIRE(r.row_start[i] + n <= m.size());
      for (int32_t j = 0; j < n; ++j)
        REQUIRE(device[static_cast<size_t>(r.row_start[i] + j)] == s.tables[s.start[i] + j]);
    }
    // Distinct live sequences of one step never share a row.
    std::map<int32_t, int64_t> owner;
    for (size_t i = 0; i < s.keys.size(); ++i) {
      auto [it, fresh] = owner.emplace(r.row_start[i], s.keys[i]);
      REQUIRE((fresh || it->second == s.keys[i]));
    }
  }
  CHECK(resizes >= 2);  // started small, grew with longer tables
}
