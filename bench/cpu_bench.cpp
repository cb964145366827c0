// CPU backend benchmark: prefill and batch-1 decode tokens/s of the Llama forward pass.
//   cpu_bench [--model PATH | --random] [--threads N] [--prefill 128,512] [--decode 128]
//             [--reps 5]
// --model runs a real model file (load_model); --random builds random weights with the
// SmolLM2-135M shape and the default GGUF's storage types (Q4_1 layers, Q8_0 embedding), so
// kernels can be timed without a loader. Prints the median of --reps runs of each.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/simple_generate.h"
#include "kernels/cpu/half.h"
#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/weights.h"

using namespace tessera;

namespace {

struct Args {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  bool random = false;
  int threads = 0;
  std::vector<int> prefill = {128, 512};
  int decode = 128;
  int reps = 5;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "error: %s\nusage: cpu_bench [--model PATH | --random] [--threads N] "
               "[--prefill 128,512] [--decode 128] [--reps 5]\n",
               why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + k).c_str());
      return argv[++i];
    };
    try {
      if (k == "--model") {
        a.model = value();
      } else if (k == "--random") {
        a.random = true;
      } else if (k == "--threads") {
        a.threads = std::stoi(value());
      } else if (k == "--decode") {
        a.decode = std::stoi(value());
      } else if (k == "--reps") {
        a.reps = std::max(1, std::stoi(value()));
      } else if (k == "--prefill") {
        a.prefill.clear();
        std::stringstream ss(value());
        for (std::string part; std::getline(ss, part, ',');) a.prefill.push_back(std::stoi(part));
      } else {
        usage(("unknown option " + k).c_str());
      }
    } catch (const std::logic_error&) {
      usage(("bad number for " + k).c_str());
    }
  }
  return a;
}

// Random weights of the given storage type; quantized scales are valid small f16 values.
std::shared_ptr<std::vector<uint8_t>> random_tensor(std::mt19937& rng, DType t, int64_t rows,
                                                    int64_t cols) {
  auto buf = std::make_shared<std::vector<uint8_t>>(dtype_row_bytes(t, cols) * rows);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : *buf) b = static_cast<uint8_t>(byte(rng));
  const int bb = dtype_block_bytes(t);
  const int64_t blocks = static_cast<int64_t>(buf->size()) / bb;
  std::uniform_real_distribution<float> scale(0.001f, 0.01f);
  for (int64_t i = 0; i < blocks; ++i) {
    uint8_t* p = buf->data() + i * bb;
    if (t == DType::kF32) {
      const float v = scale(rng) - 0.005f;
      std::memcpy(p, &v, 4);
      continue;
    }
    const uint16_t d = cpu::f32_to_f16(scale(rng));
    std::memcpy(p, &d, 2);
    if (t == DType::kQ4_1) {
      const uint16_t m = cpu::f32_to_f16(-8.0f * scale(rng));
      std::memcpy(p + 2, &m, 2);
    }
  }
  return buf;
}

LoadedModel random_smollm2() {
  LoadedModel m;
  m.source = "random weights, SmolLM2-135M shape (Q4_1 layers, Q8_0 embedding)";
  ModelConfig& c = m.config;
  c.name = "smollm2-135m-random";
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_layers = 30;
  c.num_heads = 9;
  c.num_kv_heads = 3;
  c.head_dim = 64;
  c.rope.theta = 100000.0f;
  c.tied_embeddings = true;
  std::mt19937 rng(1);
  auto add = [&](const std::string& name, DType t, int64_t rows, int64_t cols) {
    auto buf = random_tensor(rng, t, rows, cols);
    m.weights.tensors[name] = HostTensor{t, rows, cols, buf->data()};
    m.weights.storage.push_back(buf);
  };
  add("token_embd.weight", DType::kQ8_0, c.vocab_size, c.hidden_size);
  add("output_norm.weight", DType::kF32, 1, c.hidden_size);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", DType::kF32, 1, 576);
    add(p + "ffn_norm.weight", DType::kF32, 1, 576);
    add(p + "attn_q.weight", DType::kQ4_1, 576, 576);
    add(p + "attn_k.weight", DType::kQ4_1, 192, 576);
    add(p + "attn_v.weight", DType::kQ4_1, 192, 576);
    add(p + "attn_output.weight", DType::kQ4_1, 576, 576);
    add(p + "ffn_gate.weight", DType::kQ4_1, 1536, 576);
    add(p + "ffn_up.weight", DType::kQ4_1, 1536, 576);
    add(p + "ffn_down.weight", DType::kQ4_1, 576, 1536);
  }
  return m;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    LoadedModel loaded = a.random ? random_smollm2() : load_model(a.model);
    auto ops = make_cpu_ops(a.threads);
    LlamaModel model(loaded.config, loaded.weights, *ops);
    std::mt19937 rng(7);
    std::uniform_int_distribution<int32_t> tok(0, loaded.config.vocab_size - 1);
    using Clock = std::chrono::steady_clock;
    std::printf("model: %s\nbackend: %s\n", a.random ? loaded.source.c_str() : a.model.c_str(),
                ops->name().c_str());
    for (const int n : a.prefill) {
      std::vector<int32_t> prompt(n);
      for (auto& t : prompt) t = tok(rng);
      std::vector<double> secs;
      for (int r = 0; r < a.reps + 1; ++r) {  // the first run warms up
        SequenceRunner runner(model, n, 16, n);
        const auto t0 = Clock::now();
        runner.feed(prompt);
        if (r > 0) secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      std::printf("prefill %4d tokens: %8.1f tok/s (median of %d)\n", n, n / median(secs), a.reps);
    }
    if (a.decode > 0) {
      std::vector<double> secs;
      std::vector<int32_t> prompt(16);
      for (auto& t : prompt) t = tok(rng);
      for (int r = 0; r < a.reps + 1; ++r) {
        SequenceRunner runner(model, 16 + a.decode + 1);
        std::vector<float> logits = runner.feed(prompt);
        const auto t0 = Clock::now();
        for (int i = 0; i < a.decode; ++i) {
          const auto id =
              static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
          logits = runner.feed(std::span<const int32_t>(&id, 1));
        }
        if (r > 0) secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      std::printf(
          "decode  %4d tokens: %8.1f tok/s (batch 1, after a 16-token prompt, median of "
          "%d)\n",
          a.decode, a.decode / median(secs), a.reps);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
