// Offline engine throughput: every request submitted at once, as `vllm bench throughput`
// does. Random prompt token ids (fixed seed), fixed input/output lengths, ignore_eos so each
// request generates exactly --output-len tokens. Works on real weights and on
// dummy:<model config> (random weights) for GPU shapes, e.g.
//   engine_bench --model dummy:configs/models/llama-3.1-8b.json?dtype=bf16 --device cuda
//                --num-prompts 64 --input-len 512 --output-len 128
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "common/error.h"
#include "engine/engine_factory.h"
#include "model/model_config.h"
#include "model/tokenizer.h"

namespace {

using tessera::Clock;

struct Options {
  tessera::EngineConfig engine;
  int num_prompts = 64;
  int input_len = 128;
  int output_len = 128;
  float temperature = 0.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int logprobs = -1;
  uint64_t seed = 0;
  int warmup = 1;
  int64_t kv_cache_mb = 0;
  std::string policy = "continuous";
};

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
  return v[i];
}

std::vector<int32_t> random_prompt(std::mt19937_64& rng, int len, int vocab) {
  // Stay clear of the id range's ends, where special tokens usually live.
  const int lo = std::min(100, vocab / 4);
  const int hi = std::max(lo + 1, vocab - 300);
  std::uniform_int_distribution<int32_t> dist(lo, hi - 1);
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = dist(rng);
  return p;
}

struct RunResult {
  double elapsed = 0.0;
  double last_first_token = 0.0;  // when the last request got its first token
  int64_t output_tokens = 0;
  int num_errors = 0;
  std::vector<double> ttft, latency;
};

RunResult run_batch(tessera::Engine& engine, const Options& o, int num, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int vocab = engine.model_config().vocab_size;
  std::vector<std::shared_ptr<tessera::ResultStream>> streams;
  RunResult r;
  const auto t0 = Clock::now();
  for (int i = 0; i < num; ++i) {
    tessera::GenerationRequest req;
    req.id = "bench-" + std::to_string(i);
    req.prompt = random_prompt(rng, o.input_len, vocab);
    req.sampling.max_tokens = o.output_len;
    req.sampling.ignore_eos = true;
    req.sampling.temperature = o.temperature;
    req.sampling.min_p = o.min_p;
    req.sampling.repetition_penalty = o.repetition_penalty;
    req.sampling.presence_penalty = o.presence_penalty;
    req.sampling.frequency_penalty = o.frequency_penalty;
    req.sampling.logprobs = o.logprobs;
    req.sampling.seed = seed + static_cast<uint64_t>(i);
    req.arrival = t0;
    for (;;) {
      try {
        streams.push_back(engine.submit(std::move(req)));
        break;
      } catch (const tessera::Error& e) {
        if (e.kind() != tessera::ErrorKind::kResourceExhausted) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // queue full: wait
      }
    }
  }
  std::vector<std::optional<Clock::time_point>> first(streams.size());
  std::vector<bool> finished(streams.size(), false);
  size_t remaining = streams.size();
  while (remaining > 0) {
    for (size_t i = 0; i < streams.size(); ++i) {
      if (finished[i]) continue;
      while (auto ev = streams[i]->next(std::chrono::milliseconds(0))) {
        const auto now = Clock::now();
        if (!ev->token_ids.empty() && !first[i]) {
          first[i] = now;
          r.ttft.push_back(seconds_between(t0, now));
        }
        if (ev->finish) {
          finished[i] = true;
          --remaining;
          r.output_tokens += ev->completion_tokens;
          r.latency.push_back(seconds_between(t0, now));
          if (*ev->finish == tessera::FinishReason::kError) {
            if (r.num_errors++ == 0) spdlog::error("request failed: {}", ev->error);
          }
        }
      }
    }
    if (remaining > 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  r.elapsed = seconds_between(t0, Clock::now());
  r.last_first_token = r.ttft.empty() ? 0.0 : *std::max_element(r.ttft.begin(), r.ttft.end());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Tessera offline engine throughput (all requests submitted at once)"};
  app.add_option("--model", o.engine.model, "GGUF file, HF folder or dummy:<config.json>[?dtype=]")
      ->capture_default_str();
  app.add_option("--device", o.engine.device, "auto | cpu | cuda")->capture_default_str();
  app.add_option("--gguf-weights", o.engine.gguf_weights, "GPU: bf16 | blocks")
      ->capture_default_str();
  app.add_option("--threads", o.engine.num_threads, "CPU threads (0 = all cores)");
  app.add_option("--num-prompts", o.num_prompts, "requests")->capture_default_str();
  app.add_option("--input-len", o.input_len, "prompt tokens per request")->capture_default_str();
  app.add_option("--output-len", o.output_len, "generated tokens per request")
      ->capture_default_str();
  app.add_option("--max-num-seqs", o.engine.max_num_seqs)->capture_default_str();
  app.add_option("--max-num-batched-tokens", o.engine.max_num_batched_tokens)
      ->capture_default_str();
  app.add_option("--max-model-len", o.engine.max_model_len, "0 = model context (capped to KV)");
  app.add_option("--kv-cache-mb", o.kv_cache_mb, "CPU KV budget in MiB (0 = config default)");
  app.add_option("--gpu-memory-fraction", o.engine.gpu_memory_fraction)->capture_default_str();
  app.add_option("--policy", o.policy, "static | dynamic | continuous")->capture_default_str();
  app.add_option("--temperature", o.temperature, "0 = greedy")->capture_default_str();
  app.add_option("--min-p", o.min_p)->capture_default_str();
  app.add_option("--repetition-penalty", o.repetition_penalty)->capture_default_str();
  app.add_option("--presence-penalty", o.presence_penalty)->capture_default_str();
  app.add_option("--frequency-penalty", o.frequency_penalty)->capture_default_str();
  app.add_option("--logprobs", o.logprobs, "-1 = none; else alternatives per token")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "prompt and sampling seed")->capture_default_str();
  app.add_option("--warmup", o.warmup, "warm-up requests before timing")->capture_default_str();
  app.add_option("--speculative", o.engine.speculative, "none | ngram | draft | early-exit")
      ->capture_default_str();
  app.add_option("--num-speculative-tokens", o.engine.num_speculative_tokens)
      ->capture_default_str();
  app.add_option("--draft-model", o.engine.draft_model, "speculative draft: the draft model");
  app.add_option("--speculative-early-exit-layers", o.engine.speculative_early_exit_layers);
  app.add_option("--speculative-max-step-tokens", o.engine.speculative_max_step_tokens);
  app.add_option("--async-scheduling", o.engine.async_scheduling, "auto | on | off")
      ->capture_default_str();
  bool spec_fixed = false;
  app.add_flag("--speculative-fixed", spec_fixed, "always draft --num-speculative-tokens");
  CLI11_PARSE(app, argc, argv);
  o.engine.speculative_adaptive = !spec_fixed;

  try {
    if (o.kv_cache_mb > 0) o.engine.kv_cache_bytes = o.kv_cache_mb << 20;
    if (o.policy == "static") {
      o.engine.policy = tessera::BatchingPolicy::kStatic;
      o.engine.static_batch_size = std::min(o.engine.max_num_seqs, o.num_prompts);
    } else if (o.policy == "dynamic") {
      o.engine.policy = tessera::BatchingPolicy::kDynamic;
    } else if (o.policy != "continuous") {
      throw tessera::Error(tessera::ErrorKind::kInvalidArgument, "--policy: " + o.policy);
    }
    o.engine.enable_prefix_caching = false;  // random prompts: nothing to share
    if (o.engine.max_model_len == 0) o.engine.max_model_len = o.input_len + o.output_len;
    auto engine = tessera::create_engine(o.engine);
    if (o.warmup > 0) run_batch(*engine, o, o.warmup, o.seed + 1000003);

    const tessera::EngineStats before = engine->stats();
    const RunResult r = run_batch(*engine, o, o.num_prompts, o.seed);
    const tessera::EngineStats after = engine->stats();
    const int64_t steps = after.steps_total - before.steps_total;
    const int64_t input_tokens = static_cast<int64_t>(o.num_prompts) * o.input_len;
    const double decode_time = r.elapsed - r.last_first_token;
    const int64_t decode_tokens = r.output_tokens - static_cast<int64_t>(r.ttft.size());
    std::printf("model            %s (%s)\n", engine->model_name().c_str(),
                o.engine.device.c_str());
    std::printf("requests         %d x (%d in, %d out), policy %s, max_num_seqs %d\n",
                o.num_prompts, o.input_len, o.output_len, o.policy.c_str(), o.engine.max_num_seqs);
    std::printf("elapsed          %.3f s (%d errors)\n", r.elapsed, r.num_errors);
    std::printf("throughput       %.2f requests/s, %.1f total tok/s, %.1f output tok/s\n",
                o.num_prompts / r.elapsed, (input_tokens + r.output_tokens) / r.elapsed,
                r.output_tokens / r.elapsed);
    if (decode_time > 0 && decode_tokens > 0)
      std::printf("decode phase     %.1f output tok/s after the last first token (%.3f s)\n",
                  decode_tokens / decode_time, decode_time);
    if (steps > 0)
      std::printf("steps            %lld, %.3f ms each, %.2f output tokens per step\n",
                  static_cast<long long>(steps), 1e3 * r.elapsed / static_cast<double>(steps),
                  static_cast<double>(r.output_tokens) / static_cast<double>(steps));
    if (const int64_t dev_steps = after.device_steps - before.device_steps; dev_steps > 0) {
      // The host's exposed time: the device idle between one step's end and the next start.
      const double busy = after.device_busy_seconds - before.device_busy_seconds;
      const double idle = after.device_idle_seconds - before.device_idle_seconds;
      std::printf(
          "device           %.3f ms busy + %.3f ms waiting for the host per step (%.1f%% of the "
          "step); %lld of %lld steps pipelined\n",
          1e3 * busy / dev_steps, 1e3 * idle / dev_steps, 100.0 * idle / (busy + idle),
          static_cast<long long>(after.pipelined_steps_total - before.pipelined_steps_total),
          static_cast<long long>(steps));
    }
    std::printf("TTFT             p50 %.3f s, p99 %.3f s; latency p50 %.3f s, p99 %.3f s\n",
                percentile(r.ttft, 50), percentile(r.ttft, 99), percentile(r.latency, 50),
                percentile(r.latency, 99));
    engine->stop();
    return r.num_errors == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine_bench: %s\n", e.what());
    return 1;
  }
}
