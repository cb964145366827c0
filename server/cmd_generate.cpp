// `tessera generate`: load a model, run one prompt through the Engine (simple_generate: the
// scheduler, model runner, sampler and stop rules of `tessera serve`) and stream the
// completion to stdout; timing goes to stderr.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "common/error.h"
#include "engine/simple_generate.h"
#include "kernels/ops.h"
#include "model/chat_template.h"
#include "model/llama_model.h"
#include "model/model_needs.h"
#include "model/quant_online.h"
#include "model/tokenizer.h"
#include "model/weights.h"
#include "server/commands.h"
#include "server/local_backend.h"

namespace tessera {
namespace {

struct GenerateArgs {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string prompt;
  bool chat = false;
  std::string system;  // empty: the template's default system prompt, if it has one
  int max_tokens = 256;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  LocalBackendArgs backend;
  std::string quantization = "none";
  bool deterministic = false;
};

// The prompt as the model's chat template renders one user turn (plus --system, if given).
std::string chat_prompt(const Tokenizer& tok, const std::string& system, const std::string& user) {
  std::vector<ChatMessage> messages;
  if (!system.empty()) messages.push_back({"system", system});
  messages.push_back({"user", user});
  return ChatTemplate::for_tokenizer(tok).apply(messages, /*add_generation_prompt=*/true);
}

void run_generate(const GenerateArgs& a) {
  // stdout is the completion and stderr the timing line, as before the Engine ran this: the
  // engine's per-request info lines would interleave with them.
  spdlog::set_level(spdlog::level::warn);
  LoadedModel loaded = load_model(a.model);
  quantize_loaded_model(loaded, parse_online_quant(a.quantization));
  if (!loaded.tokenizer) {
    throw Error(ErrorKind::kInvalidArgument, "model '" + a.model + "' has no tokenizer");
  }
  const Tokenizer& tok = *loaded.tokenizer;
  auto ops = make_local_backend(a.backend);
  ops->set_deterministic(a.deterministic);
  ops->check_supported(model_needs(a.model, loaded.config, loaded.weights));
  LlamaModel model(loaded.config, loaded.weights, *ops);

  const std::string text = a.chat ? chat_prompt(tok, a.system, a.prompt) : a.prompt;
  const std::vector<int32_t> ids =
      tok.encode(text, /*add_special=*/!a.chat, /*parse_special=*/a.chat);
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.sampling.temperature = a.temperature;
  opt.sampling.top_k = a.top_k;
  opt.sampling.top_p = a.top_p;
  opt.sampling.seed = a.seed;
  opt.stop_ids = tok.stop_ids();
  if (tok.eos_id() >= 0) opt.stop_ids.push_back(tok.eos_id());

  IncrementalDecoder decoder(tok, /*skip_special=*/true);
  if (!a.chat) std::cout << a.prompt << std::flush;
  const GenerateResult r = simple_generate(model, ids, opt, [&](int32_t id) {
    std::cout << decoder.push(id) << std::flush;
    return true;
  });
  std::cout << decoder.flush() << std::endl;

  const int decoded = static_cast<int>(r.tokens.size()) - 1;  // the first comes from prefill
  std::fprintf(stderr,
               "[%s] prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens, decode %.1f "
               "tok/s%s\n",
               ops->name().c_str(), ids.size(), r.prefill_seconds,
               ids.size() / std::max(r.prefill_seconds, 1e-9), r.tokens.size(),
               decoded > 0 ? decoded / std::max(r.decode_seconds, 1e-9) : 0.0,
               r.stopped ? " (stopped at end of turn)" : "");
}

}  // namespace

void register_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Complete one prompt with a local model and stream the text to stdout");
  cmd->add_option("--model,-m", args->model, "GGUF file or Hugging Face folder")
      ->capture_default_str();
  cmd->add_option("--prompt,-p", args->prompt, "text to complete (or the user turn with --chat)")
      ->required();
  cmd->add_flag("--chat", args->chat,
                "render the prompt as a user turn with the model's chat template");
  cmd->add_option("--system", args->system,
                  "system message used with --chat (default: the template's own)");
  cmd->add_option("--max-tokens,-n", args->max_tokens, "tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature,-t", args->temperature, "0 = greedy")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", args->top_k, "keep the k most likely tokens (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", args->top_p, "nucleus sampling mass in (0, 1]")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--seed", args->seed, "sampling seed")->capture_default_str();
  add_local_backend_options(*cmd, args->backend);
  cmd->add_option("--quantization,-q", args->quantization,
                  "quantize projections at load: none, fp8, int8, int4 (or convert: f32, f16, "
                  "bf16)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "f32", "f16", "bf16", "fp8", "int8", "int4"}));
  cmd->add_flag("--deterministic", args->deterministic,
                "batch-invariant kernels (same output whatever the batch; slower on CUDA)")
      ->envname("TESSERA_DETERMINISTIC");
  cmd->callback([args] {
    try {
      run_generate(*args);
    } catch (const Error& e) {
      std::cerr << "error: " << e.what() << "\n";
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace tessera
