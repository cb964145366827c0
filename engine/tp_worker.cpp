#include "engine/tp_worker.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "engine/tp_channel.h"
#include "engine/tp_frame.h"
#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/tp_model.h"
#include "model/tp_shard.h"
#include "model/weights.h"

namespace tessera {
namespace {

using std::chrono::milliseconds;

std::string to_hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

std::string from_hex(const std::string& hex) {
  auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw Error(ErrorKind::kInvalidArgument, "tensor parallel: bad hex in the bootstrap");
  };
  if (hex.size() % 2 != 0) throw Error(ErrorKind::kInvalidArgument, "tensor parallel: odd hex");
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2)
    out += static_cast<char>(v(hex[i]) * 16 + v(hex[i + 1]));
  return out;
}

}  // namespace

std::string TpBootstrap::to_json() const {
  nlohmann::json j{{"model", model},
                   {"quantization", quantization},
                   {"kv_dtype", kv_dtype},
                   {"num_blocks", num_blocks},
                   {"block_size", block_size},
                   {"nccl_id", to_hex(nccl_id)},
                   {"max_seq_len", max_seq_len},
                   {"deterministic", deterministic},
                   {"gguf_blocks", gguf_blocks}};
  return j.dump();
}

TpBootstrap TpBootstrap::from_json(const std::string& text) {
  try {
    const auto j = nlohmann::json::parse(text);
    TpBootstrap b;
    b.model = j.at("model").get<std::string>();
    b.quantization = j.at("quantization").get<std::string>();
    b.kv_dtype = j.at("kv_dtype").get<std::string>();
    b.num_blocks = j.at("num_blocks").get<int>();
    b.block_size = j.at("block_size").get<int>();
    b.max_seq_len = j.value("max_seq_len", 0);
    b.deterministic = j.value("deterministic", false);
    b.gguf_blocks = j.value("gguf_blocks", false);
    b.nccl_id = from_hex(j.at("nccl_id").get<std::string>());
    return b;
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorKind::kInvalidArgument, "tensor parallel: malformed bootstrap from rank 0");
  }
}

int run_tp_worker(const TpWorkerArgs& args) {
  const int device = args.device >= 0 ? args.device : args.rank;
  spdlog::info("worker rank {} of {}: device {}, joining rank 0 at {}", args.rank, args.world,
               device, args.master);
  TpWorker channel(TpEndpoint::parse(args.master), args.rank, args.world, std::chrono::minutes(5));
  const TpBootstrap boot = TpBootstrap::from_json(channel.bootstrap());

  std::unique_ptr<Ops> ops = make_cuda_ops(device);
  ops->set_deterministic(boot.deterministic);
  ops->set_gguf_blocks(boot.gguf_blocks);
  ops->join_collectives(boot.nccl_id, args.rank, args.world);
  TpModel tm = load_tp_model(boot.model, boot.quantization, *ops, args.rank, args.world);
  KvDtype kv_dtype = KvDtype::kAuto;
  parse_kv_dtype(boot.kv_dtype.c_str(), kv_dtype);
  tm.model->init_kv_cache(boot.num_blocks, boot.block_size, kv_dtype, boot.max_seq_len);
  spdlog::info("worker rank {}: shard loaded, {} KV blocks; serving steps", args.rank,
               boot.num_blocks);

  // A step that never finishes (a peer died inside a collective) ends the process instead
  // of hanging it: the watchdog aborts after this long without progress.
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto now_ms = [t0] {
    return std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
  };
  std::atomic<int64_t> step_started_ms{-1};
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    while (!done.load()) {
      std::this_thread::sleep_for(milliseconds(500));
      const int64_t s = step_started_ms.load();
      if (s >= 0 && now_ms() - s > 120000) {
        spdlog::error("worker rank {}: a step has not finished in 120 s; exiting", args.rank);
        ops->abort_collectives();
        std::_Exit(1);
      }
    }
  });
  int code = 0;
  std::string frame;
  try {
    for (;;) {
      const auto got = channel.receive(frame, std::chrono::seconds(1));
      if (got == TpWorker::Received::kIdle) continue;
      if (got == TpWorker::Received::kClosed) {
        spdlog::error("worker rank {}: rank 0 closed the channel without a shutdown", args.rank);
        code = 1;
        break;
      }
      const TpStepFrame f = decode_frame(frame);
      if (f.kind == TpStepFrame::Kind::kShutdown) break;
      step_started_ms = now_ms();
      if (!f.copies.empty()) tm.model->copy_kv_blocks(f.copies);
      if (f.layout.num_tokens() > 0) tm.model->forward_on_device(f.layout);
      ops->synchronize();
      step_started_ms = -1;
    }
  } catch (const std::exception& e) {
    spdlog::error("worker rank {}: {}", args.rank, e.what());
    code = 1;
  }
  done = true;
  watchdog.join();
  spdlog::info("worker rank {}: exiting ({})", args.rank, code);
  return code;
}

}  // namespace tessera
