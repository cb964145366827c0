#pragma once
// The gRPC frontend (proto/inference.proto, package tessera.v1) over the same engine as the
// HTTP one. Built only with TESSERA_GRPC (its sources are grpc_*.cpp).
#include <memory>
#include <string>

namespace tessera {

class Engine;
namespace metrics {
class Registry;
}

struct GrpcOptions {
  std::string host = "127.0.0.1";
  int port = 50051;  // 0: any free port (see GrpcServer::port())
  std::string api_key;
  std::string batching_policy;  // reported by ModelInfo
  std::string device;
  int health_stall_timeout_ms = 30000;
};

class GrpcServer {
 public:
  GrpcServer(Engine& engine, GrpcOptions options, metrics::Registry& registry);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Binds and starts serving on gRPC's own threads; throws Error when it cannot bind.
  void start();
  int port() const;
  // New Generate calls answer UNAVAILABLE; calls in flight continue.
  void begin_drain();
  // Cancels in-flight calls and waits for them to end.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
