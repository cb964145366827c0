#include <CLI/CLI.hpp>

#include "server/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "tessera - an LLM inference server (OpenAI-compatible HTTP, gRPC, Prometheus metrics).\n"
      "Start with:  tessera serve   (defaults to models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
      "Try a model: tessera generate --prompt \"What is the capital of France?\" --chat\n"
      "Benchmarks are separate programs: build/bench/engine_bench, cpu_bench (see bench/)."};
  app.require_subcommand(1);
  tessera::register_generate_command(app);
  tessera::register_tokenize_command(app);
  tessera::register_serve_command(app);
  tessera::register_perplexity_command(app);
  tessera::register_worker_command(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
