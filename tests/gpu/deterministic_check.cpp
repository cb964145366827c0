// Deterministic mode on the GPU (Ops::set_deterministic):
//   1. the batch-invariant GEMM: rows computed in any batch (1..64 rows, any offset) are
//      bitwise equal to the same rows of a 64-row call, and close to an fp64 reference;
//   2. the whole model: 32 sequences decoded together give bitwise the logits each gets
//      alone, and a prompt prefilled in a batch (chunked differently) gives its solo logits;
//      the same without deterministic mode is reported (not gated).
// Usage: gpu_deterministic_check [MODEL.gguf] [--cpu]   (--cpu: part 2 on the CPU backend,
// to check this harness without a GPU).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/weights.h"
#include "tests/gpu/check_common.h"
#include "tests/gpu/single_seq_step.h"

using namespace tessera;
using namespace tessera::gpu_check;

namespace {

constexpr int kBlock = 16;
constexpr int kSeqBlocks = 5;  // blocks per sequence: 80 positions

bool same_bits(const void* a, const void* b, size_t bytes) {
  return std::memcmp(a, b, bytes) == 0;
}

// Part 1: out = x W^T through matmul (bf16 out) or lm_head (f32 out) in deterministic mode.
void check_gemm(Ops& ops, Rng& rng, Report& rep, int n, int k, bool f32_out) {
  constexpr int kRows = 64;
  const Bf16Data x = random_bf16(rng, size_t(kRows) * k);
  const Bf16Data w = random_bf16(rng, size_t(n) * k, 0.05f);
  HostTensor t;
  t.dtype = DType::kBF16;
  t.rows = n;
  t.cols = k;
  t.data = w.bits.data();
  const Weight dw = ops.upload(t);
  DevBuf dx(ops, x.bits.size() * 2);
  dx.upload(x.bits);
  const size_t elem = f32_out ? 4 : 2;
  DevBuf full(ops, size_t(kRows) * n * elem), part(ops, size_t(kRows) * n * elem);
  auto run = [&](const void* xp, int rows, void* out) {
    if (f32_out) {
      ops.lm_head(xp, rows, dw, static_cast<float*>(out));
    } else {
      ops.matmul(xp, rows, dw, out);
    }
  };
  full.poison();
  run(dx.get(), kRows, full.get());
  std::vector<uint8_t> ref_bytes(size_t(kRows) * n * elem);
  ops.to_host(ref_bytes.data(), full.get(), ref_bytes.size());

  // Accuracy of the 64-row result against fp64.
  std::vector<double> got(size_t(kRows) * n), want(size_t(kRows) * n, 0.0);
  for (size_t i = 0; i < got.size(); ++i) {
    if (f32_out) {
      float v;
      std::memcpy(&v, ref_bytes.data() + i * 4, 4);
      got[i] = v;
    } else {
      uint16_t v;
      std::memcpy(&v, ref_bytes.data() + i * 2, 2);
      got[i] = bf16_to_f32(v);
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < n; ++c) {
      double s = 0;
      for (int j = 0; j < k; ++j) s += x.values[size_t(r) * k + j] * w.values[size_t(c) * k + j];
      want[size_t(r) * n + c] = s;
    }
  const std::string shape = std::to_string(n) + "x" + std::to_string(k) + (f32_out ? " f32" : "");
  const ErrorStats st = compare(got, want, n);
  rep.check(bf16_ok(st), "gemm_invariant/accuracy " + shape, describe(st));

  // Every batch size, at the start and at the end of the 64 rows, bitwise.
  int mismatched = 0, tried = 0;
  for (int m : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63}) {
    for (int r0 : {0, kRows - m}) {
      part.poison();
      run(static_cast<const uint8_t*>(dx.get()) + size_t(r0) * k * 2, m, part.get());
      std::vector<uint8_t> p(size_t(m) * n * elem);
      ops.to_host(p.data(), part.get(), p.size());
      ++tried;
      if (!same_bits(p.data(), ref_bytes.data() + size_t(r0) * n * elem, p.size())) ++mismatched;
    }
  }
  rep.check(mismatched == 0, "gemm_invariant/batch_invariance " + shape,
            std::to_string(tried - mismatched) + "/" + std::to_string(tried) +
                " sub-batches bitwise equal");
}

// Sequence s owns blocks [1 + s * kSeqBlocks, ...).
void add_seq(StepLayout& l, int s, const std::vector<int32_t>& toks, int from, int to) {
  for (int p = from; p < to; ++p) {
    l.tokens.push_back(toks[p]);
    l.positions.push_back(p);
    l.slot_mapping.push_back((1 + s * kSeqBlocks + p / kBlock) * kBlock + p % kBlock);
  }
  l.query_start.push_back(l.num_tokens());
  l.context_len.push_back(to);
  for (int b = 0; b < kSeqBlocks; ++b) l.block_tables.push_back(1 + s * kSeqBlocks + b);
  l.block_table_start.push_back(static_cast<int32_t>(l.block_tables.size()));
}
StepLayout empty_step() {
  StepLayout l;
  l.block_size = kBlock;
  l.query_start = {0};
  l.block_table_start = {0};
  return l;
}

struct ModelRun {
  int rows_equal = 0;     // decode rows bitwise equal alone and in the batch of 32
  int argmax_equal = 0;   // ... with the same greedy token
  int prefill_equal = 0;  // prompts whose last-token logits equal alone vs batched prefill
};

// Part 2 on one backend: prefill 32 prompts together (the batch), decode 4 tokens of all 32
// together; then each sequence again alone (its own prefill, its own decodes).
ModelRun run_model(Ops& ops, const LoadedModel& lm, Rng& rng) {
  constexpr int kSeqs = 32, kDecode = 4;
  const size_t vocab = size_t(lm.config.vocab_size);
  LlamaModel model(lm.config, lm.weights, ops);
  model.init_kv_cache(1 + kSeqs * kSeqBlocks, kBlock);
  std::vector<std::vector<int32_t>> seqs(kSeqs);
  for (auto& s : seqs) {
    const int len = rng.uniform_int(5, 40) + kDecode;
    for (int i = 0; i < len; ++i) s.push_back(rng.uniform_int(10, int(vocab) - 1));
  }
  auto prompt_len = [&](int s) { return int(seqs[s].size()) - kDecode; };
  // Batched: all prompts in one step (every last prompt token a logit row), then decodes.
  std::vector<std::vector<float>> batch_prefill(kSeqs), batch_decode(kSeqs);
  StepLayout p = empty_step();
  for (int s = 0; s < kSeqs; ++s) {
    add_seq(p, s, seqs[s], 0, prompt_len(s));
    p.logit_rows.push_back(p.num_tokens() - 1);
  }
  std::vector<float> logits;
  model.forward(p, logits);
  for (int s = 0; s < kSeqs; ++s)
    batch_prefill[s].assign(logits.begin() + s * vocab, logits.begin() + (s + 1) * vocab);
  for (int d = 0; d < kDecode; ++d) {
    StepLayout step = empty_step();
    for (int s = 0; s < kSeqs; ++s) {
      add_seq(step, s, seqs[s], prompt_len(s) + d, prompt_len(s) + d + 1);
      step.logit_rows.push_back(s);
    }
    model.forward(step, logits);
    for (int s = 0; s < kSeqs; ++s)
      batch_decode[s].insert(batch_decode[s].end(), logits.begin() + s * vocab,
                             logits.begin() + (s + 1) * vocab);
  }
  // Alone: each prompt in chunks of 7 (another chunking than the batch's), then its decodes.
  ModelRun r;
  for (int s = 0; s < kSeqs; ++s) {
    for (int from = 0; from < prompt_len(s); from += 7) {
      StepLayout one = empty_step();
      const int to = std::min(prompt_len(s), from + 7);
      add_seq(one, s, seqs[s], from, to);
      one.logit_rows = {to - from - 1};
      model.forward(one, logits);
    }
    r.prefill_equal += same_bits(logits.data(), batch_prefill[s].data(), vocab * 4);
    bool rows = true, tokens = true;
    for (int d = 0; d < kDecode; ++d) {
      StepLayout one = empty_step();
      add_seq(one, s, seqs[s], prompt_len(s) + d, prompt_len(s) + d + 1);
      one.logit_rows = {0};
      model.forward(one, logits);
      const float* b = batch_decode[s].data() + d * vocab;
      rows = rows && same_bits(logits.data(), b, vocab * 4);
      tokens =
          tokens && gpucheck::argmax(logits) == gpucheck::argmax(std::vector<float>(b, b + vocab));
    }
    r.rows_equal += rows;
    r.argmax_equal += tokens;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  bool cpu = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cpu") {
      cpu = true;
    } else {
      path = a;
    }
  }
  Report rep;
  try {
    if (!cpu) {
      auto ops = make_cuda_ops(0);
      ops->set_deterministic(true);
      Rng rng(7);
      check_gemm(*ops, rng, rep, 1536, 576, false);   // SmolLM2 gate/up
      check_gemm(*ops, rng, rep, 576, 1536, false);   // down
      check_gemm(*ops, rng, rep, 4096, 4096, false);  // wide tiles
      check_gemm(*ops, rng, rep, 200, 40, false);     // k not a multiple of 32
      check_gemm(*ops, rng, rep, 8192, 576, true);    // LM head (f32 logits)
    }
    const LoadedModel lm = load_model(path);
    for (bool det : {true, false}) {
      auto ops = cpu ? make_cpu_ops(0) : make_cuda_ops(0);
      ops->set_deterministic(det);
      Rng rng(11);
      const ModelRun r = run_model(*ops, lm, rng);
      const std::string detail = std::to_string(r.rows_equal) + "/32 decode logits bitwise, " +
                                 std::to_string(r.argmax_equal) + "/32 greedy tokens, " +
                                 std::to_string(r.prefill_equal) + "/32 prefill logits bitwise";
      if (det) {
        rep.check(r.rows_equal == 32 && r.argmax_equal == 32 && r.prefill_equal == 32,
                  "model/deterministic batch of 32 vs alone", detail);
      } else {
        std::printf("INFO model/default (not deterministic) batch of 32 vs alone: %s\n",
                    detail.c_str());
      }
    }
  } catch (const std::exception& e) {
    rep.check(false, "deterministic_check", std::string("exception: ") + e.what());
  }
  return rep.finish("gpu_deterministic_check");
}
