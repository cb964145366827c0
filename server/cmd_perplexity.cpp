// `tessera perplexity`: llama.cpp's perplexity over a text file (server/perplexity.h).
// Progress goes to stderr as llama.cpp prints it ("[chunk]ppl,"); the final estimate is the
// last line on stdout.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "common/error.h"
#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/quant_online.h"
#include "model/tokenizer.h"
#include "model/weights.h"
#include "server/commands.h"
#include "server/local_backend.h"
#include "server/perplexity.h"

namespace tessera {
namespace {

struct PerplexityArgs {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string file;
  int ctx_size = 512;
  int chunks = -1;
  int batch_size = 2048;
  LocalBackendArgs backend;
  std::string quantization = "none";
  bool fake_quant = false;
  std::string kv_cache_dtype = "auto";
};

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::kNotFound, path + ": cannot open");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void run_perplexity(const PerplexityArgs& a) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  LoadedModel loaded = load_model(a.model);
  if (!loaded.tokenizer) {
    throw Error(ErrorKind::kInvalidArgument, "model '" + a.model + "' has no tokenizer");
  }
  OnlineQuant quant = parse_online_quant(a.quantization);
  quant.simulate = a.fake_quant;
  const int quantized = quantize_loaded_model(loaded, quant);
  const Tokenizer& tok = *loaded.tokenizer;
  // As llama.cpp: the whole text at once, with the vocabulary's BOS rule; each chunk then
  // starts with BOS when the vocabulary adds one.
  const std::vector<int32_t> tokens = tok.encode(read_text(a.file), /*add_special=*/true,
                                                 /*parse_special=*/false);
  const std::vector<int32_t> empty = tok.encode("", true, false);
  const bool add_bos = !empty.empty() && empty.front() == tok.bos_id() && tok.bos_id() >= 0;

  auto ops = make_local_backend(a.backend);
  LlamaModel model(loaded.config, loaded.weights, *ops);
  std::fprintf(
      stderr,
      "perplexity: %s on %s, %zu tokens, ctx %d, quantization %s%s (%d weights), KV %s, BOS %s\n",
      a.model.c_str(), ops->name().c_str(), tokens.size(), a.ctx_size, a.quantization.c_str(),
      a.fake_quant ? " (simulated)" : "", quantized, a.kv_cache_dtype.c_str(),
      add_bos ? "yes" : "no");
  PerplexityOptions opt;
  opt.ctx_size = a.ctx_size;
  opt.chunks = a.chunks;
  opt.batch_size = a.batch_size;
  opt.bos_id = add_bos ? tok.bos_id() : -1;
  if (!parse_kv_dtype(a.kv_cache_dtype.c_str(), opt.kv_dtype))
    throw Error(ErrorKind::kInvalidArgument, "--kv-cache-dtype: " + a.kv_cache_dtype);
  const auto t1 = Clock::now();
  opt.on_chunk = [&](int chunk, int num_chunks, double ppl) {
    if (chunk == 0) {
      const double s = std::chrono::duration<double>(Clock::now() - t1).count();
      std::fprintf(stderr, "perplexity: %.2f s per chunk, %d chunks\n", s, num_chunks);
    }
    std::fprintf(stderr, "[%d]%.4f,", chunk + 1, ppl);
    if (chunk + 1 == num_chunks) std::fprintf(stderr, "\n");
  };
  const PerplexityResult r = perplexity(model, tokens, opt);
  std::fprintf(stderr, "perplexity: %d chunks, %lld tokens scored, %.1f s in all\n", r.chunks,
               static_cast<long long>(r.scored),
               std::chrono::duration<double>(Clock::now() - t0).count());
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_error);
  std::fflush(stdout);
}

}  // namespace

void register_perplexity_command(CLI::App& app) {
  auto args = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = app.add_subcommand(
      "perplexity",
      "Perplexity of a model on a text file, as llama.cpp defines it (second half of each "
      "chunk scored)");
  cmd->add_option("--model,-m", args->model, "GGUF file or Hugging Face folder")
      ->capture_default_str();
  cmd->add_option("--file,-f", args->file, "text file to score")->required();
  cmd->add_option("--ctx-size,-c", args->ctx_size, "tokens per chunk")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--chunks", args->chunks, "chunks to evaluate at most (-1 = all)")
      ->capture_default_str();
  cmd->add_option("--batch-size,-b", args->batch_size, "tokens per forward step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  add_local_backend_options(*cmd, args->backend);
  cmd->add_option("--quantization,-q", args->quantization,
                  "quantize the projections at load: none, fp8, int8 (per channel), int4 "
                  "(groups of 128; int4:G / int8:G for groups of G); or convert weights to f32, "
                  "f16, bf16. GGUF weights are "
                  "decoded first")
      ->capture_default_str()
      ->check([](const std::string& v) {
        try {
          parse_online_quant(v);
          return std::string();
        } catch (const Error& e) {
          return std::string(e.what());
        }
      });
  cmd->add_flag("--fake-quant", args->fake_quant,
                "decode the quantized weights back to f32 (the scheme's rounding on dense "
                "kernels, for backends without the scheme's own)");
  cmd->add_option("--kv-cache-dtype", args->kv_cache_dtype,
                  "KV cache element type: auto | bf16 | fp16 | f32 | fp8 | int8")
      ->capture_default_str()
      ->check([](const std::string& v) {
        KvDtype d;
        return parse_kv_dtype(v.c_str(), d) ? std::string() : "unknown KV cache dtype " + v;
      });
  cmd->callback([args] {
    try {
      run_perplexity(*args);
    } catch (const Error& e) {
      std::cerr << "error: " << e.what() << "\n";
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace tessera
