#pragma once
// `tessera serve` configuration: a flat JSON object (configs/serve-*.json) whose keys are the
// EngineConfig fields plus the frontends' options, then CLI overrides on top. Unknown keys
// and wrong types are errors naming the key, so a typo never silently falls back to a default.
#include <string>

#include <nlohmann/json.hpp>

#include "engine/engine_config.h"
#include "server/http_server.h"

namespace tessera {

struct ServeConfig {
  EngineConfig engine;
  HttpOptions http;
  std::string grpc_host;  // empty: same as http.host
  int grpc_port = 50051;  // 0 disables gRPC
  std::string log_level = "info";
  std::string log_format = "text";  // text | json
  // SIGTERM/SIGINT: in-flight requests may finish for this long, then they are cancelled.
  int drain_timeout_s = 30;
};

// Applies the keys of `j` onto `cfg`; throws Error(kInvalidArgument) naming a bad key.
void apply_serve_json(ServeConfig& cfg, const nlohmann::json& j);
// Reads and applies a JSON file.
void load_serve_config_file(ServeConfig& cfg, const std::string& path);
// Checks the frontend options (the engine's are EngineConfig::validate()).
void validate_serve_config(const ServeConfig& cfg);

BatchingPolicy parse_batching_policy(const std::string& name);

}  // namespace tessera
