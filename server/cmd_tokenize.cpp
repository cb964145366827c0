#include <CLI/CLI.hpp>

#include "server/commands.h"

namespace tessera {

// Placeholder until the subcommand lands.
void register_tokenize_command(CLI::App& app) {
  app.add_subcommand("tokenize", "(not built yet)");
}

}  // namespace tessera
