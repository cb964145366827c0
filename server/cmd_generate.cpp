#include <CLI/CLI.hpp>

#include "server/commands.h"

namespace tessera {

// Placeholder until the subcommand lands.
void register_generate_command(CLI::App& app) {
  app.add_subcommand("generate", "(not built yet)");
}

}  // namespace tessera
