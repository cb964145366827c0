// `tessera serve`: JSON config + environment + CLI overrides -> engine, HTTP and gRPC
// frontends; runs until SIGINT/SIGTERM, then drains (see drain_and_stop) and exits.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <thread>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "common/error.h"
#include "common/metrics.h"
#include "engine/engine.h"
#include "engine/engine_factory.h"
#include "model/chat_template.h"
#include "server/commands.h"
#include "server/http_server.h"
#include "server/log_format.h"
#include "server/serve_config.h"
#ifdef TESSERA_HAVE_GRPC
#include "server/grpc_server.h"
#endif

namespace tessera {
namespace {

// Values from the command line; an option counts only when given (count() > 0), so a config
// file's value is overridden only by flags the user actually typed.
struct ServeCli {
  std::string config;
  std::string model, served_model_name, host, device, policy, api_key, log_level, log_format;
  std::string grpc_host, kv_cache_dtype, quantization, gguf_weights;
  int port = 0, grpc_port = 0, max_num_seqs = 0, max_num_batched_tokens = 0, num_threads = 0;
  int tensor_parallel_size = 0;
  std::string tp_master;
  bool tp_external_workers = false;
  int max_model_len = 0, static_batch_size = 0, max_waiting = 0, health_stall_timeout_ms = 0;
  int drain_timeout_s = 0;
  std::string speculative, draft_model, async_scheduling;
  int num_speculative_tokens = 0, spec_early_exit_layers = 0, spec_ngram_max = 0;
  int spec_max_step_tokens = 0;
  bool spec_fixed = false;
  int64_t kv_cache_mb = 0;
  bool no_chunked_prefill = false, no_prefix_caching = false, deterministic = false;
  std::vector<std::pair<CLI::Option*, std::function<void(ServeConfig&)>>> overrides;
};

// --max-num-seqs -> TESSERA_MAX_NUM_SEQS: every option can be set from the environment
// (containers); a flag on the command line wins over the variable.
std::string env_name(const std::string& flag_name) {
  std::string env = "TESSERA_";
  for (char ch : flag_name.substr(2)) {
    env += ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return env;
}

template <class T, class F>
void flag(CLI::App* cmd, ServeCli& cli, const std::string& name, T& target, const std::string& help,
          F apply) {
  // The last occurrence wins, so wrappers can append overrides to a fixed command line.
  CLI::Option* o = cmd->add_option(name, target, help)
                       ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
                       ->envname(env_name(name));
  cli.overrides.emplace_back(o, [&target, apply](ServeConfig& c) { apply(c, target); });
}

void define_options(CLI::App* cmd, ServeCli& cli) {
  cmd->add_option("--config", cli.config, "JSON config file (e.g. configs/serve-default.json)")
      ->envname("TESSERA_CONFIG");
  flag(cmd, cli, "--model", cli.model, "Model: .gguf file, HF folder or dummy:<config.json>",
       [](ServeConfig& c, const std::string& v) { c.engine.model = v; });
  flag(cmd, cli, "--served-model-name", cli.served_model_name, "Name clients use for the model",
       [](ServeConfig& c, const std::string& v) { c.engine.served_model_name = v; });
  flag(cmd, cli, "--host", cli.host, "Bind address (default 127.0.0.1)",
       [](ServeConfig& c, const std::string& v) { c.http.host = v; });
  flag(cmd, cli, "--port", cli.port, "HTTP port (default 8000)",
       [](ServeConfig& c, int v) { c.http.port = v; });
  flag(cmd, cli, "--grpc-port", cli.grpc_port, "gRPC port (default 50051; 0 disables)",
       [](ServeConfig& c, int v) { c.grpc_port = v; });
  flag(cmd, cli, "--grpc-host", cli.grpc_host, "gRPC bind address (default: --host)",
       [](ServeConfig& c, const std::string& v) { c.grpc_host = v; });
  flag(cmd, cli, "--device", cli.device, "auto | cpu | cuda",
       [](ServeConfig& c, const std::string& v) { c.engine.device = v; });
  flag(cmd, cli, "--tensor-parallel-size", cli.tensor_parallel_size,
       "GPUs (one process each) one model is split over (default 1)",
       [](ServeConfig& c, int v) { c.engine.tensor_parallel = v; });
  flag(cmd, cli, "--tp-master", cli.tp_master,
       "HOST:PORT the tensor-parallel workers connect to (default 127.0.0.1:0, any port)",
       [](ServeConfig& c, const std::string& v) { c.engine.tp_master = v; });
  CLI::Option* tx = cmd->add_flag(
      "--tp-external-workers", cli.tp_external_workers,
      "Workers are started by hand (`tessera worker --master ...`, e.g. on other nodes)");
  tx->envname(env_name("--tp-external-workers"));
  cli.overrides.emplace_back(
      tx, [&cli](ServeConfig& c) { c.engine.tp_spawn_workers = !cli.tp_external_workers; });
  flag(cmd, cli, "--policy", cli.policy, "Batching: static | dynamic | continuous",
       [](ServeConfig& c, const std::string& v) { c.engine.policy = parse_batching_policy(v); });
  flag(cmd, cli, "--max-num-seqs", cli.max_num_seqs, "Sequences per step at most",
       [](ServeConfig& c, int v) { c.engine.max_num_seqs = v; });
  flag(cmd, cli, "--max-num-batched-tokens", cli.max_num_batched_tokens,
       "Token budget per step (chunked prefill)",
       [](ServeConfig& c, int v) { c.engine.max_num_batched_tokens = v; });
  flag(cmd, cli, "--kv-cache-mb", cli.kv_cache_mb, "KV cache budget in MiB (CPU)",
       [](ServeConfig& c, int64_t v) { c.engine.kv_cache_bytes = v << 20; });
  flag(cmd, cli, "--kv-cache-dtype", cli.kv_cache_dtype,
       "KV cache element type: auto | bf16 | fp16 | f32 | fp8 | int8",
       [](ServeConfig& c, const std::string& v) { c.engine.kv_cache_dtype = v; });
  flag(cmd, cli, "--max-model-len", cli.max_model_len, "Context length (0: the model's)",
       [](ServeConfig& c, int v) { c.engine.max_model_len = v; });
  flag(cmd, cli, "--num-threads", cli.num_threads, "CPU threads (0: all cores)",
       [](ServeConfig& c, int v) { c.engine.num_threads = v; });
  flag(cmd, cli, "--quantization", cli.quantization,
       "quantize projections at load: none | fp8 | int8 | int4 (or convert: f32 | f16 | bf16)",
       [](ServeConfig& c, const std::string& v) { c.engine.quantization = v; });
  flag(cmd, cli, "--gguf-weights", cli.gguf_weights,
       "GGUF weights on the GPU: bf16 (dequantized at upload) | blocks (kept as GGUF blocks)",
       [](ServeConfig& c, const std::string& v) { c.engine.gguf_weights = v; });
  flag(cmd, cli, "--async-scheduling", cli.async_scheduling,
       "Plan step N+1 while the GPU runs step N: auto (on for CUDA) | on | off",
       [](ServeConfig& c, const std::string& v) { c.engine.async_scheduling = v; });
  flag(cmd, cli, "--speculative", cli.speculative,
       "Speculative decoding: none | ngram | draft | early-exit",
       [](ServeConfig& c, const std::string& v) { c.engine.speculative = v; });
  flag(cmd, cli, "--num-speculative-tokens", cli.num_speculative_tokens,
       "Draft tokens per step at most (default 4)",
       [](ServeConfig& c, int v) { c.engine.num_speculative_tokens = v; });
  flag(cmd, cli, "--draft-model", cli.draft_model,
       "Draft model for --speculative draft (same tokenizer as --model)",
       [](ServeConfig& c, const std::string& v) { c.engine.draft_model = v; });
  flag(cmd, cli, "--speculative-early-exit-layers", cli.spec_early_exit_layers,
       "Layers of the early-exit draft (default: a quarter of the model's)",
       [](ServeConfig& c, int v) { c.engine.speculative_early_exit_layers = v; });
  flag(cmd, cli, "--speculative-ngram-max", cli.spec_ngram_max,
       "Longest suffix the n-gram proposer looks up (default 4)",
       [](ServeConfig& c, int v) { c.engine.speculative_ngram_max = v; });
  flag(cmd, cli, "--speculative-max-step-tokens", cli.spec_max_step_tokens,
       "No drafting when decoding sequences x (k + 1) exceed this (0: backend default)",
       [](ServeConfig& c, int v) { c.engine.speculative_max_step_tokens = v; });
  CLI::Option* sf =
      cmd->add_flag("--speculative-fixed", cli.spec_fixed,
                    "Always draft --num-speculative-tokens (no adaptation to acceptance)");
  sf->envname(env_name("--speculative-fixed"));
  cli.overrides.emplace_back(
      sf, [&cli](ServeConfig& c) { c.engine.speculative_adaptive = !cli.spec_fixed; });
  flag(cmd, cli, "--static-batch-size", cli.static_batch_size, "Static policy: batch size N",
       [](ServeConfig& c, int v) { c.engine.static_batch_size = v; });
  flag(cmd, cli, "--max-waiting", cli.max_waiting, "Waiting-queue bound (beyond: 429)",
       [](ServeConfig& c, int v) { c.engine.max_waiting = v; });
  flag(cmd, cli, "--health-stall-timeout-ms", cli.health_stall_timeout_ms,
       "/health is 503 when the engine loop stalls this long", [](ServeConfig& c, int v) {
         c.engine.health_stall_timeout_ms = v;
         c.http.health_stall_timeout_ms = v;
       });
  flag(cmd, cli, "--log-level", cli.log_level, "trace | debug | info | warn | error",
       [](ServeConfig& c, const std::string& v) { c.log_level = v; });
  flag(cmd, cli, "--log-format", cli.log_format, "text | json (one JSON object per line)",
       [](ServeConfig& c, const std::string& v) { c.log_format = v; });
  flag(cmd, cli, "--drain-timeout", cli.drain_timeout_s,
       "Seconds in-flight requests may finish after SIGTERM (default 30)",
       [](ServeConfig& c, int v) { c.drain_timeout_s = v; });
  CLI::Option* key = cmd->add_option("--api-key", cli.api_key,
                                     "Require 'Authorization: Bearer KEY' (or TESSERA_API_KEY)");
  key->envname("TESSERA_API_KEY");
  cli.overrides.emplace_back(key, [&cli](ServeConfig& c) { c.http.api_key = cli.api_key; });
  CLI::Option* nc = cmd->add_flag("--no-chunked-prefill", cli.no_chunked_prefill,
                                  "Prefill whole prompts in one step")
                        ->envname("TESSERA_NO_CHUNKED_PREFILL");
  cli.overrides.emplace_back(
      nc, [&cli](ServeConfig& c) { c.engine.enable_chunked_prefill = !cli.no_chunked_prefill; });
  CLI::Option* np = cmd->add_flag("--no-prefix-caching", cli.no_prefix_caching,
                                  "Disable sharing of identical prompt prefixes")
                        ->envname("TESSERA_NO_PREFIX_CACHING");
  cli.overrides.emplace_back(
      np, [&cli](ServeConfig& c) { c.engine.enable_prefix_caching = !cli.no_prefix_caching; });
  CLI::Option* det =
      cmd->add_flag("--deterministic", cli.deterministic,
                    "Batch-invariant kernels: a request's output does not depend on its batch "
                    "(slower on CUDA)")
          ->envname(env_name("--deterministic"));
  cli.overrides.emplace_back(
      det, [&cli](ServeConfig& c) { c.engine.deterministic = cli.deterministic; });
}

// Blocks SIGINT/SIGTERM (and SIGUSR1, our own wake-up at exit) in every thread started after
// this, so one watcher thread can sigwait them.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

const char* signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal";
}

// Past the drain, stopping the frontends and the engine takes a few seconds at most (HTTP
// streams get 5 s to end, gRPC 2 s). Longer means an engine step that never returns (a hung
// device): nothing can cancel it, so the process exits without a clean stop.
constexpr auto kStopGrace = std::chrono::seconds(10);
constexpr int kStuckExitCode = 3;

void arm_exit_watchdog() {
  std::thread([] {
    std::this_thread::sleep_for(kStopGrace);
    spdlog::error("shutdown did not finish {} s after the drain (engine step stuck?); exiting",
                  std::chrono::duration_cast<std::chrono::seconds>(kStopGrace).count());
    spdlog::default_logger()->flush();
    std::_Exit(kStuckExitCode);
  }).detach();
}

// Graceful shutdown: not ready and no new work at once, in-flight requests run until they
// finish or `drain` passes (a second signal cuts it short), then what is left is cancelled.
// Returns when HTTP has stopped; the caller stops gRPC and the engine under the watchdog.
template <class BeginDrainGrpc>
void drain_and_stop(int sig, const sigset_t& signals, std::chrono::seconds drain, HttpServer& http,
                    BeginDrainGrpc begin_drain_grpc, const Engine& engine) {
  spdlog::info("received {}: draining {} in-flight requests (up to {} s); /ready is 503",
               signal_name(sig), engine.stats().live_requests, drain.count());
  http.begin_drain();
  begin_drain_grpc();
  const auto deadline = Clock::now() + drain;
  bool cut_short = false;
  while (engine.stats().live_requests > 0 && Clock::now() < deadline) {
    timespec slice{0, 50'000'000};
    const int again = sigtimedwait(&signals, nullptr, &slice);
    if (again == SIGINT || again == SIGTERM) {
      spdlog::warn("received {} again: cancelling in-flight requests now", signal_name(again));
      cut_short = true;
      break;
    }
  }
  const int left = engine.stats().live_requests;
  if (left > 0 && !cut_short) spdlog::warn("drain timeout: cancelling {} requests", left);
  arm_exit_watchdog();
  http.stop();
}

int run_serve(ServeCli& cli) {
  ServeConfig cfg;
  try {
    if (!cli.config.empty()) load_serve_config_file(cfg, cli.config);
    for (auto& [opt, apply] : cli.overrides) {
      if (opt->count() > 0) apply(cfg);
    }
    validate_serve_config(cfg);
    cfg.engine.validate();
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  set_log_format(cfg.log_format);
  sigset_t stop_signals = block_stop_signals();

  std::unique_ptr<Engine> engine;
  try {
    engine = create_engine(cfg.engine);
  } catch (const std::exception& e) {
    spdlog::error("cannot start the engine: {}", e.what());
    return 1;
  }
  ChatTemplate chat = ChatTemplate::for_tokenizer(engine->tokenizer());
  if (!chat.recognized()) {
    spdlog::warn("chat template not recognised; /v1/chat/completions uses plain ChatML");
  }
  ChatRenderer render = [chat](const std::vector<ChatMessage>& msgs, bool add_gen) {
    return chat.apply(msgs, add_gen);
  };

  metrics::Registry& registry = metrics::default_registry();
  HttpServer http(*engine, cfg.http, registry, render);
#ifdef TESSERA_HAVE_GRPC
  std::unique_ptr<GrpcServer> grpc;
#endif
  try {
    http.bind();
#ifdef TESSERA_HAVE_GRPC
    if (cfg.grpc_port > 0) {
      GrpcOptions g;
      g.host = cfg.grpc_host.empty() ? cfg.http.host : cfg.grpc_host;
      g.port = cfg.grpc_port;
      g.api_key = cfg.http.api_key;
      g.batching_policy = batching_policy_name(cfg.engine.policy);
      g.device = cfg.engine.device;
      g.health_stall_timeout_ms = cfg.http.health_stall_timeout_ms;
      grpc = std::make_unique<GrpcServer>(*engine, g, registry);
      grpc->start();
      spdlog::info("gRPC (tessera.v1.Inference) on {}:{}", g.host, grpc->port());
    }
#else
    if (cfg.grpc_port > 0) spdlog::info("gRPC disabled in this build (TESSERA_GRPC=OFF)");
#endif
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    engine->stop();
    return 1;
  }
  spdlog::info("serving '{}' on http://{}:{} (policy {}, chat template {}{})", engine->model_name(),
               cfg.http.host, http.port(), batching_policy_name(cfg.engine.policy), chat.name(),
               cfg.http.api_key.empty() ? "" : ", API key required");

  std::thread watcher([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == SIGUSR1) return;  // our own wake-up at normal exit
    auto begin_drain_grpc = [&] {
#ifdef TESSERA_HAVE_GRPC
      if (grpc) grpc->begin_drain();
#endif
    };
    drain_and_stop(sig, stop_signals, std::chrono::seconds(cfg.drain_timeout_s), http,
                   begin_drain_grpc, *engine);
  });

  http.run();  // returns after stop(): in-flight handlers have finished
  pthread_kill(watcher.native_handle(), SIGUSR1);
  watcher.join();
#ifdef TESSERA_HAVE_GRPC
  if (grpc) grpc->stop();
#endif
  engine->stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

void register_serve_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a model over OpenAI-compatible HTTP (SSE), gRPC and /metrics");
  auto cli = std::make_shared<ServeCli>();
  define_options(cmd, *cli);
  cmd->callback([cli] {
    int rc = run_serve(*cli);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tessera
