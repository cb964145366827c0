// `tessera worker`: one tensor-parallel rank beyond rank 0 (engine/tp_worker.h). Started by
// `tessera serve --tensor-parallel-size N` for the local GPUs, or by hand on another machine:
//   tessera worker --rank 1 --world-size 2 --master 10.0.0.1:29500 --device 0
#include <cstdlib>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "common/error.h"
#include "engine/tp_worker.h"
#include "server/commands.h"

namespace tessera {

void register_worker_command(CLI::App& app) {
  auto args = std::make_shared<TpWorkerArgs>();
  CLI::App* cmd = app.add_subcommand("worker", "Run one tensor-parallel rank (started by serve)");
  cmd->add_option("--rank", args->rank, "This worker's rank (1 .. world size - 1)")->required();
  cmd->add_option("--world-size", args->world, "Ranks in all, rank 0 included")->required();
  cmd->add_option("--master", args->master, "Rank 0's HOST:PORT")->required();
  cmd->add_option("--device", args->device, "CUDA device (default: the rank)");
  cmd->callback([args] {
    if (args->rank < 1 || args->rank >= args->world) {
      spdlog::error("--rank must be in 1..{} for --world-size {}", args->world - 1, args->world);
      std::exit(2);
    }
    try {
      std::exit(run_tp_worker(*args));
    } catch (const Error& e) {
      spdlog::error("worker rank {}: {}", args->rank, e.what());
      std::exit(1);
    }
  });
}

}  // namespace tessera
