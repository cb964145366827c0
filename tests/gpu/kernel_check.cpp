// GPU checks of the CUDA backend's non-attention ops against fp64 references: embedding and
// add_rms_norm (f32 residual stream, bf16 x / out), matmul / lm_head (GEMV and cuBLASLt),
// silu_mul, gather_logit_rows, rope_store_kv (both layouts, Llama-3 scaling, writes into the
// paged cache), copy_kv_blocks, and the fused projections matmul_multi (grouped GEMV) and
// gate_up_silu.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numbers>
#include <string>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemv.h"
#include "tests/gpu/check_common.h"

using namespace tessera;
using namespace tessera::gpu_check;

namespace {

constexpr int kBlock = 16;

void init_cache(Ops& ops, int layers, int blocks, int kv_heads, int head_dim, DType dt) {
  KvCacheShape kv;
  kv.num_layers = layers;
  kv.num_blocks = blocks;
  kv.block_size = kBlock;
  kv.num_kv_heads = kv_heads;
  kv.head_dim = head_dim;
  kv.dtype = kv_dtype_of(dt);
  make_kv(ops, kv);
}

// The residual stream is f32: its values must come back exact to f32 rounding (a bf16
// residual would show ~2e-3).
bool f32_ok(const ErrorStats& s, double tol = 1e-6) {
  return s.non_finite == 0 && s.rel < tol && s.worst_row < tol;
}

// Random f32 values (not bf16-representable, so a bf16 round trip would show).
std::vector<float> random_f32(Rng& rng, size_t n, float std = 1.0f) {
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal(std);
  return v;
}

std::vector<double> to_doubles(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

void check_residual_dtype(Ops& ops, Report& rep) {
  rep.check(ops.residual_dtype() == DType::kF32 && ops.activation_dtype() == DType::kBF16 &&
                ops.residual_bytes(576) == 576 * 4,
            "residual_dtype",
            std::string("residual ") + dtype_name(ops.residual_dtype()) + ", activations " +
                dtype_name(ops.activation_dtype()));
}

void check_embedding(Ops& ops, Rng& rng, Report& rep, int vocab, int dim, int tokens) {
  init_cache(ops, 1, 64, 1, 64, DType::kBF16);
  StepLayout l = build_layout(rng, {tokens}, {tokens}, kBlock, 64);
  for (auto& t : l.tokens) t = rng.uniform_int(0, vocab - 1);
  ops.begin_step(l, *current_kv());
  Bf16Data table = random_bf16(rng, size_t(vocab) * dim);
  Weight w = ops.upload(host_tensor(DType::kBF16, vocab, dim, table.bits.data()));
  DevBuf out(ops, ops.residual_bytes(int64_t(tokens) * dim));
  out.poison();
  ops.embedding(w, out.get());
  // f32 rows: widening bf16 is exact, so the rows must equal the table bit for bit.
  std::vector<double> got = to_doubles(out.download<float>(size_t(tokens) * dim));
  std::vector<double> ref(got.size());
  for (int t = 0; t < tokens; ++t) {
    for (int d = 0; d < dim; ++d)
      ref[size_t(t) * dim + d] = table.values[size_t(l.tokens[t]) * dim + d];
  }
  ErrorStats s = compare(got, ref, dim);
  rep.check(s.rel == 0 && s.non_finite == 0, "embedding_f32",
            "vocab=" + std::to_string(vocab) + " dim=" + std::to_string(dim) +
                " T=" + std::to_string(tokens) + " " + describe(s));
  // A token outside the vocabulary must be rejected, not read out of bounds.
  l.tokens[0] = vocab;
  ops.begin_step(l, *current_kv());
  bool threw = false;
  try {
    ops.embedding(w, out.get());
  } catch (const Error& e) {
    threw = e.kind() == ErrorKind::kInvalidArgument;
  }
  rep.check(threw, "embedding_rejects_bad_id", "");
}

// fp64 reference of add_rms_norm: updates ref_res in place, returns the normalized rows.
std::vector<double> ref_add_rms_norm(std::vector<double>& ref_res, const std::vector<double>* x,
                                     const std::vector<float>& gamma, int rows, int dim,
                                     double eps) {
  std::vector<double> out(ref_res.size());
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int d = 0; d < dim; ++d) {
      const size_t i = size_t(r) * dim + d;
      if (x) ref_res[i] += (*x)[i];
      ss += ref_res[i] * ref_res[i];
    }
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int d = 0; d < dim; ++d) {
      const size_t i = size_t(r) * dim + d;
      out[i] = ref_res[i] * inv * gamma[d];
    }
  }
  return out;
}

void check_rms_norm(Ops& ops, Rng& rng, Report& rep, int rows, int dim, bool with_x) {
  init_cache(ops, 1, 64, 1, 64, DType::kBF16);
  ops.begin_step(build_layout(rng, {rows}, {rows}, kBlock, 64), *current_kv());
  const size_t n = size_t(rows) * dim;
  const std::vector<float> res = random_f32(rng, n);
  Bf16Data x = random_bf16(rng, n);
  std::vector<float> gamma(dim);
  for (auto& g : gamma) g = 1.0f + 0.5f * rng.normal();
  Weight gw = ops.upload(host_tensor(DType::kF32, 1, dim, gamma.data()));
  DevBuf dres(ops, ops.residual_bytes(int64_t(n))), dx(ops, n * 2), out(ops, n * 2);
  dres.upload(res);
  dx.upload(x.bits);
  out.poison();
  const float eps = 1e-5f;
  ops.add_rms_norm(dres.get(), with_x ? dx.get() : nullptr, gw, eps, out.get());
  std::vector<double> got = bf16_to_doubles(out.download<uint16_t>(n));
  std::vector<double> got_res = to_doubles(dres.download<float>(n));
  std::vector<double> ref_res = to_doubles(res);
  std::vector<double> ref =
      ref_add_rms_norm(ref_res, with_x ? &x.values : nullptr, gamma, rows, dim, eps);
  ErrorStats s = compare(got, ref, dim), sr = compare(got_res, ref_res, dim);
  rep.check(bf16_ok(s) && f32_ok(sr), std::string("add_rms_norm") + (with_x ? "+residual" : ""),
            "rows=" + std::to_string(rows) + " dim=" + std::to_string(dim) + " out " + describe(s) +
                " residual(f32) " + describe(sr));
}

// Many small adds onto a larger residual, as over a model's layers: each x is far below bf16
// resolution of the residual, so a residual rounded to bf16 per add would lose or distort
// them (~1e-2 drift); an f32 residual stays within f32 rounding of the fp64 sum.
void check_residual_accumulation(Ops& ops, Rng& rng, Report& rep, int rows, int dim, int adds) {
  init_cache(ops, 1, 64, 1, 64, DType::kBF16);
  ops.begin_step(build_layout(rng, {rows}, {rows}, kBlock, 64), *current_kv());
  const size_t n = size_t(rows) * dim;
  const std::vector<float> res = random_f32(rng, n, 8.0f);
  std::vector<float> gamma(dim);
  for (auto& g : gamma) g = 1.0f + 0.5f * rng.normal();
  Weight gw = ops.upload(host_tensor(DType::kF32, 1, dim, gamma.data()));
  DevBuf dres(ops, ops.residual_bytes(int64_t(n))), dx(ops, n * 2), out(ops, n * 2);
  dres.upload(res);
  std::vector<double> ref_res = to_doubles(res), ref;
  const float eps = 1e-5f;
  for (int k = 0; k < adds; ++k) {
    Bf16Data x = random_bf16(rng, n, 0.02f);
    dx.upload(x.bits);
    out.poison();
    ops.add_rms_norm(dres.get(), dx.get(), gw, eps, out.get());
    ref = ref_add_rms_norm(ref_res, &x.values, gamma, rows, dim, eps);
  }
  std::vector<double> got = bf16_to_doubles(out.download<uint16_t>(n));
  std::vector<double> got_res = to_doubles(dres.download<float>(n));
  ErrorStats s = compare(got, ref, dim), sr = compare(got_res, ref_res, dim);
  rep.check(bf16_ok(s) && f32_ok(sr, 1e-5), "add_rms_norm_accumulate",
            "rows=" + std::to_string(rows) + " dim=" + std::to_string(dim) + " adds=" +
                std::to_string(adds) + " out " + describe(s) + " residual(f32) " + describe(sr));
}

// A [n, k] weight in its file type, uploaded; wref gets the values the backend keeps (quantized
// weights are dequantized to bf16 on upload).
Weight make_weight(Ops& ops, Rng& rng, DType type, int n, int k, std::vector<double>& wref) {
  wref.assign(size_t(n) * k, 0.0);
  if (type == DType::kBF16) {
    Bf16Data wb = random_bf16(rng, size_t(n) * k, 0.05f);
    wref = wb.values;
    return ops.upload(host_tensor(DType::kBF16, n, k, wb.bits.data()));
  }
  // Q8_0 blocks: fp16 scale + 32 int8
  std::vector<uint8_t> q(size_t(n) * (k / 32) * 34);
  for (size_t b = 0; b < size_t(n) * (k / 32); ++b) {
    const uint16_t scale = f32_to_fp16(0.001f + 0.002f * std::fabs(rng.normal()));
    std::memcpy(&q[b * 34], &scale, 2);
    const double sd = fp16_to_f32(scale);
    for (int i = 0; i < 32; ++i) {
      const int8_t v = static_cast<int8_t>(rng.uniform_int(-127, 127));
      q[b * 34 + 2 + i] = static_cast<uint8_t>(v);
      wref[b * 32 + i] = bf16_to_f32(f32_to_bf16(static_cast<float>(sd * v)));
    }
  }
  return ops.upload(host_tensor(DType::kQ8_0, n, k, q.data()));
}

void check_matmul(Ops& ops, Rng& rng, Report& rep, int rows, int n, int k, bool f32_out,
                  DType weight_type) {
  Bf16Data x = random_bf16(rng, size_t(rows) * k);
  std::vector<double> wref;
  Weight w = make_weight(ops, rng, weight_type, n, k, wref);
  DevBuf dx(ops, x.bits.size() * 2), out(ops, size_t(rows) * n * (f32_out ? 4 : 2));
  dx.upload(x.bits);
  out.poison();
  std::vector<double> got;
  if (f32_out) {
    ops.lm_head(dx.get(), rows, w, static_cast<float*>(out.get()));
    for (float v : out.download<float>(size_t(rows) * n)) got.push_back(v);
  } else {
    ops.matmul(dx.get(), rows, w, out.get());
    got = bf16_to_doubles(out.download<uint16_t>(size_t(rows) * n));
  }
  std::vector<double> ref(size_t(rows) * n);
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      const double* xr = &x.values[size_t(r) * k];
      const double* wr = &wref[size_t(j) * k];
      for (int i = 0; i < k; ++i) acc += xr[i] * wr[i];
      ref[size_t(r) * n + j] = acc;
    }
  }
  ErrorStats s = compare(got, ref, n);
  const bool ok = f32_out ? (s.non_finite == 0 && s.rel < 1e-4) : bf16_ok(s);
  rep.check(ok, std::string(f32_out ? "lm_head_f32" : "matmul") + "/" + dtype_name(weight_type),
            "M=" + std::to_string(rows) + " N=" + std::to_string(n) + " K=" + std::to_string(k) +
                " " + describe(s));
}

void check_silu(Ops& ops, Rng& rng, Report& rep, int64_t count) {
  Bf16Data g = random_bf16(rng, count, 2.0f), u = random_bf16(rng, count);
  DevBuf dg(ops, count * 2), du(ops, count * 2), out(ops, count * 2);
  dg.upload(g.bits);
  du.upload(u.bits);
  out.poison();
  ops.silu_mul(dg.get(), du.get(), count, out.get());
  std::vector<double> got = bf16_to_doubles(out.download<uint16_t>(count)), ref(count);
  for (int64_t i = 0; i < count; ++i)
    ref[i] = g.values[i] / (1 + std::exp(-g.values[i])) * u.values[i];
  ErrorStats s = compare(got, ref, 1);
  s.worst_row = 0;  // per-element relative error is meaningless near zero
  rep.check(bf16_ok(s), "silu_mul", "count=" + std::to_string(count) + " " + describe(s));
}

void check_gather(Ops& ops, Rng& rng, Report& rep) {
  init_cache(ops, 1, 64, 1, 64, DType::kBF16);
  StepLayout l = build_layout(rng, {5, 1, 9, 1}, {20, 7, 9, 30}, kBlock, 64);
  ops.begin_step(l, *current_kv());
  const int dim = 576, t = l.num_tokens();
  Bf16Data x = random_bf16(rng, size_t(t) * dim);
  DevBuf dx(ops, x.bits.size() * 2), out(ops, l.logit_rows.size() * dim * 2);
  dx.upload(x.bits);
  out.poison();
  ops.gather_logit_rows(dx.get(), dim, out.get());
  std::vector<double> got = bf16_to_doubles(out.download<uint16_t>(l.logit_rows.size() * dim));
  std::vector<double> ref;
  for (int r : l.logit_rows)
    ref.insert(ref.end(), &x.values[size_t(r) * dim], &x.values[size_t(r + 1) * dim]);
  ErrorStats s = compare(got, ref, dim);
  rep.check(s.rel == 0 && s.non_finite == 0, "gather_logit_rows", describe(s));
}

std::vector<double> ref_inv_freq(const RopeConfig& rope, int rotary) {
  std::vector<double> f(rotary / 2);
  for (int i = 0; i < rotary / 2; ++i) {
    double v = std::pow(double(rope.theta), -2.0 * i / rotary);
    if (rope.scaling_factor > 0) {
      const double lw = rope.original_max_position / rope.low_freq_factor;
      const double hw = rope.original_max_position / rope.high_freq_factor;
      const double wl = 2 * std::numbers::pi / v;
      if (wl > lw) {
        v /= rope.scaling_factor;
      } else if (wl >= hw) {
        const double sm = (rope.original_max_position / wl - rope.low_freq_factor) /
                          (rope.high_freq_factor - rope.low_freq_factor);
        v = (1 - sm) * v / rope.scaling_factor + sm * v;
      }
    }
    f[i] = v;
  }
  return f;
}

// Rotates one head of doubles in place.
void ref_rotate(double* x, int head_dim, int rotary, bool neox, double pos,
                const std::vector<double>& inv_freq) {
  for (int i = 0; i < rotary / 2; ++i) {
    const int a = neox ? i : 2 * i, b = neox ? i + rotary / 2 : 2 * i + 1;
    const double ang = pos * static_cast<float>(inv_freq[i]);
    const double c = std::cos(ang), s = std::sin(ang);
    const double x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
  (void)head_dim;
}

void check_rope(Ops& ops, Rng& rng, Report& rep, int heads, int kv_heads, int head_dim, int rotary,
                bool neox, bool llama3, DType kv_dtype, int tokens) {
  const int blocks = 4096;
  init_cache(ops, 2, blocks, kv_heads, head_dim, kv_dtype);
  auto& cops = dynamic_cast<cuda::CudaKvCache&>(*current_kv());
  // Tokens of two sequences at large positions: exercises angle accuracy up to 32k.
  const int ctx0 = 31000 + tokens / 2, ctx1 = 500;
  StepLayout l = build_layout(rng, {tokens / 2, tokens - tokens / 2}, {ctx0, ctx1}, kBlock, blocks);
  ops.begin_step(l, *current_kv());
  RopeConfig rope;
  rope.theta = 500000.0f;
  rope.neox = neox;
  rope.rotary_dim = rotary;
  if (llama3) rope.scaling_factor = 8.0f;
  AttentionParams attn{heads, kv_heads, head_dim, 1.0f, 0};
  Bf16Data q = random_bf16(rng, size_t(tokens) * heads * head_dim);
  Bf16Data k = random_bf16(rng, size_t(tokens) * kv_heads * head_dim);
  Bf16Data v = random_bf16(rng, size_t(tokens) * kv_heads * head_dim);
  DevBuf dq(ops, q.bits.size() * 2), dk(ops, k.bits.size() * 2), dv(ops, v.bits.size() * 2);
  dq.upload(q.bits);
  dk.upload(k.bits);
  dv.upload(v.bits);
  const int layer = 1;
  ops.rope_store_kv(*current_kv(), dq.get(), dk.get(), dv.get(), layer, attn, rope);
  const std::vector<double> inv = ref_inv_freq(rope, rotary > 0 ? rotary : head_dim);
  const int rd = rotary > 0 ? rotary : head_dim;
  std::vector<double> rq = q.values, rk = k.values;
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h)
      ref_rotate(&rq[(size_t(t) * heads + h) * head_dim], head_dim, rd, neox, l.positions[t], inv);
    for (int h = 0; h < kv_heads; ++h)
      ref_rotate(&rk[(size_t(t) * kv_heads + h) * head_dim], head_dim, rd, neox, l.positions[t],
                 inv);
  }
  std::vector<double> gq = bf16_to_doubles(dq.download<uint16_t>(q.bits.size()));
  std::vector<double> gk = bf16_to_doubles(dk.download<uint16_t>(k.bits.size()));
  // Read back the pages the tokens were stored into.
  const size_t row = size_t(kv_heads) * head_dim;
  std::vector<uint16_t> kpool(size_t(blocks) * kBlock * row), vpool(kpool.size());
  ops.to_host(kpool.data(), cops.k_pool(layer), kpool.size() * 2);
  ops.to_host(vpool.data(), cops.v_pool(layer), vpool.size() * 2);
  auto cache_val = [&](const std::vector<uint16_t>& pool, size_t i) -> double {
    return kv_dtype == DType::kF16 ? fp16_to_f32(pool[i]) : bf16_to_f32(pool[i]);
  };
  std::vector<double> gkc, gvc;
  for (int t = 0; t < tokens; ++t) {
    for (size_t i = 0; i < row; ++i) {
      gkc.push_back(cache_val(kpool, size_t(l.slot_mapping[t]) * row + i));
      gvc.push_back(cache_val(vpool, size_t(l.slot_mapping[t]) * row + i));
    }
  }
  ErrorStats sq = compare(gq, rq, head_dim), sk = compare(gk, rk, head_dim),
             skc = compare(gkc, rk, head_dim), svc = compare(gvc, v.values, head_dim);
  char name[160];
  std::snprintf(name, sizeof name, "rope_store_kv/%s%s/%s H=%d Hkv=%d D=%d rot=%d T=%d",
                neox ? "neox" : "pairs", llama3 ? "+llama3" : "", dtype_name(kv_dtype), heads,
                kv_heads, head_dim, rd, tokens);
  rep.check(bf16_ok(sq) && bf16_ok(sk) && bf16_ok(skc) && svc.rel < 1e-6 && svc.non_finite == 0,
            name,
            "q " + describe(sq) + " | k " + describe(sk) + " | cache k " + describe(skc) +
                " | cache v " + describe(svc));
}

void check_copy_blocks(Ops& ops, Rng& rng, Report& rep) {
  const int blocks = 32, layers = 3, kvh = 2, d = 64;
  init_cache(ops, layers, blocks, kvh, d, DType::kBF16);
  auto& cops = dynamic_cast<cuda::CudaKvCache&>(*current_kv());
  const size_t pool = size_t(blocks) * kBlock * kvh * d;
  std::vector<std::vector<uint16_t>> before;
  for (int l = 0; l < layers; ++l) {
    for (void* p : {cops.k_pool(l), cops.v_pool(l)}) {
      Bf16Data r = random_bf16(rng, pool);
      ops.to_device(p, r.bits.data(), pool * 2);
      before.push_back(r.bits);
    }
  }
  const std::vector<std::pair<int32_t, int32_t>> pairs = {{3, 7}, {9, 1}, {31, 30}};
  ops.copy_kv_blocks(*current_kv(), pairs);
  bool ok = true;
  const size_t per_block = size_t(kBlock) * kvh * d;
  int idx = 0;
  for (int l = 0; l < layers; ++l) {
    for (void* p : {cops.k_pool(l), cops.v_pool(l)}) {
      std::vector<uint16_t> after(pool);
      ops.to_host(after.data(), p, pool * 2);
      std::vector<uint16_t> expect = before[idx++];
      for (auto [s, dst] : pairs) {
        std::copy_n(&before[idx - 1][s * per_block], per_block, &expect[dst * per_block]);
      }
      ok = ok && after == expect;
    }
  }
  rep.check(ok, "copy_kv_blocks", "3 pairs x 3 layers x K/V, other blocks untouched");
}

// x: [rows, k] -> [rows, n] in fp64 against a weight reference [n, k].
std::vector<double> ref_matmul(const std::vector<double>& x, const std::vector<double>& w, int rows,
                               int n, int k) {
  std::vector<double> ref(size_t(rows) * n);
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      const double* xr = &x[size_t(r) * k];
      const double* wr = &w[size_t(j) * k];
      for (int i = 0; i < k; ++i) acc += xr[i] * wr[i];
      ref[size_t(r) * n + j] = acc;
    }
  }
  return ref;
}

// A poisoned bf16 output of `elems` values followed by a poisoned guard that must stay
// untouched (a wrong row offset in a grouped launch writes past its own buffer).
constexpr size_t kGuard = 64;
bool guard_intact(DevBuf& buf, size_t elems) {
  const std::vector<uint16_t> all = buf.download<uint16_t>(elems + kGuard);
  return std::all_of(all.begin() + elems, all.end(), [](uint16_t v) { return v == 0xFFFF; });
}

std::string shape_list(const std::vector<int>& ns) {
  std::string s;
  for (int n : ns) {
    if (!s.empty()) s += '+';
    s += std::to_string(n);
  }
  return s;
}

// matmul_multi: outs[i] = x W_i, one grouped GEMV launch for rows <= 8 (rows > 8: the
// separate cuBLASLt matmuls). The weights are made once and checked for each row count.
void check_matmul_multi(Ops& ops, Rng& rng, Report& rep, const std::vector<int>& row_counts,
                        const std::vector<int>& ns, int k, DType type) {
  std::vector<std::vector<double>> wref(ns.size());
  std::vector<Weight> ws;
  for (size_t i = 0; i < ns.size(); ++i)
    ws.push_back(make_weight(ops, rng, type, ns[i], k, wref[i]));
  std::vector<const Weight*> wptr;
  for (const Weight& w : ws) wptr.push_back(&w);
  for (int rows : row_counts) {
    Bf16Data x = random_bf16(rng, size_t(rows) * k);
    DevBuf dx(ops, x.bits.size() * 2);
    dx.upload(x.bits);
    std::vector<std::unique_ptr<DevBuf>> outs;
    std::vector<void*> optr;
    for (int n : ns) {
      outs.push_back(std::make_unique<DevBuf>(ops, (size_t(rows) * n + kGuard) * 2));
      outs.back()->poison();
      optr.push_back(outs.back()->get());
    }
    ops.matmul_multi(dx.get(), rows, wptr, optr);
    bool ok = true;
    std::string detail;
    for (size_t i = 0; i < ns.size(); ++i) {
      const size_t elems = size_t(rows) * ns[i];
      std::vector<double> got = bf16_to_doubles(outs[i]->download<uint16_t>(elems));
      ErrorStats st = compare(got, ref_matmul(x.values, wref[i], rows, ns[i], k), ns[i]);
      const bool guard = guard_intact(*outs[i], elems);
      ok = ok && bf16_ok(st) && guard;
      detail +=
          " | w" + std::to_string(i) + " " + describe(st) + (guard ? "" : " GUARD OVERWRITTEN");
    }
    rep.check(ok, std::string("matmul_multi/") + dtype_name(type),
              "M=" + std::to_string(rows) + " N=" + shape_list(ns) + " K=" + std::to_string(k) +
                  (rows > cuda::kGemvRowsGrouped ? " (cuBLASLt)" : " (grouped GEMV)") + detail);
  }
}

// gate_up_silu: out = silu(x Wgate) * (x Wup), one fused GEMV for rows <= 8 (fp32 until the
// product), the separate ops beyond. The fp64 reference applies SiLU to exact projections.
void check_gate_up_silu(Ops& ops, Rng& rng, Report& rep, const std::vector<int>& row_counts,
                        int ffn, int k, DType type) {
  std::vector<double> gref, uref;
  Weight gate = make_weight(ops, rng, type, ffn, k, gref);
  Weight up = make_weight(ops, rng, type, ffn, k, uref);
  for (int rows : row_counts) {
    Bf16Data x = random_bf16(rng, size_t(rows) * k);
    const size_t elems = size_t(rows) * ffn;
    DevBuf dx(ops, x.bits.size() * 2), scratch(ops, elems * 2), out(ops, (elems + kGuard) * 2);
    dx.upload(x.bits);
    scratch.poison();
    out.poison();
    ops.gate_up_silu(dx.get(), rows, gate, up, scratch.get(), out.get());
    std::vector<double> got = bf16_to_doubles(out.download<uint16_t>(elems));
    std::vector<double> ref = ref_matmul(x.values, gref, rows, ffn, k);
    const std::vector<double> u = ref_matmul(x.values, uref, rows, ffn, k);
    for (size_t i = 0; i < elems; ++i) ref[i] = ref[i] / (1 + std::exp(-ref[i])) * u[i];
    ErrorStats st = compare(got, ref, ffn);
    const bool guard = guard_intact(out, elems);
    rep.check(bf16_ok(st) && guard, std::string("gate_up_silu/") + dtype_name(type),
              "M=" + std::to_string(rows) + " ffn=" + std::to_string(ffn) +
                  " K=" + std::to_string(k) +
                  (rows > cuda::kGemvRowsGateUp ? " (cuBLASLt) " : " (fused GEMV) ") +
                  describe(st) + (guard ? "" : " GUARD OVERWRITTEN"));
  }
}

// The GEMV kernels called directly for every row count they accept (CudaOps takes them only
// up to the cutoffs in gemv.h, which may move): grouped (a weight of 136 rows makes warp tasks
// end mid-CTA), gate/up+SiLU, and the single-weight launch with f32 output.
void check_gemv_kernels(Ops& ops, Rng& rng, Report& rep) {
  auto& cops = dynamic_cast<cuda::CudaOps&>(ops);
  const int k = 1000;
  const std::vector<int> ns = {1000, 136, 24};
  std::vector<std::vector<double>> wref(ns.size());
  std::vector<Weight> ws;
  for (size_t i = 0; i < ns.size(); ++i) {
    ws.push_back(make_weight(ops, rng, DType::kBF16, ns[i], k, wref[i]));
  }
  for (int m = 1; m <= cuda::kMaxGemvRows; ++m) {
    Bf16Data x = random_bf16(rng, size_t(m) * k);
    DevBuf dx(ops, x.bits.size() * 2);
    dx.upload(x.bits);
    bool ok = true;
    std::string detail;
    // Grouped, bf16 out.
    std::vector<std::unique_ptr<DevBuf>> outs;
    cuda::GemvGroup g;
    g.count = static_cast<int>(ns.size());
    for (size_t i = 0; i < ns.size(); ++i) {
      outs.push_back(std::make_unique<DevBuf>(ops, (size_t(m) * ns[i] + kGuard) * 2));
      outs.back()->poison();
      g.w[i] = ws[i].data;
      g.out[i] = outs.back()->get();
      g.n[i] = ns[i];
    }
    ok = ok && cuda::launch_gemv_group(dx.get(), m, g, k, cops.stream()) == cudaSuccess;
    for (size_t i = 0; i < ns.size(); ++i) {
      const size_t elems = size_t(m) * ns[i];
      ErrorStats st = compare(bf16_to_doubles(outs[i]->download<uint16_t>(elems)),
                              ref_matmul(x.values, wref[i], m, ns[i], k), ns[i]);
      ok = ok && bf16_ok(st) && guard_intact(*outs[i], elems);
      detail += " group w" + std::to_string(i) + " rel=" + std::to_string(st.rel);
    }
    // Single weight, f32 out.
    DevBuf of32(ops, size_t(m) * ns[0] * 4);
    of32.poison();
    ok = ok && cuda::launch_gemv(dx.get(), m, ws[0].data, ns[0], k, of32.get(), true,
                                 cops.stream()) == cudaSuccess;
    std::vector<double> got32;
    for (float v : of32.download<float>(size_t(m) * ns[0])) got32.push_back(v);
    ErrorStats s32 = compare(got32, ref_matmul(x.values, wref[0], m, ns[0], k), ns[0]);
    ok = ok && s32.non_finite == 0 && s32.rel < 1e-4;
    detail += " f32 rel=" + std::to_string(s32.rel);
    // Gate/up + SiLU over the first two weights' first 136 rows (gate = w0, up = w1).
    const int n = ns[1];
    const size_t elems = size_t(m) * n;
    DevBuf gu(ops, (elems + kGuard) * 2);
    gu.poison();
    ok = ok && cuda::launch_gemv_gate_up_silu(dx.get(), m, ws[0].data, ws[1].data, n, k, gu.get(),
                                              cops.stream()) == cudaSuccess;
    std::vector<double> ref = ref_matmul(x.values, wref[0], m, n, k);  // rows 0..n of w0
    const std::vector<double> u = ref_matmul(x.values, wref[1], m, n, k);
    for (size_t i = 0; i < elems; ++i) ref[i] = ref[i] / (1 + std::exp(-ref[i])) * u[i];
    ErrorStats sgu = compare(bf16_to_doubles(gu.download<uint16_t>(elems)), ref, n);
    ok = ok && bf16_ok(sgu) && guard_intact(gu, elems);
    detail += " gate_up rel=" + std::to_string(sgu.rel);
    rep.check(ok, "gemv_kernels", "M=" + std::to_string(m) + " K=" + std::to_string(k) + detail);
  }
}

}  // namespace

int main() {
  Report rep;
  try {
    auto ops = make_cuda_ops(0);
    KvCacheGuard kv_guard;
    Rng rng(20261129);
    check_residual_dtype(*ops, rep);
    check_embedding(*ops, rng, rep, 1000, 576, 37);
    check_embedding(*ops, rng, rep, 4000, 4096, 5);
    for (int rows : {1, 7, 129}) {
      for (int dim : {64, 576, 4096, 8200}) {
        check_rms_norm(*ops, rng, rep, rows, dim, true);
      }
    }
    check_rms_norm(*ops, rng, rep, 33, 576, false);
    check_residual_accumulation(*ops, rng, rep, 5, 576, 64);
    check_residual_accumulation(*ops, rng, rep, 2, 4096, 64);
    check_matmul(*ops, rng, rep, 1, 4096, 4096, false, DType::kBF16);
    check_matmul(*ops, rng, rep, 7, 1536, 576, false, DType::kBF16);
    check_matmul(*ops, rng, rep, 64, 576, 1536, false, DType::kBF16);
    check_matmul(*ops, rng, rep, 257, 512, 512, false, DType::kBF16);
    check_matmul(*ops, rng, rep, 3, 1024, 14336, false, DType::kBF16);
    check_matmul(*ops, rng, rep, 13, 576, 576, false, DType::kQ8_0);
    check_matmul(*ops, rng, rep, 3, 49152, 576, true, DType::kBF16);
    check_matmul(*ops, rng, rep, 1, 32000, 1024, true, DType::kBF16);
    // Row counts on both sides of the GEMV / cuBLASLt cutoffs (gemv.h), both output types.
    check_matmul(*ops, rng, rep, 8, 2048, 4096, false, DType::kBF16);
    check_matmul(*ops, rng, rep, 9, 2048, 4096, false, DType::kBF16);
    check_matmul(*ops, rng, rep, 3, 2048, 4096, false, DType::kBF16);
    check_matmul(*ops, rng, rep, 4, 2048, 4096, false, DType::kBF16);
    check_matmul(*ops, rng, rep, 8, 4096, 576, true, DType::kBF16);
    check_matmul(*ops, rng, rep, 2, 4096, 576, true, DType::kBF16);
    check_matmul(*ops, rng, rep, 20, 4096, 576, true, DType::kBF16);
    check_silu(*ops, rng, rep, 9);
    check_silu(*ops, rng, rep, 1000003);
    check_gather(*ops, rng, rep);
    for (bool neox : {false, true}) {
      for (bool llama3 : {false, true}) {
        check_rope(*ops, rng, rep, 32, 8, 128, 0, neox, llama3, DType::kBF16, 19);
      }
    }
    check_rope(*ops, rng, rep, 9, 3, 64, 0, false, false, DType::kBF16, 7);
    check_rope(*ops, rng, rep, 8, 8, 64, 32, true, false, DType::kF16, 5);
    check_rope(*ops, rng, rep, 16, 2, 128, 0, true, true, DType::kF16, 33);
    check_copy_blocks(*ops, rng, rep);
    // Fused projections: Q/K/V of the Llama-3.1-8B shape, odd sizes, one to five weights (five
    // takes two grouped launches), rows on both sides of the GEMV / cuBLASLt cutoffs.
    check_matmul_multi(*ops, rng, rep, {1, 3, 5, 6, 8, 9}, {4096, 1024, 1024}, 4096, DType::kBF16);
    check_matmul_multi(*ops, rng, rep, {1, 3}, {1000}, 4096, DType::kBF16);
    check_matmul_multi(*ops, rng, rep, {2, 8}, {1000, 24}, 1000, DType::kBF16);
    check_matmul_multi(*ops, rng, rep, {1, 5, 9}, {576, 192, 192}, 576, DType::kQ8_0);
    check_matmul_multi(*ops, rng, rep, {4}, {64, 136, 8, 1000, 40}, 256, DType::kBF16);
    check_gate_up_silu(*ops, rng, rep, {1, 3, 4, 5, 8, 16}, 14336, 4096, DType::kBF16);
    check_gate_up_silu(*ops, rng, rep, {1, 8, 9}, 1000, 1000, DType::kBF16);
    check_gate_up_silu(*ops, rng, rep, {3, 16}, 1000, 576, DType::kQ8_0);
    check_gemv_kernels(*ops, rng, rep);
  } catch (const std::exception& e) {
    rep.check(false, "exception", e.what());
  }
  return rep.finish("kernel_check");
}
