// The HTTP frontend against a scripted engine: OpenAI response shapes, SSE framing, error
// bodies and status codes, auth, queue-full 429, health/ready, and cancellation when a
// streaming client disconnects. Limits and hostile clients: test_server_http_limits.cpp. The
// real engine is exercised by tests/e2e.
#include <catch2/catch.hpp>

#include <thread>

#include "server_http_fixture.h"

using namespace tessera;
using namespace tessera::testing;

TEST_CASE("completion returns OpenAI JSON with usage", "[server][http]") {
  Fixture f;
  auto r = f.post("/v1/completions",
                  R"({"model":"toy","prompt":"hi","max_tokens":4,"n":2,"logprobs":2})");
  REQUIRE(r.status == 200);
  json j = json::parse(r.body);
  CHECK(j["object"] == "text_completion");
  CHECK(j["model"] == "toy");
  REQUIRE(j["choices"].size() == 2);
  CHECK(j["choices"][0]["text"] == "abcd");
  CHECK(j["choices"][1]["text"] == "bcde");
  CHECK(j["choices"][0]["finish_reason"] == "length");
  CHECK(j["choices"][0]["logprobs"]["tokens"] == json({"a", "b", "c", "d"}));
  CHECK(j["choices"][0]["logprobs"]["text_offset"] == json({0, 1, 2, 3}));
  CHECK(j["choices"][0]["logprobs"]["top_logprobs"][0].size() == 2);
  CHECK(j["usage"]["prompt_tokens"] == 3);  // BOS + 2 bytes
  CHECK(j["usage"]["completion_tokens"] == 8);
  CHECK(j["usage"]["total_tokens"] == 11);
  // Extensions and sampling fields reach the engine.
  auto r2 = f.post("/v1/completions",
                   R"({"prompt":[5,6,7],"max_tokens":2,"priority":7,"ignore_eos":true,
                       "temperature":0,"top_k":-1,"seed":-3,"stop":"x"})");
  CHECK(r2.status == 200);
  CHECK(f.engine.last_request().priority == 7);
  CHECK(f.engine.last_request().sampling.ignore_eos);
  CHECK(f.engine.last_request().sampling.top_k == 0);
  CHECK(f.engine.last_request().sampling.stop == std::vector<std::string>{"x"});
  CHECK(f.engine.last_request().prompt == std::vector<int32_t>{5, 6, 7});
}

TEST_CASE("chat stream: role chunk, deltas, usage chunk, [DONE]", "[server][http]") {
  Fixture f;
  auto r = f.post("/v1/chat/completions",
                  R"({"model":"toy","messages":[{"role":"user","content":"hey"}],
                      "max_tokens":3,"stream":true,"stream_options":{"include_usage":true}})");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type").starts_with("text/event-stream"));
  auto data = sse_data(r.body);
  REQUIRE(data.size() >= 5);
  CHECK(data.back() == "[DONE]");
  json first = json::parse(data[0]);
  CHECK(first["object"] == "chat.completion.chunk");
  CHECK(first["choices"][0]["delta"]["role"] == "assistant");
  CHECK(first["usage"].is_null());
  std::string text;
  std::string finish;
  for (size_t i = 1; i + 2 < data.size(); ++i) {
    json c = json::parse(data[i]);
    auto& ch = c["choices"][0];
    if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  CHECK(text == "abc");
  CHECK(finish == "length");
  json usage = json::parse(data[data.size() - 2]);
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["completion_tokens"] == 3);
  // The prompt is the rendered template, without BOS (the template owns special tokens).
  CHECK(f.engine.last_request().prompt.front() == 258);
  CHECK(usage["usage"]["prompt_tokens"] == int(f.engine.last_request().prompt.size()));
}

TEST_CASE("chat max_tokens defaults to the room left in the context", "[server][http]") {
  Fixture f;
  auto r = f.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})");
  CHECK(r.status == 200);
  CHECK(f.engine.last_request().sampling.max_tokens ==
        64 - int(f.engine.last_request().prompt.size()));
}

TEST_CASE("malformed requests get 4xx with an OpenAI error body naming the field",
          "[server][http]") {
  HttpOptions o;
  o.max_body_bytes = 4096;
  Fixture f(o);
  check_error(f.post("/v1/completions", "{not json"), 400, "", "invalid_json");
  check_error(f.post("/v1/completions", "[1,2]"), 400, "");
  check_error(f.post("/v1/completions", R"({"prompt":"a","temperature":"hot"})"), 400,
              "temperature");
  check_error(f.post("/v1/completions", R"({"prompt":"a","temperature":9})"), 400, "temperature");
  check_error(f.post("/v1/completions", R"({"prompt":"a","max_tokens":2.5})"), 400, "max_tokens");
  check_error(f.post("/v1/completions", R"({"prompt":"a","max_tokens":0})"), 400, "max_tokens");
  check_error(f.post("/v1/completions", R"({"prompt":"a","n":0})"), 400, "n");
  check_error(f.post("/v1/completions", R"({"prompt":"a","top_p":0})"), 400, "top_p");
  check_error(f.post("/v1/completions", R"({"prompt":"a","logprobs":99})"), 400, "logprobs");
  check_error(f.post("/v1/completions", R"({"prompt":"a","stop":[1]})"), 400, "stop");
  check_error(f.post("/v1/completions", R"({"prompt":"a","echo":true})"), 400, "echo");
  check_error(f.post("/v1/completions", R"({"prompt":"a","stream_options":{}})"), 400,
              "stream_options");
  check_error(f.post("/v1/completions", R"({"prompt":[1,99999]})"), 400, "prompt");
  check_error(f.post("/v1/completions", R"({"prompt":[]})"), 400, "prompt");
  check_error(f.post("/v1/completions", R"({"max_tokens":3})"), 400, "prompt");
  check_error(f.post("/v1/completions", R"({"model":"gpt-4","prompt":"a"})"), 404, "model",
              "model_not_found");
  check_error(f.post("/v1/completions", "{\"prompt\":\"\xff\xfe\"}"), 400, "", "invalid_json");
  // 64-token context: 3 prompt tokens + 62 > 64.
  check_error(f.post("/v1/completions", R"({"prompt":"ab","max_tokens":62})"), 400, "max_tokens",
              "context_length_exceeded");
  check_error(f.post("/v1/completions", json({{"prompt", std::string(80, 'x')}}).dump()), 400,
              "prompt", "context_length_exceeded");
  check_error(f.post("/v1/completions", json({{"prompt", std::string(5000, 'x')}}).dump()), 413, "",
              "request_too_large");
  check_error(f.post("/v1/chat/completions", R"({"messages":[]})"), 400, "messages");
  check_error(f.post("/v1/chat/completions", R"({"messages":[{"role":"wizard","content":"x"}]})"),
              400, "messages[0].role");
  check_error(f.post("/v1/chat/completions",
                     R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})"),
              400, "top_logprobs");
  check_error(f.post("/v1/chat/completions",
                     R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"f"}]})"),
              400, "tools");
  check_error(f.get("/v1/nothing"), 404, "");
  // The server still serves after all of that.
  auto ok = f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})");
  CHECK(ok.status == 200);
}

TEST_CASE("api key: 401 without it, 200 with it, probes stay open", "[server][http]") {
  HttpOptions o;
  o.api_key = "sekret";
  Fixture f(o);
  check_error(f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})"), 401, "",
              "invalid_api_key");
  check_error(f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})",
                     {{"Authorization", "Bearer nope"}}),
              401, "", "invalid_api_key");
  auto ok = f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})",
                   {{"Authorization", "Bearer sekret"}});
  CHECK(ok.status == 200);
  auto health = f.get("/health");
  CHECK(health.status == 200);
  auto models = f.get("/v1/models");
  CHECK(models.status == 401);
}

TEST_CASE("a full queue is 429 with Retry-After", "[server][http]") {
  Fixture f;
  f.engine.queue_full = true;
  auto r = f.post("/v1/completions", R"({"prompt":"a"})");
  check_error(r, 429, "");
  CHECK(r.header("retry-after") == "1");
}

TEST_CASE("health turns 503 on a stalled loop; ready only after the first step", "[server][http]") {
  HttpOptions o;
  o.health_stall_timeout_ms = 200;
  Fixture f(o);
  auto h = f.get("/health");
  CHECK(h.status == 200);
  f.engine.last_step_end = Clock::now() - std::chrono::seconds(1);
  h = f.get("/health");
  CHECK(h.status == 503);
  f.engine.is_ready = false;
  auto r = f.get("/ready");
  CHECK(r.status == 503);
  f.engine.is_ready = true;
  r = f.get("/ready");
  CHECK(r.status == 200);
}

TEST_CASE("tokenize, detokenize and models endpoints", "[server][http]") {
  Fixture f;
  auto t = f.post("/tokenize", R"({"prompt":"hi"})");
  REQUIRE(t.status == 200);
  json tj = json::parse(t.body);
  CHECK(tj["tokens"] == json({256, 'h', 'i'}));
  CHECK(tj["count"] == 3);
  CHECK(tj["max_model_len"] == 64);
  auto d = f.post("/detokenize", R"({"tokens":[104,105]})");
  REQUIRE(d.status == 200);
  CHECK(json::parse(d.body)["prompt"] == "hi");
  check_error(f.post("/detokenize", R"({"tokens":[100000]})"), 400, "tokens");
  check_error(f.post("/detokenize", R"({"tokens":"x"})"), 400, "tokens");
  auto m = f.get("/v1/models");
  json mj = json::parse(m.body);
  CHECK(mj["data"][0]["id"] == "toy");
  auto metrics = f.get("/metrics");
  CHECK(metrics.body.find("tessera:http_requests_total{route=\"/tokenize\",status=\"200\"} 1") !=
        std::string::npos);
  CHECK(metrics.body.find("tessera:engine_last_step_age_seconds") != std::string::npos);
}

TEST_CASE("a streaming client that disconnects cancels its request", "[server][http]") {
  Fixture f;
  f.engine.token_delay = std::chrono::milliseconds(20);
  RawConn c(f.port);
  REQUIRE(c.fd >= 0);
  std::string body = R"({"prompt":"a","max_tokens":60,"stream":true})";
  REQUIRE(
      c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body));
  char buf[512];
  REQUIRE(::recv(c.fd, buf, sizeof(buf), 0) > 0);  // headers (and maybe a chunk) arrived
  c.close();
  // 60 tokens x 20 ms = 1.2 s if it ran to the end; cancelled well before.
  auto deadline = Clock::now() + std::chrono::milliseconds(800);
  while (f.engine.cancels.load() == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(f.engine.cancels.load() == 1);
}
