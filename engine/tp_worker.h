#pragma once
// A tensor-parallel worker (`tessera worker`): one process per GPU beyond rank 0. It joins
// rank 0 over the TP channel, loads its shard of the model named in the bootstrap, joins the
// NCCL communicator, then runs every step rank 0 forwards (same ops, same block ids) until
// rank 0 says shutdown or goes away. Rank 0 samples; workers only take part in the
// collectives.
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "engine/engine_config.h"

namespace tessera {

struct TpWorkerArgs {
  int rank = 1;
  int world = 2;
  std::string master;  // HOST:PORT of rank 0
  int device = -1;     // CUDA device; -1: the rank
};

// What rank 0 tells every worker: the model and how to load it, the KV geometry, the NCCL id.
struct TpBootstrap {
  std::string model;
  std::string quantization;  // "" = as stored
  std::string kv_dtype = "auto";
  int num_blocks = 0;
  int block_size = 16;
  int max_seq_len = 0;
  bool deterministic = false;
  bool gguf_blocks = false;
  std::string nccl_id;  // raw bytes

  std::string to_json() const;
  static TpBootstrap from_json(const std::string& text);  // throws Error on a bad one
};

// Returns the process exit code: 0 after an orderly shutdown, 1 when rank 0 vanished or a
// step failed (logged).
int run_tp_worker(const TpWorkerArgs& args);

}  // namespace tessera
