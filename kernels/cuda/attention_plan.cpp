#include "kernels/cuda/attention_plan.h"

#include <algorithm>

namespace tessera::cuda {
namespace {

constexpr int kMaxDecodeSplits = 64;
// Cached tokens per decode split, at least: a shorter split costs more in its merge (one more
// launch per layer, and partials to reduce) than its parallel reads save. A 135M model's
// decode at a few hundred tokens of context was split 64 ways, 60 of them empty.
constexpr int kMinDecodeChunk = 256;

int next_pow2(int x) {
  int p = 1;
  while (p < x) p *= 2;
  return p;
}
constexpr int kMinPrefillChunk = 512;  // cached tokens per prefill split, at least

int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

// Cached range a run of query tokens [t0, t1] (inclusive, in-query indices) can see.
void kv_range(int ctx, int qlen, int t0, int t1, int window, int* start, int* end) {
  const int first_pos = ctx - qlen + t0;
  const int last_pos = ctx - qlen + t1;
  *end = std::min(ctx, last_pos + 1);
  *start = window > 0 ? std::max(0, first_pos - window + 1) : 0;
  *start = (*start / kKvTile) * kKvTile;  // tile-aligned loads; the kernel masks the rest
}

// Appends `splits` items covering [start, end) for one row tile; chunks are tile multiples
// (`chunk` positions each when given, else an even share).
void add_split_items(AttentionModePlan& plan, int seq, int row_start, int start, int end,
                     int splits, int chunk = 0) {
  if (splits <= 1) {
    plan.items.push_back({seq, row_start, start, end, -1});
    return;
  }
  if (chunk <= 0)
    chunk = std::max(kKvTile, ceil_div(ceil_div(end - start, splits), kKvTile) * kKvTile);
  AttentionMerge merge{seq, row_start, plan.num_partials, splits};
  for (int s = 0; s < splits; ++s) {
    const int a = std::min(end, start + s * chunk);
    const int b = std::min(end, a + chunk);
    plan.items.push_back({seq, row_start, a, b, plan.num_partials++});
  }
  plan.merges.push_back(merge);
}

// Deterministic tiles: row tiles of kPrefillRows from the query's first row, each split at
// absolute multiples of `chunk` from chunk 0 (chunks before a sliding window's start are
// empty items), so partial s of a row always covers the same positions whatever the tile.
void add_fixed_split_items(AttentionModePlan& plan, int seq, int row_start, int start, int end,
                           int chunk) {
  const int splits = std::max(1, ceil_div(end, chunk));
  AttentionMerge merge{seq, row_start, plan.num_partials, splits};
  for (int c = 0; c < splits; ++c) {
    const int a = std::clamp(c * chunk, start, end);
    const int b = std::clamp((c + 1) * chunk, start, end);
    plan.items.push_back({seq, row_start, a, std::max(a, b), plan.num_partials++});
  }
  plan.merges.push_back(merge);
}

AttentionPlan plan_deterministic(const StepLayout& layout, const AttentionPlanOptions& o) {
  AttentionPlan plan;
  const int g = std::max(1, o.group_size);
  for (int s = 0; s < layout.num_seqs(); ++s) {
    const int qlen = layout.query_start[s + 1] - layout.query_start[s];
    const int ctx = layout.context_len[s];
    for (int r = 0; r < qlen * g; r += kPrefillRows) {
      const int t0 = r / g, t1 = std::min(qlen - 1, (r + kPrefillRows - 1) / g);
      int start = 0, end = 0;
      kv_range(ctx, qlen, t0, t1, o.sliding_window, &start, &end);
      add_fixed_split_items(plan.prefill, s, r, start, end, o.fixed_kv_chunk);
    }
  }
  return plan;
}

}  // namespace

int deterministic_kv_chunk(int max_seq_len) {
  const int need = ceil_div(std::max(1, max_seq_len), kMaxDeterministicSplits);
  return std::max(kMinDeterministicChunk, ceil_div(need, kKvTile) * kKvTile);
}

// Splits fill whole waves of resident CTAs: a partial extra wave costs nearly a full CTA
// time (H200, 8 KV heads, 32k context: batch 4 with 288 CTAs on 264 slots ran at 2.3 TB/s,
// with 512 at 3.7 TB/s). One wave when it already splits each sequence 16+ ways (batch 1:
// 33 splits ran at 2.9 TB/s, 64 at 2.4, the merge growing), else up to two waves.
int decode_split_count(int num_decode_seqs, const AttentionPlanOptions& o) {
  if (num_decode_seqs <= 0) return 1;
  const int slots = o.num_sms * o.ctas_per_sm;
  const int ctas = num_decode_seqs * std::max(1, o.num_kv_heads);
  const int one_wave = slots / ctas;
  return std::clamp(one_wave >= 16 ? one_wave : 2 * slots / ctas, 1, kMaxDecodeSplits);
}

AttentionPlan plan_attention(const StepLayout& layout, const AttentionPlanOptions& o) {
  if (o.fixed_kv_chunk > 0) return plan_deterministic(layout, o);
  AttentionPlan plan;
  const int g = std::max(1, o.group_size);
  int num_decode = 0, longest = 0;
  for (int s = 0; s < layout.num_seqs(); ++s) {
    const int qlen = layout.query_start[s + 1] - layout.query_start[s];
    if (qlen > 0 && qlen * g <= kDecodeRows) {
      ++num_decode;
      int start = 0, end = 0;
      kv_range(layout.context_len[s], qlen, 0, qlen - 1, o.sliding_window, &start, &end);
      longest = std::max(longest, end - start);
    }
  }
  // Splits of kMinDecodeChunk positions, doubled until the longest range fits in the count
  // that fills the GPU. Every decode sequence gets the same count (a CUDA graph replays a
  // fixed grid), rounded up to a power of two (few distinct graphs; the extra items are
  // empty). The cuts sit at multiples of the chunk from the range's start, so a row's
  // partials are the same whether its step verifies drafts (a longer range) or not.
  const int max_splits = decode_split_count(num_decode, o);
  int decode_chunk = kMinDecodeChunk;
  while (ceil_div(std::max(1, longest), decode_chunk) > max_splits) decode_chunk *= 2;
  const int decode_splits =
      std::min(max_splits, next_pow2(ceil_div(std::max(1, longest), decode_chunk)));

  struct Tile {
    int seq, row_start, start, end;
  };
  std::vector<Tile> prefill_tiles;
  for (int s = 0; s < layout.num_seqs(); ++s) {
    const int qlen = layout.query_start[s + 1] - layout.query_start[s];
    const int ctx = layout.context_len[s];
    if (qlen <= 0) continue;
    const int rows = qlen * g;
    if (rows <= kDecodeRows) {
      int start = 0, end = 0;
      kv_range(ctx, qlen, 0, qlen - 1, o.sliding_window, &start, &end);
      add_split_items(plan.decode, s, 0, start, end, decode_splits, decode_chunk);
      continue;
    }
    for (int r = 0; r < rows; r += kPrefillRows) {
      const int t0 = r / g, t1 = std::min(qlen - 1, (r + kPrefillRows - 1) / g);
      int start = 0, end = 0;
      kv_range(ctx, qlen, t0, t1, o.sliding_window, &start, &end);
      prefill_tiles.push_back({s, r, start, end});
    }
  }
  // Longest first: the causal triangle makes late row tiles the heaviest; starting them first
  // keeps the last wave short.
  std::stable_sort(prefill_tiles.begin(), prefill_tiles.end(),
                   [](const Tile& x, const Tile& y) { return x.end - x.start > y.end - y.start; });
  // Chunked prefill of a few tokens over a long cached context leaves the GPU idle unless
  // the cached range is split too.
  const int target = o.num_sms * o.ctas_per_sm;
  const int ctas = static_cast<int>(prefill_tiles.size()) * std::max(1, o.num_kv_heads);
  const int want = ctas > 0 ? ceil_div(target, ctas) : 1;
  for (const Tile& t : prefill_tiles) {
    const int splits =
        std::clamp(std::min(want, (t.end - t.start) / kMinPrefillChunk), 1, kMaxDecodeSplits);
    add_split_items(plan.prefill, t.seq, t.row_start, t.start, t.end, splits);
  }
  return plan;
}

}  // namespace tessera::cuda
