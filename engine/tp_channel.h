#pragma once
// The control channel between rank 0 (the server process) and the tensor-parallel workers:
// plain TCP, so ranks on other machines run the same code. At start each worker connects to
// rank 0's --master HOST:PORT and says hello (rank, world size, protocol version); rank 0
// answers with the bootstrap blob (the NCCL unique id and the model spec), then sends one
// frame per step (the step's layout). A worker that dies closes its socket, which rank 0 sees
// at the next send or poll; a worker that hangs is caught by the send timeout and by
// `check_alive` between steps. Frames are length-prefixed byte strings.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

struct TpEndpoint {
  std::string host;
  int port = 0;
  // "HOST:PORT"; throws Error(kInvalidArgument) on a malformed one.
  static TpEndpoint parse(const std::string& s);
};

class TpMaster {
 public:
  // Listens on `bind` (port 0: any free port, see port()). Does not block.
  TpMaster(const TpEndpoint& bind, int world);
  ~TpMaster();
  TpMaster(const TpMaster&) = delete;
  TpMaster& operator=(const TpMaster&) = delete;

  int port() const { return port_; }
  // Waits for every worker's hello and sends each the bootstrap blob. Throws Error(kInternal)
  // naming the missing ranks when `timeout` passes first, or on a bad hello.
  void accept_workers(const std::string& bootstrap, std::chrono::milliseconds timeout);
  // Sends one frame to every worker; throws Error(kInternal) naming the rank that is gone or
  // did not take the frame within `timeout`.
  void broadcast(const std::string& frame, std::chrono::milliseconds timeout);
  // Throws when a worker's socket has closed (a worker that died). Safe to call from a
  // watchdog thread while another thread broadcasts.
  void check_alive() const;
  // Closes every worker's connection: their next receive returns false (orderly shutdown).
  void close();

 private:
  int world_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<int> worker_fd_;  // index rank - 1
};

class TpWorker {
 public:
  // Connects to rank 0 (retrying until `timeout`), says hello, returns once the bootstrap
  // blob arrived. Throws Error(kInternal) on refusal or timeout.
  TpWorker(const TpEndpoint& master, int rank, int world, std::chrono::milliseconds timeout);
  ~TpWorker();
  TpWorker(const TpWorker&) = delete;
  TpWorker& operator=(const TpWorker&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  enum class Received { kFrame, kClosed, kIdle };
  // The next frame. kClosed: rank 0 closed the channel (orderly shutdown, or rank 0 died);
  // kIdle: nothing began to arrive within `idle` (a server without requests is idle). Throws
  // on a broken frame or one that stops half way.
  Received receive(std::string& frame, std::chrono::milliseconds idle);

 private:
  int fd_ = -1;
  std::string bootstrap_;
};

}  // namespace tessera
