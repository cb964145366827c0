// Tensor parallelism on two GPUs of one host, in one process (one thread and one NCCL rank
// per GPU, the same LlamaModel and collectives the worker processes use):
//   1. TP=2 logits against TP=1 on the same dummy weights (same seed), teacher-forced on the
//      TP=1 greedy tokens: relative error per step and argmax agreement.
//   2. Batch-1 decode time per token, TP=1 vs TP=2 (CUDA events around the step, after
//      warm-up, median), and the share of a step the two all-reduces per layer take.
// Usage: gpu_tp_check MODEL_CONFIG.json [num_layers]   (e.g. configs/models/llama-3.1-8b.json)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/tp_model.h"
#include "tests/gpu/single_seq_step.h"

using namespace tessera;

namespace {

constexpr int kBlock = 16, kPrompt = 64, kDecode = 32, kBlocks = 64;

// Runs the prompt then kDecode teacher-forced steps; returns logits per step (rank 0 only)
// and the median decode step time in ms.
struct Run {
  std::vector<std::vector<float>> logits;
  double decode_ms = 0;
};

Run run(LlamaModel& m, const std::vector<int32_t>& tokens_all, bool want_logits) {
  Run r;
  std::vector<int32_t> tokens(tokens_all.begin(), tokens_all.begin() + kPrompt);
  std::vector<float> logits;
  std::vector<double> times;
  int start = 0;
  for (int i = 0; i <= kDecode; ++i) {
    m.ops().synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    m.forward(gpucheck::single_seq_step(tokens, start, kBlock), logits);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 4) times.push_back(ms);  // graphs captured, clocks up
    if (want_logits) r.logits.push_back(logits);
    start = static_cast<int>(tokens.size());
    if (i < kDecode) tokens.push_back(tokens_all[kPrompt + i]);
  }
  std::sort(times.begin(), times.end());
  r.decode_ms = times.empty() ? 0 : times[times.size() / 2];
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_CONFIG.json [num_layers]\n", argv[0]);
    return 2;
  }
  std::string spec = std::string("dummy:") + argv[1];
  if (argc > 2) {  // a shallower copy of the shape, for a quick logits check
    std::ifstream in(argv[1]);
    nlohmann::json j = nlohmann::json::parse(in);
    j["num_hidden_layers"] = std::stoi(argv[2]);
    const std::string path = "/tmp/tp_check_config.json";
    std::ofstream(path) << j.dump();
    spec = "dummy:" + path;
  }
  // Tokens: a fixed pseudo-random sequence (the dummy model has no tokenizer).
  std::vector<int32_t> tokens(kPrompt + kDecode);
  uint32_t x = 12345;
  for (auto& t : tokens) t = static_cast<int32_t>((x = x * 1664525u + 1013904223u) % 1000 + 100);

  Run solo;
  {
    auto ops = make_cuda_ops(0);
    TpModel tm = load_tp_model(spec, "", *ops, 0, 1);
    tm.model->init_kv_cache(kBlocks, kBlock);
    solo = run(*tm.model, tokens, true);
  }
  std::printf("TP=1 decode step: %.3f ms (%.1f tok/s)\n", solo.decode_ms, 1000 / solo.decode_ms);

  const std::string id = make_cuda_ops(0)->make_collective_id();
  Run tp[2];
  std::string error[2];
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank)
    threads.emplace_back([&, rank] {
      try {
        auto ops = make_cuda_ops(rank);
        ops->join_collectives(id, rank, 2);
        TpModel tm = load_tp_model(spec, "", *ops, rank, 2);
        tm.model->init_kv_cache(kBlocks, kBlock);
        tp[rank] = run(*tm.model, tokens, rank == 0);
      } catch (const std::exception& e) {
        error[rank] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int rank = 0; rank < 2; ++rank)
    if (!error[rank].empty()) {
      std::printf("FAIL rank %d: %s\n", rank, error[rank].c_str());
      return 1;
    }
  std::printf("TP=2 decode step: %.3f ms (%.1f tok/s), %.2fx of TP=1\n", tp[0].decode_ms,
              1000 / tp[0].decode_ms, solo.decode_ms / tp[0].decode_ms);

  double worst = 0;
  int agree = 0;
  for (size_t i = 0; i < solo.logits.size(); ++i) {
    const auto& a = solo.logits[i];
    const auto& b = tp[0].logits[i];
    double diff = 0, scale = 0;
    for (size_t v = 0; v < a.size(); ++v) {
      diff = std::max(diff, std::abs(static_cast<double>(a[v]) - b[v]));
      scale = std::max(scale, std::abs(static_cast<double>(a[v])));
    }
    worst = std::max(worst, diff / std::max(scale, 1e-6));
    agree += gpucheck::argmax(a) == gpucheck::argmax(b);
  }
  const int steps = static_cast<int>(solo.logits.size());
  const bool ok = worst < 3e-2 && agree >= steps * 9 / 10;
  std::printf(
      "%s TP=2 vs TP=1 logits: max relative error %.2e over %d steps, argmax agrees %d/%d\n",
      ok ? "PASS" : "FAIL", worst, steps, agree, steps);
  return ok ? 0 : 1;
}
