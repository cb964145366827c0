// GPU check of weights kept quantized on the GPU (fp8 / int8 / int4, kernels/weight_scheme.h;
// GGUF blocks against the host decoder)
// and of the fp8 / int8 KV cache: every path of CudaOps (the quantized GEMV at 1..8 rows, the
// FP8 W8A8 cuBLASLt GEMM and the dequantize + cuBLASLt path at more rows, the LM head, the
// fused projections falling back per weight) against the CPU backend on the same random
// weights and inputs (the CPU backend is the readable reference; its result equals the fp64
// dot of the dequantized weight up to f32 summation order).
//
// Tolerances (||gpu - cpu|| / ||cpu||): 1e-2 where the only difference is bf16 rounding of x
// and of the output; 6e-2 for FP8 W8A8 (activations rounded to e4m3 per token: 3 mantissa
// bits, about 2-3% relative error of a dot of random data).
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/quant.h"
#include "kernels/dequant.h"
#include "kernels/quantize.h"
#include "tests/gpu/check_common.h"

using namespace tessera;
using namespace tessera::gpu_check;

namespace {

QuantScheme scheme(QuantKind k, int group, bool per_channel, bool zeros, bool act_order) {
  QuantScheme s;
  s.kind = k;
  s.group_size = group;
  s.per_channel = per_channel;
  s.has_zeros = zeros;
  s.act_order = act_order;
  return s;
}

std::string name_of(const QuantScheme& s) {
  return std::string(quant_kind_name(s.kind)) + (s.per_channel ? "/chan" : "") +
         (s.group_size ? "/g" + std::to_string(s.group_size) : "") + (s.has_zeros ? "/zp" : "") +
         (s.act_order ? "/act" : "");
}

// matmul (bf16 out) or lm_head (f32 out) of x [rows, k] with wg [n, k] on the GPU.
std::vector<double> run_gpu_matmul(Ops& gpu, const Weight& wg, const Bf16Data& x, int rows, int n,
                                   bool lm_head) {
  DevBuf dx(gpu, x.bits.size() * 2), out(gpu, size_t(rows) * n * (lm_head ? 4 : 2));
  dx.upload(x.bits);
  out.poison();
  if (lm_head) {
    gpu.lm_head(dx.get(), rows, wg, static_cast<float*>(out.get()));
    const auto f = out.download<float>(size_t(rows) * n);
    return std::vector<double>(f.begin(), f.end());
  }
  gpu.matmul(dx.get(), rows, wg, out.get());
  return bf16_to_doubles(out.download<uint16_t>(size_t(rows) * n));
}

// Runs matmul (or lm_head) with the same quantized weight on both backends.
void check_scheme_matmul(Ops& gpu, Ops& cpu, Rng& rng, Report& rep, const QuantScheme& s, int rows,
                         int n, int k, bool lm_head) {
  std::vector<float> wf(size_t(n) * k);
  for (auto& v : wf) v = rng.normal(0.05f);
  const QuantizedTensor q = quantize_weight(host_tensor(DType::kF32, n, k, wf.data()), s);
  const Weight wg = gpu.upload(q.view), wc = cpu.upload(q.view);
  Bf16Data x = random_bf16(rng, size_t(rows) * k);
  std::vector<float> xf(x.values.begin(), x.values.end());
  std::vector<float> ref(size_t(rows) * n);
  if (lm_head) {
    cpu.lm_head(xf.data(), rows, wc, ref.data());
  } else {
    cpu.matmul(xf.data(), rows, wc, ref.data());
  }
  const std::vector<double> got = run_gpu_matmul(gpu, wg, x, rows, n, lm_head);
  const ErrorStats st = compare(got, std::vector<double>(ref.begin(), ref.end()), n);
  const bool w8a8 = s.kind == QuantKind::kFp8 && rows > cuda::kMaxQuantGemvRows && !lm_head;
  const double tol = w8a8 ? 6e-2 : 1e-2;
  char name[160];
  std::snprintf(name, sizeof name, "%s/%s rows=%d n=%d k=%d%s", lm_head ? "lm_head" : "matmul",
                name_of(s).c_str(), rows, n, k, w8a8 ? " (fp8 W8A8 cuBLASLt)" : "");
  rep.check(bf16_ok(st, tol, 3 * tol), name, describe(st));
}

// GGUF blocks of `type` for an [n, k] weight: the 32-value types from the host quantizer;
// the K-quants (read-only in Tessera) as random bytes, valid blocks once their f16
// super-block scales are set small and finite.
std::vector<uint8_t> random_gguf(Rng& rng, DType type, int n, int k) {
  if (!dtype_is_kquant(type)) {
    std::vector<float> v(size_t(n) * k);
    for (auto& e : v) e = rng.normal(0.05f);
    return quantize(type, v);
  }
  std::vector<uint8_t> b(size_t(n) * dtype_row_bytes(type, k));
  for (auto& e : b) e = static_cast<uint8_t>(rng.uniform_int(0, 255));
  const int block = dtype_block_bytes(type);
  for (size_t at = 0; at < b.size(); at += block) {
    const auto put = [&](size_t off, float v) {
      const uint16_t h = f32_to_fp16(v);
      std::memcpy(&b[at + off], &h, 2);
    };
    if (type == DType::kQ6_K) {
      put(208, 1e-4f * float(rng.uniform_int(1, 20)));
    } else {
      put(0, 1e-4f * float(rng.uniform_int(1, 20)));  // d
      put(2, 1e-4f * float(rng.uniform_int(1, 20)));  // dmin
    }
  }
  return b;
}

// A GGUF weight kept as blocks on the GPU (set_gguf_blocks(true)): matmul (the blocks
// GEMV at 1-8 rows, dequantize + cuBLASLt above) or the LM head, against the fp64 dot of the
// host decoder's values (kernels/dequant.h, checked against the gguf package's decoder).
void check_gguf_matmul(Ops& gpu, Rng& rng, Report& rep, DType type, int rows, int n, int k,
                       bool lm_head) {
  const std::vector<uint8_t> blocks = random_gguf(rng, type, n, k);
  const HostTensor t = host_tensor(type, n, k, blocks.data());
  const std::vector<float> wf = dequantize_tensor(t);
  gpu.set_gguf_blocks(true);
  const Weight wg = gpu.upload(t);
  gpu.set_gguf_blocks(false);
  Bf16Data x = random_bf16(rng, size_t(rows) * k);
  std::vector<double> ref(size_t(rows) * n);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < n; ++i) {
      double acc = 0;
      for (int c = 0; c < k; ++c) acc += x.values[size_t(r) * k + c] * wf[size_t(i) * k + c];
      ref[size_t(r) * n + i] = acc;
    }
  }
  const std::vector<double> got = run_gpu_matmul(gpu, wg, x, rows, n, lm_head);
  const ErrorStats st = compare(got, ref, n);
  const std::string name = std::string(lm_head ? "lm_head" : "matmul") + "/gguf " +
                           dtype_name(type) + " rows=" + std::to_string(rows) +
                           " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                           (wg.scheme.kind == QuantKind::kGguf ? " (blocks)" : " (NOT blocks)");
  rep.check(wg.scheme.kind == QuantKind::kGguf && bf16_ok(st, 1e-2, 3e-2), name, describe(st));
}

// matmul_multi and gate_up_silu with quantized weights equal the separate matmuls.
void check_fused(Ops& gpu, Ops& cpu, Rng& rng, Report& rep, int rows) {
  const int k = 1024, n = 512;
  std::vector<float> a(size_t(n) * k), b(a.size());
  for (auto& v : a) v = rng.normal(0.05f);
  for (auto& v : b) v = rng.normal(0.05f);
  const QuantizedTensor qa =
      quantize_weight(host_tensor(DType::kF32, n, k, a.data()), QuantKind::kInt4, 128);
  const QuantizedTensor qb =
      quantize_weight(host_tensor(DType::kF32, n, k, b.data()), QuantKind::kFp8, 0);
  const Weight ga = gpu.upload(qa.view), gb = gpu.upload(qb.view);
  const Weight ca = cpu.upload(qa.view), cb = cpu.upload(qb.view);
  Bf16Data x = random_bf16(rng, size_t(rows) * k);
  std::vector<float> xf(x.values.begin(), x.values.end());
  std::vector<float> ra(size_t(rows) * n), rb(ra.size()), rs(ra.size()), scratch(ra.size());
  const Weight* cws[] = {&ca, &cb};
  void* const couts[] = {ra.data(), rb.data()};
  cpu.matmul_multi(xf.data(), rows, cws, couts);
  cpu.gate_up_silu(xf.data(), rows, ca, cb, scratch.data(), rs.data());
  DevBuf dx(gpu, x.bits.size() * 2), oa(gpu, ra.size() * 2), ob(gpu, ra.size() * 2),
      os(gpu, ra.size() * 2), sc(gpu, ra.size() * 2);
  dx.upload(x.bits);
  oa.poison();
  ob.poison();
  os.poison();
  const Weight* gws[] = {&ga, &gb};
  void* const gouts[] = {oa.get(), ob.get()};
  gpu.matmul_multi(dx.get(), rows, gws, gouts);
  gpu.gate_up_silu(dx.get(), rows, ga, gb, sc.get(), os.get());
  auto cmp = [&](DevBuf& d, const std::vector<float>& r) {
    return compare(bf16_to_doubles(d.download<uint16_t>(r.size())),
                   std::vector<double>(r.begin(), r.end()), n);
  };
  const double tol = rows > cuda::kMaxQuantGemvRows ? 6e-2 : 1e-2;
  const ErrorStats sa = cmp(oa, ra), sb = cmp(ob, rb), ss = cmp(os, rs);
  rep.check(bf16_ok(sa) && bf16_ok(sb, tol, 3 * tol) && bf16_ok(ss, tol, 3 * tol),
            "fused int4+fp8 rows=" + std::to_string(rows),
            "multi[int4] " + describe(sa) + " | multi[fp8] " + describe(sb) + " | gate_up " +
                describe(ss));
}

// The one-launch paths: Q/K/V-like weights (row counts that are not multiples of 16)
// through matmul_multi, and gate/up (520 rows: a partial 8-row tile) through gate_up_silu,
// against the CPU backend's separate matmuls. gw / cw: the five weights of shapes kFusedN x k
// on each backend; tol: the matmuls' tolerance.
constexpr int kFusedN[] = {512, 200, 72, 520, 520};
void compare_fused(Ops& gpu, Ops& cpu, Rng& rng, Report& rep, const std::vector<Weight>& gw,
                   const std::vector<Weight>& cw, int k, int rows, bool w8a8,
                   const std::string& label) {
  const int* ns = kFusedN;
  Bf16Data x = random_bf16(rng, size_t(rows) * k);
  std::vector<float> xf(x.values.begin(), x.values.end());
  DevBuf dx(gpu, x.bits.size() * 2);
  dx.upload(x.bits);
  std::string detail;
  bool ok = true;
  const double tol = w8a8 ? 6e-2 : 1e-2;
  {
    std::vector<std::vector<float>> ref(3);
    std::vector<std::unique_ptr<DevBuf>> outs;
    for (int i = 0; i < 3; ++i) {
      ref[i].resize(size_t(rows) * ns[i]);
      outs.push_back(std::make_unique<DevBuf>(gpu, ref[i].size() * 2));
      outs.back()->poison();
    }
    const Weight* cws[] = {&cw[0], &cw[1], &cw[2]};
    void* const couts[] = {ref[0].data(), ref[1].data(), ref[2].data()};
    cpu.matmul_multi(xf.data(), rows, cws, couts);
    const Weight* gws[] = {&gw[0], &gw[1], &gw[2]};
    void* const gouts[] = {outs[0]->get(), outs[1]->get(), outs[2]->get()};
    gpu.matmul_multi(dx.get(), rows, gws, gouts);
    for (int i = 0; i < 3; ++i) {
      const ErrorStats st = compare(bf16_to_doubles(outs[i]->download<uint16_t>(ref[i].size())),
                                    std::vector<double>(ref[i].begin(), ref[i].end()), ns[i]);
      ok = ok && bf16_ok(st, tol, 3 * tol);
      detail += "multi[" + std::to_string(ns[i]) + "] " + describe(st) + " | ";
    }
  }
  {
    const int n = ns[3];
    std::vector<float> ref(size_t(rows) * n), scratch(ref.size());
    cpu.gate_up_silu(xf.data(), rows, cw[3], cw[4], scratch.data(), ref.data());
    DevBuf os(gpu, ref.size() * 2), sc(gpu, ref.size() * 2);
    os.poison();
    gpu.gate_up_silu(dx.get(), rows, gw[3], gw[4], sc.get(), os.get());
    const ErrorStats st = compare(bf16_to_doubles(os.download<uint16_t>(ref.size())),
                                  std::vector<double>(ref.begin(), ref.end()), n);
    ok = ok && bf16_ok(st, w8a8 ? tol : 2e-2, w8a8 ? 3 * tol : 6e-2);
    detail += "gate_up " + describe(st);
  }
  rep.check(ok, "fused " + label + " rows=" + std::to_string(rows), detail);
}

// The tensor-core fused launches (int4 / fp8 weights of one kind).
void check_fused_same(Ops& gpu, Ops& cpu, Rng& rng, Report& rep, QuantKind kind, int rows) {
  const int k = 1024;
  std::vector<QuantizedTensor> q;  // the CPU backend's weights borrow these
  std::vector<Weight> gw, cw;
  for (int n : kFusedN) {
    std::vector<float> v(size_t(n) * k);
    for (auto& e : v) e = rng.normal(0.05f);
    q.push_back(quantize_weight(host_tensor(DType::kF32, n, k, v.data()), kind,
                                kind == QuantKind::kInt4 ? 128 : 0));
    gw.push_back(gpu.upload(q.back().view));
    cw.push_back(cpu.upload(q.back().view));
  }
  // fp8 above the GEMV's rows is W8A8: per-token activation quantization adds error.
  compare_fused(gpu, cpu, rng, rep, gw, cw, k, rows,
                kind == QuantKind::kFp8 && rows > cuda::kMaxQuantGemvRows,
                kind == QuantKind::kInt4 ? "int4" : "fp8");
}

// The GGUF-blocks fused launches (decode sizes; more rows fall back to separate matmuls).
void check_fused_gguf(Ops& gpu, Ops& cpu, Rng& rng, Report& rep, DType type, int rows) {
  const int k = 512;
  std::vector<std::vector<uint8_t>> keep;  // the CPU backend's weights borrow these
  std::vector<Weight> gw, cw;
  gpu.set_gguf_blocks(true);
  for (int n : kFusedN) {
    keep.push_back(random_gguf(rng, type, n, k));
    const HostTensor t = host_tensor(type, n, k, keep.back().data());
    gw.push_back(gpu.upload(t));
    cw.push_back(cpu.upload(t));
  }
  gpu.set_gguf_blocks(false);
  compare_fused(gpu, cpu, rng, rep, gw, cw, k, rows, false,
                std::string("gguf ") + dtype_name(type));
}

// An 8-bit (or bf16) KV cache on both backends: a prefill step then a decode step, each
// rope_store_kv + paged_attention, the CPU cache of the same dtype as the reference. The
// two quantize slightly different k (the GPU rounds the rotated k to bf16 first), so codes
// may differ by one step here and there.
void check_kv_cache(Ops& gpu, Ops& cpu, Report& rep, KvDtype dtype, int head_dim) {
  const int kv_heads = 2, heads = 8, blocks = 64, bs = 16;
  KvCacheShape shape{1, blocks, bs, kv_heads, head_dim, dtype, heads};
  auto gkv = gpu.make_kv_cache(shape);
  // The CPU reference stores what it can: a bf16 GPU cache is compared with an f32 one.
  KvCacheShape cpu_shape = shape;
  if (dtype == KvDtype::kBF16) cpu_shape.dtype = KvDtype::kF32;
  auto ckv = cpu.make_kv_cache(cpu_shape);
  AttentionParams attn{heads, kv_heads, head_dim, 1.0f / std::sqrt(float(head_dim)), 0};
  RopeConfig rope;
  rope.theta = 500000.f;
  rope.neox = true;
  Rng rng(99);
  double worst = 0, sum = 0;
  int steps = 0;
  for (const auto& [qlens, ctxs] :
       {std::pair<std::vector<int>, std::vector<int>>{{37, 5, 64}, {37, 5, 64}},
        {{1, 1, 1}, {38, 6, 65}}}) {
    Rng layout_rng(7);  // the same block tables in both steps
    const StepLayout l = build_layout(layout_rng, qlens, ctxs, bs, blocks);
    const size_t t = l.tokens.size();
    Bf16Data q = random_bf16(rng, t * heads * head_dim),
             k = random_bf16(rng, t * kv_heads * head_dim),
             v = random_bf16(rng, t * kv_heads * head_dim);
    std::vector<float> cq(q.values.begin(), q.values.end()), ck(k.values.begin(), k.values.end()),
        cv(v.values.begin(), v.values.end()), cout(cq.size());
    cpu.begin_step(l, *ckv);
    cpu.rope_store_kv(*ckv, cq.data(), ck.data(), cv.data(), 0, attn, rope);
    cpu.paged_attention(*ckv, cq.data(), 0, attn, cout.data());
    DevBuf dq(gpu, q.bits.size() * 2), dk(gpu, k.bits.size() * 2), dv(gpu, v.bits.size() * 2),
        dout(gpu, q.bits.size() * 2);
    dq.upload(q.bits);
    dk.upload(k.bits);
    dv.upload(v.bits);
    dout.poison();
    gpu.begin_step(l, *gkv);
    gpu.rope_store_kv(*gkv, dq.get(), dk.get(), dv.get(), 0, attn, rope);
    gpu.paged_attention(*gkv, dq.get(), 0, attn, dout.get());
    const ErrorStats st = compare(bf16_to_doubles(dout.download<uint16_t>(q.bits.size())),
                                  std::vector<double>(cout.begin(), cout.end()), head_dim);
    worst = std::max(worst, st.worst_row);
    sum += st.rel;
    ++steps;
    const double tol = dtype == KvDtype::kFp8 ? 3e-2 : 1.5e-2;
    rep.check(bf16_ok(st, tol, 4 * tol),
              std::string("kv_cache/") + kv_dtype_name(dtype) + " D=" + std::to_string(head_dim) +
                  (steps == 1 ? " prefill" : " decode"),
              describe(st));
  }
  gkv.reset();
}

}  // namespace

int main() {
  Report rep;
  try {
    auto gpu = make_cuda_ops(0);
    KvCacheGuard kv_guard;
    auto cpu = make_cpu_ops(0);
    Rng rng(20261201);
    const std::vector<QuantScheme> schemes = {
        scheme(QuantKind::kFp8, 0, true, false, false),
        scheme(QuantKind::kFp8, 0, false, false, false),
        scheme(QuantKind::kInt8, 128, false, false, false),
        scheme(QuantKind::kInt8, 0, false, false, false),
        scheme(QuantKind::kInt4, 128, false, true, false),
        scheme(QuantKind::kInt4, 128, false, false, false),
        scheme(QuantKind::kInt4, 64, false, true, true),    // GPTQ act order
        scheme(QuantKind::kInt8, 48, false, false, false),  // groups straddling 16-byte units
    };
    for (const QuantScheme& s : schemes) {
      // 9-64 rows: tiled int4 takes the GEMM (gemm_int4_mma.cu) with 2, 4 or 8 column tiles;
      // 70 rows: a 64-row GEMM chunk, then 6 rows through the GEMV.
      for (int rows : {1, 3, 8, 9, 17, 33, 64, 70})
        check_scheme_matmul(*gpu, *cpu, rng, rep, s, rows, 1000, 2048, false);
      check_scheme_matmul(*gpu, *cpu, rng, rep, s, 300, 512, 1024, false);
      check_scheme_matmul(*gpu, *cpu, rng, rep, s, 1, 4096, 4096, false);
      check_scheme_matmul(*gpu, *cpu, rng, rep, s, 11, 3000, 512, true);
    }
    // The Llama-3.1-8B MLP shapes at decode and prefill sizes.
    for (QuantKind k : {QuantKind::kFp8, QuantKind::kInt4}) {
      const QuantScheme s = k == QuantKind::kFp8 ? schemes[0] : schemes[4];
      check_scheme_matmul(*gpu, *cpu, rng, rep, s, 2, 14336, 4096, false);
      check_scheme_matmul(*gpu, *cpu, rng, rep, s, 5, 4096, 14336, false);
      check_scheme_matmul(*gpu, *cpu, rng, rep, s, 128, 4096, 14336, false);
      check_scheme_matmul(*gpu, *cpu, rng, rep, s, 64, 14336, 4096, false);
      check_scheme_matmul(*gpu, *cpu, rng, rep, s, 40, 4096, 14336, false);
    }
    for (DType t :
         {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
      for (int rows : {1, 3, 8, 9, 64}) check_gguf_matmul(*gpu, rng, rep, t, rows, 300, 512, false);
      check_gguf_matmul(*gpu, rng, rep, t, 1, 96, 1536, false);  // a group of 32 threads per row
      check_gguf_matmul(*gpu, rng, rep, t, 11, 1000, 256, true);
      for (int rows : {1, 5, 8, 20}) check_fused_gguf(*gpu, *cpu, rng, rep, t, rows);
    }
    for (int rows : {1, 4, 16}) check_fused(*gpu, *cpu, rng, rep, rows);
    for (QuantKind k : {QuantKind::kInt4, QuantKind::kFp8}) {
      // 20-64 rows: int4 takes the fused GEMM launches, fp8 the separate matmuls.
      for (int rows : {1, 2, 5, 8, 20, 40, 64}) check_fused_same(*gpu, *cpu, rng, rep, k, rows);
    }
    for (KvDtype t : {KvDtype::kBF16, KvDtype::kFp8, KvDtype::kInt8}) {
      for (int d : {64, 128}) check_kv_cache(*gpu, *cpu, rep, t, d);
    }
    rep.check(dynamic_cast<cuda::CudaOps&>(*gpu).fp8_gemm_active(), "fp8_gemm_active",
              "cuBLASLt FP8 ran the W8A8 rows (else they fell back to dequantize + bf16)");
  } catch (const std::exception& e) {
    rep.check(false, "exception", e.what());
  }
  return rep.finish("quant_check");
}
