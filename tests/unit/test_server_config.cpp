// `tessera serve` JSON config: keys map onto EngineConfig and frontend options; typos, wrong
// types and bad values are errors naming the key; the shipped configs parse and validate.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "server/serve_config.h"

using namespace tessera;
using json = nlohmann::json;

namespace {

std::string error_of(const json& j) {
  ServeConfig c;
  try {
    apply_serve_json(c, j);
    validate_serve_config(c);
    c.engine.validate();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("serve config keys map onto the engine and frontends", "[server_config]") {
  ServeConfig c;
  apply_serve_json(c, json::parse(R"({
    "_comment": "ignored", "model": "m.gguf", "policy": "static", "static_batch_size": 4,
    "kv_cache_mb": 3, "port": 9000, "grpc_port": 0, "host": "0.0.0.0", "api_key": "k",
    "enable_chunked_prefill": false, "health_stall_timeout_ms": 1234, "max_body_bytes": 99,
    "log_level": "debug", "max_num_batched_tokens": null, "gguf_weights": "blocks"})"));
  CHECK(c.engine.model == "m.gguf");
  CHECK(c.engine.policy == BatchingPolicy::kStatic);
  CHECK(c.engine.static_batch_size == 4);
  CHECK(c.engine.kv_cache_bytes == 3 << 20);
  CHECK(c.http.port == 9000);
  CHECK(c.grpc_port == 0);
  CHECK(c.http.host == "0.0.0.0");
  CHECK(c.http.api_key == "k");
  CHECK_FALSE(c.engine.enable_chunked_prefill);
  CHECK(c.engine.health_stall_timeout_ms == 1234);
  CHECK(c.http.health_stall_timeout_ms == 1234);  // /health uses the same threshold
  CHECK(c.http.max_body_bytes == 99);
  CHECK(c.log_level == "debug");
  CHECK(c.engine.max_num_batched_tokens == EngineConfig{}.max_num_batched_tokens);  // null
  CHECK(c.engine.gguf_weights == "blocks");
  CHECK(EngineConfig{}.gguf_weights == "bf16");
}

TEST_CASE("serve config errors name the key", "[server_config]") {
  CHECK_THAT(error_of({{"max_num_seq", 4}}), Catch::Contains("'max_num_seq'"));
  CHECK_THAT(error_of({{"port", "8000"}}), Catch::Contains("'port' must be an integer"));
  CHECK_THAT(error_of({{"port", 70000}}), Catch::Contains("'port'"));
  CHECK_THAT(error_of({{"policy", "greedy"}}), Catch::Contains("policy"));
  CHECK_THAT(error_of({{"enable_prefix_caching", 1}}), Catch::Contains("must be a boolean"));
  CHECK_THAT(error_of({{"log_level", "loud"}}), Catch::Contains("'log_level'"));
  CHECK_THAT(error_of({{"max_num_seqs", 0}}), Catch::Contains("max_num_seqs"));
  CHECK_THAT(error_of({{"gguf_weights", "int4"}}), Catch::Contains("gguf_weights"));
  CHECK_THAT(error_of(json::array()), Catch::Contains("JSON object"));
  CHECK(error_of({{"port", 8001}}).empty());
}

TEST_CASE("shipped serve configs load and validate", "[server_config]") {
  for (const char* name :
       {"serve-default.json", "serve-static.json", "serve-dynamic.json", "serve-docker.json"}) {
    INFO(name);
    ServeConfig c;
    REQUIRE_NOTHROW(
        load_serve_config_file(c, std::string(TESSERA_SOURCE_DIR) + "/configs/" + name));
    CHECK_NOTHROW(validate_serve_config(c));
    CHECK_NOTHROW(c.engine.validate());
  }
  ServeConfig c;
  CHECK_THROWS_AS(load_serve_config_file(c, "/nonexistent/serve.json"), Error);
}
