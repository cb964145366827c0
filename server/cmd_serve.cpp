#include <CLI/CLI.hpp>

#include "server/commands.h"

namespace tessera {

// Placeholder until the subcommand lands.
void register_serve_command(CLI::App& app) {
  app.add_subcommand("serve", "(not built yet)");
}

}  // namespace tessera
