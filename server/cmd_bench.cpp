#include <CLI/CLI.hpp>

#include "server/commands.h"

namespace tessera {

// Placeholder until the subcommand lands.
void register_bench_command(CLI::App& app) {
  app.add_subcommand("bench", "(not built yet)");
}

}  // namespace tessera
