// Model-level benchmark of the CUDA backend with random bf16 weights of the Llama-3.1-8B
// shape (16.06 GB of weights). Runs the Llama forward pass directly over Ops (the same op
// sequence as model/llama_model.cpp), with CUDA graphs for decode steps and greedy sampling
// on the GPU every step:
//   1. batch-1 decode tokens/s (vs weight bandwidth: 16.06 GB/token at ~3.9 TB/s = 243 tok/s)
//      and host time per step with and without graphs;
//   2. prefill tokens/s for 2k-token prompts;
//   3. offline throughput, all requests queued at once, for in/out = 128/128, 1000/1000,
//      2048/2048 (output tokens / total wall time, prefill included).
// Options: --quick (one offline scenario); --decode-only (batch 1-64 decode, nothing else);
// --gemv-only (each projection alone at 1-64 rows); --weights bf16|fp8|int8|int4 (the
// projections kept quantized on the GPU: fp8 e4m3 per channel, int8 / int4 symmetric in groups of
// 128; the embedding and LM head stay bf16, as in FP8 / GPTQ / AWQ checkpoints).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "bench/cuda/bench_util.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/fp8.h"

using namespace tessera;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape {
  int vocab = 128256, dim = 4096, ffn = 14336, layers = 32, heads = 32, kv_heads = 8,
      head_dim = 128;
  float eps = 1e-5f;
};

struct Layer {
  Weight attn_norm, wq, wk, wv, wo, ffn_norm, wg, wu, wd;
};

// Fills device bytes with random codes of a quantization scheme (never NaN for fp8) by tiling
// a 16 MiB random block, like fill_random_bf16.
void fill_random_codes(void* dst, size_t bytes, QuantKind kind, uint64_t seed) {
  constexpr size_t kTile = 16u << 20;
  static std::vector<uint8_t> host;
  static void* tile = nullptr;
  static QuantKind tile_kind = QuantKind::kDense;
  if (!tile || tile_kind != kind) {
    host.resize(kTile);
    std::mt19937_64 gen(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& b : host) {
      const float v = nd(gen);
      b = kind == QuantKind::kFp8 ? f32_to_fp8_e4m3(v * 100.f)
                                  : static_cast<uint8_t>(gen() & 0xff);  // any int8 / int4 codes
    }
    if (!tile) cuda::check_cuda(cudaMalloc(&tile, kTile), "cudaMalloc(tile)");
    cuda::check_cuda(cudaMemcpy(tile, host.data(), kTile, cudaMemcpyHostToDevice), "tile");
    tile_kind = kind;
  }
  const size_t shift = (seed * 2654435761u) % (kTile / 2);
  for (size_t off = 0; off < bytes; off += kTile - shift) {
    const size_t n = std::min(kTile - shift, bytes - off);
    cuda::check_cuda(cudaMemcpy(static_cast<uint8_t*>(dst) + off,
                                static_cast<uint8_t*>(tile) + shift, n, cudaMemcpyDeviceToDevice),
                     "fill");
  }
}

class Model {
 public:
  Model(cuda::CudaOps& ops, const Shape& s, QuantKind weights = QuantKind::kDense)
      : ops_(ops), s_(s), quant_(weights) {
    uint64_t seed = 1;
    embed_ = matrix(s.vocab, s.dim, 1.0f, seed++);
    out_ = matrix(s.vocab, s.dim, 0.02f, seed++);
    out_norm_ = vector(s.dim);
    for (int l = 0; l < s.layers; ++l) {
      Layer L;
      L.attn_norm = vector(s.dim);
      L.ffn_norm = vector(s.dim);
      L.wq = projection(s.heads * s.head_dim, s.dim, 0.02f, seed++);
      L.wk = projection(s.kv_heads * s.head_dim, s.dim, 0.02f, seed++);
      L.wv = projection(s.kv_heads * s.head_dim, s.dim, 0.02f, seed++);
      L.wo = projection(s.dim, s.heads * s.head_dim, 0.02f, seed++);
      L.wg = projection(s.ffn, s.dim, 0.02f, seed++);
      L.wu = projection(s.ffn, s.dim, 0.02f, seed++);
      L.wd = projection(s.dim, s.ffn, 0.02f, seed++);
      layers_.push_back(L);
    }
    rope_.theta = 500000.f;
    rope_.scaling_factor = 8.f;
    rope_.neox = true;
    attn_ = {s.heads, s.kv_heads, s.head_dim, 1.0f / std::sqrt(float(s.head_dim)), 0};
  }
  ~Model() {
    kv_.reset();
    for (void* p : buffers_) ops_.free(p);
  }

  double weight_bytes() const { return bytes_; }

  // Each projection of layer 0 alone at `rows` rows: 50 launches back to back in one CUDA
  // graph, median over 20 graph launches, per launch; and the weight bytes per microsecond.
  void time_projections(int rows) {
    reserve(std::max(rows, 8), 8);
    const std::pair<const char*, const Weight*> ws[] = {{"q", &layers_[0].wq},
                                                        {"k", &layers_[0].wk},
                                                        {"o", &layers_[0].wo},
                                                        {"gate", &layers_[0].wg},
                                                        {"down", &layers_[0].wd}};
    cudaStream_t st = ops_.stream();
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    constexpr int kLaunches = 50;
    const char* only = std::getenv("TESSERA_BENCH_ONLY");  // one projection, e.g. for ncu
    for (const auto& [name, w] : ws) {
      if (only != nullptr && std::strcmp(only, name) != 0) continue;
      void* x = name[0] == 'd' ? gate_ : h_;
      ops_.matmul(x, rows, *w, up_);  // any one-time setup outside the capture
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      cuda::check_cuda(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), "capture");
      for (int i = 0; i < kLaunches; ++i) ops_.matmul(x, rows, *w, up_);
      cuda::check_cuda(cudaStreamEndCapture(st, &graph), "capture");
      cuda::check_cuda(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
      std::vector<double> us;
      for (int rep = 0; rep < 25; ++rep) {
        cudaEventRecord(a, st);
        cudaGraphLaunch(exec, st);
        cudaEventRecord(b, st);
        cudaEventSynchronize(b);
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        if (rep >= 5) us.push_back(ms * 1e3 / kLaunches);
      }
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
      const double bytes = double(w->rows) * w->cols *
                           (quant_ == QuantKind::kInt4    ? 0.5
                            : quant_ == QuantKind::kDense ? 2
                                                          : 1);
      const double t = bench::median(us);
      std::printf("matmul %-4s %5lld x %5lld, %d rows: %7.1f us = %.2f TB/s\n", name,
                  static_cast<long long>(w->rows), static_cast<long long>(w->cols), rows, t,
                  bytes / t / 1e6);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }

  // Activation buffers for up to max_tokens rows and max_logits logit rows.
  void reserve(int max_tokens, int max_logits) {
    for (void* p : buffers_) ops_.free(p);
    buffers_.clear();
    auto a = [&](size_t bytes) {
      buffers_.push_back(ops_.alloc(bytes));
      return buffers_.back();
    };
    const size_t t = max_tokens;
    resid_ = a(ops_.residual_bytes(int64_t(t) * s_.dim));
    h_ = a(t * s_.dim * 2);
    q_ = a(t * s_.heads * s_.head_dim * 2);
    k_ = a(t * s_.kv_heads * s_.head_dim * 2);
    v_ = a(t * s_.kv_heads * s_.head_dim * 2);
    att_ = a(t * s_.heads * s_.head_dim * 2);
    o_ = a(t * s_.dim * 2);
    gate_ = a(t * s_.ffn * 2);
    up_ = a(t * s_.ffn * 2);
    hl_ = a(size_t(max_logits) * s_.dim * 2);
    logits_ = static_cast<float*>(a(size_t(max_logits) * s_.vocab * 4));
  }

  // The step's ops after begin_step: embedding .. lm_head (graph-capturable).
  void forward(int tokens, int logit_rows) {
    ops_.embedding(embed_, resid_);
    for (int l = 0; l < s_.layers; ++l) {
      const Layer& L = layers_[l];
      ops_.add_rms_norm(resid_, l == 0 ? nullptr : o_, L.attn_norm, s_.eps, h_);
      const Weight* qkv[] = {&L.wq, &L.wk, &L.wv};
      void* const qkv_out[] = {q_, k_, v_};
      ops_.matmul_multi(h_, tokens, qkv, qkv_out);
      ops_.rope_store_kv(*kv_, q_, k_, v_, l, attn_, rope_);
      ops_.paged_attention(*kv_, q_, l, attn_, att_);
      ops_.matmul(att_, tokens, L.wo, o_);
      ops_.add_rms_norm(resid_, o_, L.ffn_norm, s_.eps, h_);
      ops_.gate_up_silu(h_, tokens, L.wg, L.wu, up_, gate_);
      ops_.matmul(gate_, tokens, L.wd, o_);
    }
    ops_.add_rms_norm(resid_, o_, out_norm_, s_.eps, h_);
    ops_.gather_logit_rows(h_, s_.dim, hl_);
    ops_.lm_head(hl_, logit_rows, out_, logits_);
  }

  const float* logits() const { return logits_; }
  // The model's KV cache (replaced by each run that needs a different size).
  void init_cache(int blocks, KvDtype dtype) {
    kv_.reset();
    KvCacheShape kv{s_.layers, blocks, 16, s_.kv_heads, s_.head_dim, dtype, s_.heads};
    kv_ = ops_.make_kv_cache(kv);
  }
  KvCache& kv() { return *kv_; }

 private:
  Weight matrix(int rows, int cols, float std, uint64_t seed) {
    Weight w;
    w.dtype = DType::kBF16;
    w.rows = rows;
    w.cols = cols;
    const size_t bytes = size_t(rows) * cols * 2;
    void* p = ops_.alloc(bytes);
    bench::fill_random_bf16(p, bytes, std, seed);
    w.data = p;
    cuda::CudaOps* ops = &ops_;
    w.owner = std::shared_ptr<void>(p, [ops](void* q) { ops->free(q); });
    bytes_ += bytes;
    return w;
  }
  // A projection: bf16, or kept quantized in the scheme given to the constructor.
  Weight projection(int rows, int cols, float std, uint64_t seed) {
    if (quant_ == QuantKind::kDense) return matrix(rows, cols, std, seed);
    constexpr int kGroup = 128;
    Weight w;
    w.dtype = DType::kBF16;  // unused by a scheme
    w.rows = rows;
    w.cols = cols;
    w.scheme.kind = quant_;
    w.scheme.per_channel = quant_ == QuantKind::kFp8;
    w.scheme.group_size = quant_ == QuantKind::kFp8 ? 0 : kGroup;
    w.num_groups = quant_ == QuantKind::kFp8 ? 1 : (cols + kGroup - 1) / kGroup;
    const size_t data_bytes =
        quant_ == QuantKind::kInt4 ? size_t(rows) * cols / 2 : size_t(rows) * cols;
    const size_t scales = quant_ == QuantKind::kFp8 ? size_t(rows) : size_t(rows) * w.num_groups;
    auto* p = static_cast<uint8_t*>(ops_.alloc(data_bytes + scales * 4));
    fill_random_codes(p, data_bytes, quant_, seed);
    // Scales that keep the values near N(0, std): codes span about +-100 (fp8), 127, 8.
    const float sc = std * (quant_ == QuantKind::kFp8    ? 0.01f
                            : quant_ == QuantKind::kInt8 ? 0.02f
                                                         : 0.3f);
    std::vector<float> host(scales, sc);
    ops_.to_device(p + data_bytes, host.data(), scales * 4);
    w.data = p;
    w.scales = reinterpret_cast<const float*>(p + data_bytes);
    cuda::CudaOps* ops = &ops_;
    w.owner = std::shared_ptr<void>(p, [ops](void* q) { ops->free(q); });
    bytes_ += double(data_bytes + scales * 4);
    return w;
  }
  Weight vector(int n) {
    std::vector<float> g(n);
    for (int i = 0; i < n; ++i) g[i] = 1.0f + 0.01f * float(i % 7);
    HostTensor h{DType::kF32, 1, n, g.data()};
    return ops_.upload(h);
  }

  cuda::CudaOps& ops_;
  Shape s_;
  Weight embed_, out_, out_norm_;
  std::vector<Layer> layers_;
  std::unique_ptr<KvCache> kv_;
  QuantKind quant_ = QuantKind::kDense;
  RopeConfig rope_;
  AttentionParams attn_;
  double bytes_ = 0;
  std::vector<void*> buffers_;
  void *resid_ = nullptr, *h_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr,
       *att_ = nullptr, *o_ = nullptr, *gate_ = nullptr, *up_ = nullptr, *hl_ = nullptr;
  float* logits_ = nullptr;
};

// Sequences with fixed block ranges: sequence i owns blocks [1 + i * per_seq, ...).
struct Batch {
  int block_size = 16;
  int per_seq = 0;
  std::vector<int> len;     // tokens cached so far
  std::vector<int> target;  // prompt + output
};

StepLayout make_step(const Batch& b, const std::vector<int>& seqs, const std::vector<int>& chunk) {
  StepLayout l;
  l.block_size = b.block_size;
  l.query_start.push_back(0);
  l.block_table_start.push_back(0);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const int s = seqs[i], start = b.len[s], n = chunk[i];
    const int ctx = start + n;
    const int first = 1 + s * b.per_seq;
    for (int blk = 0; blk < (ctx + b.block_size - 1) / b.block_size; ++blk) {
      l.block_tables.push_back(first + blk);
    }
    for (int t = 0; t < n; ++t) {
      const int pos = start + t;
      l.tokens.push_back((s * 7919 + pos * 31) % 128000 + 1);
      l.positions.push_back(pos);
      l.slot_mapping.push_back((first + pos / b.block_size) * b.block_size + pos % b.block_size);
    }
    l.query_start.push_back(static_cast<int32_t>(l.tokens.size()));
    l.context_len.push_back(ctx);
    l.block_table_start.push_back(static_cast<int32_t>(l.block_tables.size()));
    l.logit_rows.push_back(static_cast<int32_t>(l.tokens.size()) - 1);
  }
  return l;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct RunResult {
  double prefill_s = 0, decode_s = 0;
  std::vector<double> step_ms, host_us;
};

// Prefills every sequence (token budget per step), then decodes all of them together,
// sampling greedily on the GPU each step. Graphs are keyed by the batch size.
RunResult run_batch(cuda::CudaOps& ops, Model& m, int num_seqs, int in_len, int out_len,
                    bool graphs, int token_budget) {
  Batch b;
  b.per_seq = (in_len + out_len + b.block_size - 1) / b.block_size;
  b.len.assign(num_seqs, 0);
  RunResult r;
  std::vector<SampleSpec> specs;
  std::vector<int32_t> sampled;
  auto t0 = Clock::now();
  // Prefill: whole prompts packed up to the token budget (chunked when a prompt exceeds it).
  int next = 0, offset = 0;
  while (next < num_seqs) {
    std::vector<int> seqs, chunk;
    int used = 0;
    while (next < num_seqs && used < token_budget) {
      const int n = std::min(in_len - offset, token_budget - used);
      seqs.push_back(next);
      chunk.push_back(n);
      used += n;
      offset += n;
      if (offset == in_len) ++next, offset = 0;
    }
    StepLayout l = make_step(b, seqs, chunk);
    ops.begin_step(l, m.kv());
    m.forward(l.num_tokens(), static_cast<int>(l.logit_rows.size()));
    specs.assign(l.logit_rows.size(), SampleSpec{0.f, 0, 1.f, 0, 0});
    sampled.resize(specs.size());
    ops.sample_on_device(m.logits(), static_cast<int>(specs.size()), 128256, specs, sampled, {});
    for (size_t i = 0; i < seqs.size(); ++i) b.len[seqs[i]] += chunk[i];
  }
  ops.synchronize();
  r.prefill_s = seconds_since(t0);
  // Decode: every sequence one token per step (the prefill produced the first output token).
  std::vector<int> all(num_seqs), ones(num_seqs, 1);
  for (int i = 0; i < num_seqs; ++i) all[i] = i;
  specs.assign(num_seqs, SampleSpec{0.f, 0, 1.f, 0, 0});
  sampled.resize(num_seqs);
  auto t1 = Clock::now();
  for (int step = 1; step < out_len; ++step) {
    auto ts = Clock::now();
    StepLayout l = make_step(b, all, ones);
    ops.begin_step(l, m.kv());
    if (!graphs) {
      m.forward(num_seqs, num_seqs);
    } else if (!ops.graph_replay(uint64_t(num_seqs))) {
      ops.graph_capture_begin(uint64_t(num_seqs));
      m.forward(num_seqs, num_seqs);
      ops.graph_capture_end();
    }
    r.host_us.push_back(seconds_since(ts) * 1e6);  // host work to issue the step
    ops.sample_on_device(m.logits(), num_seqs, 128256, specs, sampled, {});
    r.step_ms.push_back(seconds_since(ts) * 1e3);
    for (int i = 0; i < num_seqs; ++i) b.len[i] += 1;
  }
  r.decode_s = seconds_since(t1);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto has = [&](const char* f) { return std::find(args.begin(), args.end(), f) != args.end(); };
  try {
    QuantKind quant = QuantKind::kDense;
    std::string weights_name = "bf16";
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] != "--weights") continue;
      weights_name = args[i + 1];
      quant = weights_name == "fp8"    ? QuantKind::kFp8
              : weights_name == "int8" ? QuantKind::kInt8
              : weights_name == "int4" ? QuantKind::kInt4
                                       : QuantKind::kDense;
      if (quant == QuantKind::kDense && weights_name != "bf16") {
        throw std::runtime_error("--weights must be bf16, fp8, int8 or int4");
      }
    }
    cuda::CudaOps ops(0);
    Shape s;
    if (has("--gemv-only")) {
      s.layers = 1;
      Model m(ops, s, quant);
      for (int rows : {1, 4, 8, 16, 32, 64}) m.time_projections(rows);
      return 0;
    }
    Model m(ops, s, quant);
    std::printf("# Llama-3.1-8B shape, random %s weights: %.2f GB (embedding and LM head bf16)\n",
                weights_name.c_str(), m.weight_bytes() / 1e9);
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    const double block_bytes = double(s.layers) * 2 * 16 * s.kv_heads * s.head_dim * 2;
    const int token_budget = 8192;
    m.reserve(token_budget, 512);
    cudaMemGetInfo(&free_b, &total_b);
    const int max_blocks = static_cast<int>((free_b - (4ull << 30)) / block_bytes);
    std::printf("KV capacity: %d blocks (%.0f k tokens)\n", max_blocks, max_blocks * 16 / 1e3);

    auto init_cache = [&](int blocks) { m.init_cache(blocks, KvDtype::kBF16); };

    // 1. batch-1 decode, with and without graphs.
    init_cache(1 + (128 + 257 + 15) / 16 + 1);
    for (bool graphs : {false, true}) {
      RunResult r = run_batch(ops, m, 1, 128, 257, graphs, token_budget);
      std::vector<double> steps(r.step_ms.begin() + 8, r.step_ms.end());
      std::vector<double> host(r.host_us.begin() + 8, r.host_us.end());
      const double ms = bench::median(steps);
      std::printf(
          "batch-1 decode (%s): median %.3f ms/token = %.1f tok/s; weights %.2f TB/s = "
          "%.0f%% of the %.0f tok/s that 3.9 TB/s of weights allow; host time to issue a step "
          "%.0f us\n",
          graphs ? "CUDA graph" : "eager", ms, 1e3 / ms, m.weight_bytes() / (ms * 1e-3) / 1e12,
          100 * (1e3 / ms) / (3.9e12 / m.weight_bytes()), 3.9e12 / m.weight_bytes(),
          bench::median(host));
      std::fflush(stdout);
    }
    if (has("--decode-only")) {
      // Small-batch decode (the quantized GEMV's range), CUDA graphs, then stop.
      for (int n : {2, 4, 8, 16, 32, 64}) {
        init_cache(1 + n * ((128 + 257 + 15) / 16 + 1));
        RunResult r = run_batch(ops, m, n, 128, 257, true, token_budget);
        std::vector<double> steps(r.step_ms.begin() + 8, r.step_ms.end());
        const double ms = bench::median(steps);
        std::printf("batch-%d decode (CUDA graph): median %.3f ms/step = %.1f tok/s\n", n, ms,
                    n * 1e3 / ms);
      }
      return 0;
    }

    // 2. prefill tokens/s for 2k prompts (1 and 4 prompts per step).
    for (int n : {1, 4}) {
      init_cache(1 + n * 129);
      run_batch(ops, m, n, 2048, 1, false, token_budget);  // warm-up
      std::vector<double> t;
      for (int rep = 0; rep < 5; ++rep)
        t.push_back(run_batch(ops, m, n, 2048, 1, false, token_budget).prefill_s);
      const double sec = bench::median(t);
      std::printf(
          "prefill %d x 2048 tokens: %.1f ms = %.0f tok/s (%.0f TFLOP/s of dense GEMM work)\n", n,
          sec * 1e3, n * 2048 / sec, 2.0 * 7.5e9 * n * 2048 / sec / 1e12);
      std::fflush(stdout);
    }

    // 3. offline throughput: all requests at once, as many as the KV cache holds (<= cap).
    struct Scenario {
      int in, out, cap;
    };
    std::vector<Scenario> scenarios = {{128, 128, 512}, {1000, 1000, 256}, {2048, 2048, 256}};
    if (has("--quick")) scenarios = {{128, 128, 256}};
    for (const Scenario& sc : scenarios) {
      const int per_seq = (sc.in + sc.out + 15) / 16;
      const int n = std::min(sc.cap, (max_blocks - 1) / per_seq);
      init_cache(1 + n * per_seq);
      m.reserve(std::max(token_budget, n), n);
      RunResult r = run_batch(ops, m, n, sc.in, sc.out, true, token_budget);
      const double total = r.prefill_s + r.decode_s;
      std::printf(
          "offline %d/%d, %d requests at once: %.1f s (prefill %.1f s, decode %.1f s, median "
          "step %.2f ms) -> %.0f output tok/s\n",
          sc.in, sc.out, n, total, r.prefill_s, r.decode_s, bench::median(r.step_ms),
          double(n) * sc.out / total);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::printf("FAIL llama_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
