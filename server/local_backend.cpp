#include "server/local_backend.h"

#include <CLI/CLI.hpp>

#include "common/error.h"

namespace tessera {

void add_local_backend_options(CLI::App& cmd, LocalBackendArgs& args) {
  cmd.add_option("--device", args.device, "auto, cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd.add_option("--threads", args.threads, "CPU threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--gguf-weights", args.gguf_weights,
                 "GGUF weights on the GPU: bf16 (dequantized at upload) or blocks (kept as GGUF "
                 "blocks)")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "blocks"}))
      ->envname("TESSERA_GGUF_WEIGHTS");
}

std::unique_ptr<Ops> make_local_backend(const LocalBackendArgs& a) {
  std::unique_ptr<Ops> ops;
  if (a.device == "cpu") {
    ops = make_cpu_ops(a.threads);
  } else if (a.device == "cuda") {
    ops = make_cuda_ops(0);
  } else if (a.device == "auto") {
    ops = cuda_available() ? make_cuda_ops(0) : make_cpu_ops(a.threads);
  } else {
    throw Error(ErrorKind::kInvalidArgument, "--device must be auto, cpu or cuda");
  }
  ops->set_gguf_blocks(a.gguf_weights == "blocks");
  return ops;
}

}  // namespace tessera
