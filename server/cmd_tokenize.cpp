// `tessera tokenize`: token ids of a text as JSON, straight from the model file's vocabulary
// (GGUF metadata or tokenizer.json), without loading any weights.
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/chat_template.h"
#include "model/gguf_file.h"
#include "model/tokenizer.h"
#include "server/commands.h"

namespace tessera {

namespace {

struct TokenizeOptions {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string text;
  bool no_parse_special = false;
  bool add_special = false;
  bool chat = false;
  bool verbose = false;
};

// A .gguf file, a tokenizer.json, or a Hugging Face folder holding tokenizer.json.
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    const fs::path dir(path);
    const fs::path config = dir / "tokenizer_config.json";
    return Tokenizer::from_hf_files((dir / "tokenizer.json").string(),
                                    fs::exists(config) ? config.string() : std::string());
  }
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    return Tokenizer::from_hf_files(path, "");
  }
  const auto gguf = GgufFile::open(path);
  return Tokenizer::from_gguf(*gguf);
}

void run_tokenize(const TokenizeOptions& opt) {
  const auto tok = load_tokenizer(opt.model);
  std::string text = opt.text;
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), {});
  if (opt.chat) {
    const std::vector<ChatMessage> msgs = {{"user", text}};
    text = ChatTemplate::for_tokenizer(*tok).apply(msgs, true);
  }
  const auto ids = tok->encode(text, opt.add_special, !opt.no_parse_special);
  if (!opt.verbose) {
    std::cout << nlohmann::json(ids).dump() << "\n";
    return;
  }
  nlohmann::json pieces = nlohmann::json::array();
  for (const int32_t id : ids) {
    pieces.push_back(nlohmann::json{{"id", id}, {"text", tok->token_bytes(id)}});
  }
  const nlohmann::json out = {{"ids", ids}, {"count", ids.size()}, {"tokens", pieces}};
  std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

}  // namespace

void register_tokenize_command(CLI::App& app) {
  auto opt = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Print the token ids of a text as JSON (reads only the model's vocabulary)");
  cmd->add_option("--model,-m", opt->model, "GGUF file, tokenizer.json, or a Hugging Face folder")
      ->capture_default_str();
  cmd->add_option("--text,-t", opt->text, "Text to tokenize ('-' reads standard input)")
      ->required();
  cmd->add_flag("--no-parse-special", opt->no_parse_special,
                "Treat text like <|im_start|> as plain text, not as special tokens");
  cmd->add_flag("--add-special", opt->add_special, "Add BOS/EOS as the model's rules say");
  cmd->add_flag("--chat", opt->chat,
                "Wrap the text as one user turn in the model's chat template first");
  cmd->add_flag("--verbose,-v", opt->verbose, "Print each token's text along with its id");
  cmd->callback([opt] {
    try {
      run_tokenize(*opt);
    } catch (const std::exception& e) {
      // Error from our loaders, or e.g. a JSON error from a malformed file: one line, exit 1.
      std::cerr << "tessera tokenize: " << e.what() << "\n";
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace tessera
