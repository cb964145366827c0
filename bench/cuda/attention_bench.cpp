// Paged attention benchmark (Llama-3.1-8B attention shape: 32 query heads, 8 KV heads,
// head_dim 128, bf16 KV, block size 16).
//   decode:  batch 1..256 x context 512..32k; achieved KV bandwidth = K+V bytes read / time,
//            against the ~4.0 TB/s copy ceiling.
//   prefill: causal self-attention of L-token prompts; TFLOP/s = 2 * 2 * H * D * L^2 / 2 / t,
//            against 790 TFLOP/s (cuBLAS bf16 GEMM).
// Each measurement replays a CUDA graph of kCalls launches that cycle through several
// layers' caches (so the KV does not sit in L2) and reports the median per launch.
#include <cmath>
#include <cstdio>
#include <string>

#include "bench/cuda/bench_util.h"
#include "kernels/cuda/cuda_ops.h"

using namespace tessera;

namespace {

constexpr int kHeads = 32, kKvHeads = 8, kDim = 128, kBlock = 16, kCalls = 20;
constexpr double kCopyCeilingTBs = 4.0, kGemmCeilingTflops = 790.0;

StepLayout layout_for(int batch, int qlen, int ctx) {
  StepLayout l;
  l.block_size = kBlock;
  const int blocks = (ctx + kBlock - 1) / kBlock;
  l.query_start.push_back(0);
  l.block_table_start.push_back(0);
  for (int s = 0; s < batch; ++s) {
    for (int b = 0; b < blocks; ++b) l.block_tables.push_back(1 + s * blocks + b);
    for (int t = 0; t < qlen; ++t) {
      const int pos = ctx - qlen + t;
      l.tokens.push_back(1);
      l.positions.push_back(pos);
      l.slot_mapping.push_back((1 + s * blocks + pos / kBlock) * kBlock + pos % kBlock);
    }
    l.query_start.push_back(static_cast<int32_t>(l.tokens.size()));
    l.context_len.push_back(ctx);
    l.block_table_start.push_back(static_cast<int32_t>(l.block_tables.size()));
    l.logit_rows.push_back(static_cast<int32_t>(l.tokens.size()) - 1);
  }
  return l;
}

// Returns median ms per paged_attention call.
double run(cuda::CudaOps& ops, int batch, int qlen, int ctx, size_t* kv_bytes) {
  const int blocks = 1 + batch * ((ctx + kBlock - 1) / kBlock);
  const size_t layer_bytes = size_t(blocks) * kBlock * kKvHeads * kDim * 2 * 2;
  // Enough layers to exceed L2 several times, within ~48 GB.
  int layers = static_cast<int>(std::ceil(512e6 / layer_bytes));
  layers = std::max(1, std::min({layers, 16, static_cast<int>(48e9 / layer_bytes)}));
  KvCacheShape shape{layers, blocks, kBlock, kKvHeads, kDim, KvDtype::kBF16, kHeads};
  auto kv_owner = ops.make_kv_cache(shape);
  auto& kv = dynamic_cast<cuda::CudaKvCache&>(*kv_owner);
  for (int l = 0; l < layers; ++l) {
    bench::fill_random_bf16(kv.k_pool(l), layer_bytes / 2, 1.0f, 11 + l);
    bench::fill_random_bf16(kv.v_pool(l), layer_bytes / 2, 1.0f, 97 + l);
  }
  StepLayout layout = layout_for(batch, qlen, ctx);
  ops.begin_step(layout, kv);
  const size_t qbytes = size_t(layout.num_tokens()) * kHeads * kDim * 2;
  void* q = ops.alloc(qbytes);
  void* out = ops.alloc(qbytes);
  bench::fill_random_bf16(q, qbytes, 1.0f, 5);
  AttentionParams attn{kHeads, kKvHeads, kDim, 1.0f / std::sqrt(float(kDim)), 0};
  ops.paged_attention(kv, q, 0, attn, out);  // warm-up outside capture
  ops.synchronize();
  const double ms = bench::time_graph_ms(
                        ops.stream(),
                        [&] {
    for (int i = 0; i < kCalls; ++i) ops.paged_attention(kv, q, i % layers, attn, out);
                        },
                        15) /
                    kCalls;
  ops.free(q);
  ops.free(out);
  *kv_bytes = size_t(batch) * ctx * kKvHeads * kDim * 2 * 2;
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  try {
    cuda::CudaOps ops(0);
    std::printf("## decode attention (H=%d Hkv=%d D=%d bf16, block %d)\n", kHeads, kKvHeads, kDim,
                kBlock);
    std::printf(
        "| batch | context | KV MB | us/call | TB/s | of %.1f TB/s |\n|---|---|---|---|---|---|\n",
        kCopyCeilingTBs);
    const std::vector<int> batches =
        quick ? std::vector<int>{1, 64} : std::vector<int>{1, 4, 16, 64, 256};
    const std::vector<int> contexts =
        quick ? std::vector<int>{4096} : std::vector<int>{512, 2048, 8192, 32768};
    for (int b : batches) {
      for (int c : contexts) {
        size_t bytes = 0;
        const double ms = run(ops, b, 1, c, &bytes);
        const double tbs = bytes / (ms * 1e-3) / 1e12;
        std::printf("| %d | %d | %.1f | %.1f | %.2f | %.0f%% |\n", b, c, bytes / 1e6, ms * 1e3, tbs,
                    100 * tbs / kCopyCeilingTBs);
        std::fflush(stdout);
      }
    }
    std::printf("\n## prefill attention (causal, H=%d Hkv=%d D=%d bf16)\n", kHeads, kKvHeads, kDim);
    std::printf("| batch x L | ms | TFLOP/s | of %.0f |\n|---|---|---|---|\n", kGemmCeilingTflops);
    const std::vector<std::pair<int, int>> prefills =
        quick ? std::vector<std::pair<int, int>>{{1, 2048}}
              : std::vector<std::pair<int, int>>{{1, 2048}, {1, 8192}, {4, 2048}, {1, 16384}};
    for (auto [b, l] : prefills) {
      size_t bytes = 0;
      const double ms = run(ops, b, l, l, &bytes);
      const double flops = 4.0 * kHeads * kDim * double(l) * l / 2 * b;
      const double tflops = flops / (ms * 1e-3) / 1e12;
      std::printf("| %d x %d | %.3f | %.0f | %.0f%% |\n", b, l, ms, tflops,
                  100 * tflops / kGemmCeilingTflops);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::printf("FAIL attention_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
