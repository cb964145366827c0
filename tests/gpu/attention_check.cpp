// GPU checks of paged attention against an fp64 reference: decode (split-K), prefill,
// chunked prefill over cached context, GQA ratios 1/4/8, head dims 64/128, bf16 and fp16
// caches, contexts 1..32k, shuffled block tables, sliding window, and a CUDA-graph replay
// of a decode step after the contexts have grown.
#include <cmath>

#include "kernels/cuda/cuda_ops.h"
#include "tests/gpu/check_common.h"

using namespace tessera;
using namespace tessera::gpu_check;

namespace {

constexpr int kBlock = 16;

struct Case {
  std::string name;
  int kv_heads, group, head_dim;
  DType kv_dtype;
  std::vector<int> qlens, contexts;
  int window = 0;
  bool tell_num_heads = true;  // KvCacheShape::num_heads known up front (plan in begin_step)
};

struct Cache {
  std::vector<double> k, v;  // host copies of the whole pools (values as stored)
};

Cache fill_cache(Ops& ops, Rng& rng, int layer, int num_blocks, int kv_heads, int head_dim,
                 DType dt) {
  auto& cops = dynamic_cast<cuda::CudaKvCache&>(*current_kv());
  const size_t n = size_t(num_blocks) * kBlock * kv_heads * head_dim;
  Cache c;
  for (int which = 0; which < 2; ++which) {
    std::vector<uint16_t> bits(n);
    std::vector<double>& vals = which == 0 ? c.k : c.v;
    vals.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const float x = rng.normal();
      bits[i] = dt == DType::kF16 ? f32_to_fp16(x) : f32_to_bf16(x);
      vals[i] = dt == DType::kF16 ? fp16_to_f32(bits[i]) : bf16_to_f32(bits[i]);
    }
    ops.to_device(which == 0 ? cops.k_pool(layer) : cops.v_pool(layer), bits.data(), n * 2);
  }
  return c;
}

std::vector<double> reference(const StepLayout& l, const Cache& c, const std::vector<double>& q,
                              int heads, int kv_heads, int head_dim, double scale, int window) {
  std::vector<double> out(q.size(), 0.0);
  const int group = heads / kv_heads;
  std::vector<double> s;
  for (int seq = 0; seq < l.num_seqs(); ++seq) {
    const int q0 = l.query_start[seq], qlen = l.query_start[seq + 1] - q0;
    const int ctx = l.context_len[seq];
    const int32_t* table = &l.block_tables[l.block_table_start[seq]];
    for (int t = 0; t < qlen; ++t) {
      const int pos = ctx - qlen + t;
      const int first = window > 0 ? std::max(0, pos - window + 1) : 0;
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / group;
        const double* qv = &q[(size_t(q0 + t) * heads + h) * head_dim];
        s.assign(pos + 1 - first, 0.0);
        double mx = -INFINITY;
        for (int j = first; j <= pos; ++j) {
          const size_t slot = size_t(table[j / kBlock]) * kBlock + j % kBlock;
          const double* kv = &c.k[(slot * kv_heads + kvh) * head_dim];
          double dot = 0;
          for (int d = 0; d < head_dim; ++d) dot += qv[d] * kv[d];
          s[j - first] = dot * scale;
          mx = std::max(mx, s[j - first]);
        }
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - mx));
        double* o = &out[(size_t(q0 + t) * heads + h) * head_dim];
        for (int j = first; j <= pos; ++j) {
          const size_t slot = size_t(table[j / kBlock]) * kBlock + j % kBlock;
          const double* vv = &c.v[(slot * kv_heads + kvh) * head_dim];
          const double p = s[j - first] / sum;
          for (int d = 0; d < head_dim; ++d) o[d] += p * vv[d];
        }
      }
    }
  }
  return out;
}

int blocks_needed(const std::vector<int>& contexts) {
  int n = 2;
  for (int c : contexts) n += (c + kBlock - 1) / kBlock;
  return n;
}

void run_case(Ops& ops, Rng& rng, Report& rep, const Case& cs) {
  const int heads = cs.kv_heads * cs.group;
  const int num_blocks = blocks_needed(cs.contexts);
  KvCacheShape kv;
  kv.num_layers = 2;
  kv.num_blocks = num_blocks;
  kv.block_size = kBlock;
  kv.num_kv_heads = cs.kv_heads;
  kv.head_dim = cs.head_dim;
  kv.dtype = kv_dtype_of(cs.kv_dtype);
  kv.num_heads = cs.tell_num_heads ? heads : 0;
  make_kv(ops, kv);
  const int layer = 1;
  Cache cache = fill_cache(ops, rng, layer, num_blocks, cs.kv_heads, cs.head_dim, cs.kv_dtype);
  StepLayout l = build_layout(rng, cs.qlens, cs.contexts, kBlock, num_blocks);
  ops.begin_step(l, *current_kv());
  // q scaled up so the softmax is peaked (a flat one hides indexing errors).
  Bf16Data q = random_bf16(rng, size_t(l.num_tokens()) * heads * cs.head_dim, 2.0f);
  DevBuf dq(ops, q.bits.size() * 2), out(ops, q.bits.size() * 2);
  dq.upload(q.bits);
  out.poison();
  const double scale = 1.0 / std::sqrt(double(cs.head_dim));
  AttentionParams attn{heads, cs.kv_heads, cs.head_dim, static_cast<float>(scale), cs.window};
  ops.paged_attention(*current_kv(), dq.get(), layer, attn, out.get());
  std::vector<double> got = bf16_to_doubles(out.download<uint16_t>(q.bits.size()));
  std::vector<double> ref =
      reference(l, cache, q.values, heads, cs.kv_heads, cs.head_dim, scale, cs.window);
  ErrorStats s = compare(got, ref, cs.head_dim);
  const auto& plan = dynamic_cast<cuda::CudaOps&>(ops).attention_plan();
  char detail[256];
  std::snprintf(detail, sizeof detail,
                "Hkv=%d G=%d D=%d %s seqs=%d tokens=%d items(dec/pre)=%zu/%zu merges=%zu/%zu ",
                cs.kv_heads, cs.group, cs.head_dim, dtype_name(cs.kv_dtype), l.num_seqs(),
                l.num_tokens(), plan.decode.items.size(), plan.prefill.items.size(),
                plan.decode.merges.size(), plan.prefill.merges.size());
  rep.check(bf16_ok(s), "attention/" + cs.name, detail + describe(s));
}

// Captures a decode step, grows every context by one token, replays, compares.
void check_graph_replay(Ops& ops, Rng& rng, Report& rep) {
  const int kv_heads = 8, group = 4, head_dim = 128, heads = kv_heads * group;
  std::vector<int> contexts = {100, 2000, 31, 700};
  std::vector<int> grown = contexts;
  for (int& c : grown) c += 1;
  const int num_blocks = blocks_needed(grown) + 8;
  KvCacheShape kv{2, num_blocks, kBlock, kv_heads, head_dim, KvDtype::kBF16, heads};
  make_kv(ops, kv);
  Cache cache = fill_cache(ops, rng, 0, num_blocks, kv_heads, head_dim, DType::kBF16);
  const std::vector<int> ones(contexts.size(), 1);
  Rng layout_rng(7);
  StepLayout first = build_layout(layout_rng, ones, contexts, kBlock, num_blocks);
  Rng layout_rng2(7);  // same block tables; the last block may gain one entry
  StepLayout second = build_layout(layout_rng2, ones, grown, kBlock, num_blocks);
  Bf16Data q1 = random_bf16(rng, size_t(ones.size()) * heads * head_dim, 2.0f);
  Bf16Data q2 = random_bf16(rng, q1.bits.size(), 2.0f);
  DevBuf dq(ops, q1.bits.size() * 2), out(ops, q1.bits.size() * 2);
  const float scale = 1.0f / std::sqrt(float(head_dim));
  AttentionParams attn{heads, kv_heads, head_dim, scale, 0};
  ops.begin_step(first, *current_kv());
  // One eager RoPE step (as a prefill would do) creates the RoPE table before any capture;
  // it writes layer 1, so layer 0's cache stays as the reference has it.
  {
    RopeConfig rope;
    Bf16Data k = random_bf16(rng, size_t(ones.size()) * kv_heads * head_dim);
    DevBuf dqr(ops, q1.bits.size() * 2), dk(ops, k.bits.size() * 2), dv(ops, k.bits.size() * 2);
    dqr.upload(q1.bits);
    dk.upload(k.bits);
    dv.upload(k.bits);
    ops.rope_store_kv(*current_kv(), dqr.get(), dk.get(), dv.get(), 1, attn, rope);
  }
  dq.upload(q1.bits);
  const bool began = ops.graph_capture_begin(42);
  ops.paged_attention(*current_kv(), dq.get(), 0, attn, out.get());
  if (began) ops.graph_capture_end();
  ops.synchronize();
  ops.begin_step(second, *current_kv());
  dq.upload(q2.bits);
  out.poison();
  const bool replayed = ops.graph_replay(42);
  std::vector<double> got = bf16_to_doubles(out.download<uint16_t>(q2.bits.size()));
  ErrorStats s = compare(
      got, reference(second, cache, q2.values, heads, kv_heads, head_dim, scale, 0), head_dim);
  rep.check(began && replayed && bf16_ok(s), "attention/graph_replay_after_growth",
            std::string(began ? "captured" : "not captured") +
                (replayed ? " replayed " : " no replay ") + describe(s));
}

}  // namespace

int main() {
  Report rep;
  try {
    auto ops = make_cuda_ops(0);
    KvCacheGuard kv_guard;
    Rng rng(424242);
    const DType bf = DType::kBF16, f16 = DType::kF16;
    std::vector<Case> cases = {
        {"decode_mixed", 8, 4, 128, bf, {1, 1, 1, 1, 1}, {1, 17, 100, 1000, 4097}},
        {"decode_32k_gqa8", 8, 8, 128, bf, {1}, {32768}},
        {"decode_16k_and_tiny", 8, 8, 128, bf, {1, 1}, {16384, 3}},
        {"mha_d64_mixed", 4, 1, 64, bf, {1, 1, 77}, {5, 700, 77}},
        {"prefill_300", 2, 4, 128, bf, {300, 1}, {300, 50}},
        {"chunked_prefill", 2, 4, 128, bf, {37, 64}, {2000, 129}},
        {"chunked_prefill_split", 8, 4, 128, bf, {20}, {20000}},
        {"fp16_mixed", 8, 4, 128, f16, {1, 45, 1}, {3000, 45, 9}},
        {"fp16_mqa_d64", 1, 8, 64, f16, {1, 130}, {999, 1000}},
        {"gqa8_d64_prefill", 2, 8, 64, bf, {33, 1}, {33, 5000}},
        {"sliding_window", 2, 4, 64, bf, {150, 1}, {400, 1000}, 100},
        {"multi_token_decode", 4, 8, 128, bf, {2, 2, 1}, {500, 3, 64}},
        {"plan_learned_late", 8, 4, 128, bf, {1, 19}, {333, 19}, 0, false},
    };
    // A large decode batch with random contexts.
    Case batch{"decode_batch64", 8, 4, 128, bf, {}, {}};
    for (int i = 0; i < 64; ++i) {
      batch.qlens.push_back(1);
      batch.contexts.push_back(rng.uniform_int(1, 4096));
    }
    cases.push_back(batch);
    Case odd{"odd_prefills", 4, 4, 64, bf, {}, {}};
    for (int i = 0; i < 9; ++i) {
      const int q = rng.uniform_int(1, 97);
      odd.qlens.push_back(q);
      odd.contexts.push_back(q + rng.uniform_int(0, 300));
    }
    cases.push_back(odd);
    for (const Case& c : cases) run_case(*ops, rng, rep, c);
    check_graph_replay(*ops, rng, rep);
  } catch (const std::exception& e) {
    rep.check(false, "exception", e.what());
  }
  return rep.finish("attention_check");
}
