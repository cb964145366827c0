#include "server/serve_config.h"

#include <fstream>
#include <functional>
#include <map>

#include "common/error.h"

namespace tessera {

using json = nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& key, const std::string& why) {
  throw Error(ErrorKind::kInvalidArgument, "config: '" + key + "' " + why);
}

int64_t as_int(const std::string& key, const json& v) {
  if (!v.is_number_integer()) bad(key, "must be an integer");
  return v.get<int64_t>();
}
int as_int32(const std::string& key, const json& v) {
  int64_t x = as_int(key, v);
  if (x < INT32_MIN || x > INT32_MAX) bad(key, "is out of range");
  return static_cast<int>(x);
}
double as_number(const std::string& key, const json& v) {
  if (!v.is_number()) bad(key, "must be a number");
  return v.get<double>();
}
bool as_bool(const std::string& key, const json& v) {
  if (!v.is_boolean()) bad(key, "must be a boolean");
  return v.get<bool>();
}
std::string as_string(const std::string& key, const json& v) {
  if (!v.is_string()) bad(key, "must be a string");
  return v.get<std::string>();
}

using Setter = std::function<void(ServeConfig&, const std::string&, const json&)>;

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      // Engine
      {"model", [](auto& c, auto& k, auto& v) { c.engine.model = as_string(k, v); }},
      {"served_model_name",
       [](auto& c, auto& k, auto& v) { c.engine.served_model_name = as_string(k, v); }},
      {"device", [](auto& c, auto& k, auto& v) { c.engine.device = as_string(k, v); }},
      {"num_threads", [](auto& c, auto& k, auto& v) { c.engine.num_threads = as_int32(k, v); }},
      {"quantization", [](auto& c, auto& k, auto& v) { c.engine.quantization = as_string(k, v); }},
      {"tensor_parallel",
       [](auto& c, auto& k, auto& v) { c.engine.tensor_parallel = as_int32(k, v); }},
      {"kv_cache_bytes", [](auto& c, auto& k, auto& v) { c.engine.kv_cache_bytes = as_int(k, v); }},
      {"kv_cache_mb",
       [](auto& c, auto& k, auto& v) { c.engine.kv_cache_bytes = as_int(k, v) << 20; }},
      {"gpu_memory_fraction",
       [](auto& c, auto& k, auto& v) { c.engine.gpu_memory_fraction = float(as_number(k, v)); }},
      {"block_size", [](auto& c, auto& k, auto& v) { c.engine.block_size = as_int32(k, v); }},
      {"enable_prefix_caching",
       [](auto& c, auto& k, auto& v) { c.engine.enable_prefix_caching = as_bool(k, v); }},
      {"max_model_len", [](auto& c, auto& k, auto& v) { c.engine.max_model_len = as_int32(k, v); }},
      {"deterministic", [](auto& c, auto& k, auto& v) { c.engine.deterministic = as_bool(k, v); }},
      {"gguf_weights", [](auto& c, auto& k, auto& v) { c.engine.gguf_weights = as_string(k, v); }},
      {"policy",
       [](auto& c, auto& k, auto& v) { c.engine.policy = parse_batching_policy(as_string(k, v)); }},
      {"max_num_seqs", [](auto& c, auto& k, auto& v) { c.engine.max_num_seqs = as_int32(k, v); }},
      {"max_num_batched_tokens",
       [](auto& c, auto& k, auto& v) { c.engine.max_num_batched_tokens = as_int32(k, v); }},
      {"enable_chunked_prefill",
       [](auto& c, auto& k, auto& v) { c.engine.enable_chunked_prefill = as_bool(k, v); }},
      {"static_batch_size",
       [](auto& c, auto& k, auto& v) { c.engine.static_batch_size = as_int32(k, v); }},
      {"static_flush_timeout_ms",
       [](auto& c, auto& k, auto& v) { c.engine.static_flush_timeout_ms = as_int32(k, v); }},
      {"dynamic_max_queue_delay_ms",
       [](auto& c, auto& k, auto& v) { c.engine.dynamic_max_queue_delay_ms = as_int32(k, v); }},
      {"max_waiting", [](auto& c, auto& k, auto& v) { c.engine.max_waiting = as_int32(k, v); }},
      {"speculative", [](auto& c, auto& k, auto& v) { c.engine.speculative = as_string(k, v); }},
      {"async_scheduling",
       [](auto& c, auto& k, auto& v) { c.engine.async_scheduling = as_string(k, v); }},
      {"num_speculative_tokens",
       [](auto& c, auto& k, auto& v) { c.engine.num_speculative_tokens = as_int32(k, v); }},
      {"draft_model", [](auto& c, auto& k, auto& v) { c.engine.draft_model = as_string(k, v); }},
      {"speculative_early_exit_layers",
       [](auto& c, auto& k, auto& v) { c.engine.speculative_early_exit_layers = as_int32(k, v); }},
      {"speculative_ngram_min",
       [](auto& c, auto& k, auto& v) { c.engine.speculative_ngram_min = as_int32(k, v); }},
      {"speculative_ngram_max",
       [](auto& c, auto& k, auto& v) { c.engine.speculative_ngram_max = as_int32(k, v); }},
      {"speculative_max_step_tokens",
       [](auto& c, auto& k, auto& v) { c.engine.speculative_max_step_tokens = as_int32(k, v); }},
      {"speculative_adaptive",
       [](auto& c, auto& k, auto& v) { c.engine.speculative_adaptive = as_bool(k, v); }},
      {"health_stall_timeout_ms",
       [](auto& c, auto& k, auto& v) {
         c.engine.health_stall_timeout_ms = as_int32(k, v);
         c.http.health_stall_timeout_ms = c.engine.health_stall_timeout_ms;
       }},
      // Frontends
      {"host", [](auto& c, auto& k, auto& v) { c.http.host = as_string(k, v); }},
      {"port", [](auto& c, auto& k, auto& v) { c.http.port = as_int32(k, v); }},
      {"grpc_host", [](auto& c, auto& k, auto& v) { c.grpc_host = as_string(k, v); }},
      {"grpc_port", [](auto& c, auto& k, auto& v) { c.grpc_port = as_int32(k, v); }},
      {"api_key", [](auto& c, auto& k, auto& v) { c.http.api_key = as_string(k, v); }},
      {"max_body_bytes",
       [](auto& c, auto& k, auto& v) {
         int64_t x = as_int(k, v);
         if (x < 1) bad(k, "must be >= 1");
         c.http.max_body_bytes = size_t(x);
       }},
      {"http_threads", [](auto& c, auto& k, auto& v) { c.http.threads = as_int32(k, v); }},
      {"stream_keepalive_ms",
       [](auto& c, auto& k, auto& v) { c.http.stream_keepalive_ms = as_int32(k, v); }},
      {"log_level", [](auto& c, auto& k, auto& v) { c.log_level = as_string(k, v); }},
      {"log_format", [](auto& c, auto& k, auto& v) { c.log_format = as_string(k, v); }},
      {"drain_timeout_s", [](auto& c, auto& k, auto& v) { c.drain_timeout_s = as_int32(k, v); }},
  };
  return table;
}

}  // namespace

BatchingPolicy parse_batching_policy(const std::string& name) {
  if (name == "static") return BatchingPolicy::kStatic;
  if (name == "dynamic") return BatchingPolicy::kDynamic;
  if (name == "continuous") return BatchingPolicy::kContinuous;
  throw Error(ErrorKind::kInvalidArgument,
              "policy must be static, dynamic or continuous (got '" + name + "')");
}

void apply_serve_json(ServeConfig& cfg, const json& j) {
  if (!j.is_object()) throw Error(ErrorKind::kInvalidArgument, "config: must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (key.starts_with("_")) continue;  // "_comment" and friends
    auto it = setters().find(key);
    if (it == setters().end()) bad(key, "is not a known setting");
    if (value.is_null()) continue;
    it->second(cfg, key, value);
  }
}

void load_serve_config_file(ServeConfig& cfg, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::kNotFound, "config file not found: " + path);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw Error(ErrorKind::kInvalidArgument, "config file " + path + ": " + e.what());
  }
  apply_serve_json(cfg, j);
}

void validate_serve_config(const ServeConfig& cfg) {
  auto port_ok = [](int p) { return p >= 0 && p <= 65535; };
  if (!port_ok(cfg.http.port)) bad("port", "must be in [0, 65535]");
  if (!port_ok(cfg.grpc_port)) bad("grpc_port", "must be in [0, 65535]");
  if (cfg.http.threads < 1) bad("http_threads", "must be >= 1");
  if (cfg.http.stream_keepalive_ms < 10) bad("stream_keepalive_ms", "must be >= 10");
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  bool level_ok = false;
  for (const char* l : kLevels) level_ok |= cfg.log_level == l;
  if (!level_ok) bad("log_level", "must be trace, debug, info, warn, error, critical or off");
  if (cfg.log_format != "text" && cfg.log_format != "json")
    bad("log_format", "must be text or json");
  if (cfg.drain_timeout_s < 0) bad("drain_timeout_s", "must be >= 0");
}

}  // namespace tessera
