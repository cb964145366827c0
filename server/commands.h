#pragma once
// Each subcommand of the `tessera` binary registers itself on the CLI11 app.
namespace CLI {
class App;
}

namespace tessera {

void register_generate_command(CLI::App& app);
void register_tokenize_command(CLI::App& app);
void register_serve_command(CLI::App& app);
void register_perplexity_command(CLI::App& app);
void register_worker_command(CLI::App& app);

}  // namespace tessera
