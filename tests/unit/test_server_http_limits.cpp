// The HTTP frontend under hostile or unusual clients: size and framing limits, JSON depth,
// slow clients and timeouts, disconnects, the connection cap, request ids, drain and stop.
#include <catch2/catch.hpp>

#include <thread>

#include "engine/result_stream_impl.h"
#include "server_http_fixture.h"
#include "timeout_scale.h"

using namespace tessera;
using namespace tessera::testing;
using std::chrono::milliseconds;

namespace {

std::string raw_post(const std::string& path, const std::string& body,
                     const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string body_of(const std::string& raw) {
  auto p = raw.find("\r\n\r\n");
  return p == std::string::npos ? "" : raw.substr(p + 4);
}

template <class F>
bool eventually(F f, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!f()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

}  // namespace

TEST_CASE("stream state calls its listener after each event", "[http]") {
  StreamState st(1, nullptr);
  std::atomic<int> calls{0};
  st.set_listener([&] { ++calls; });
  GenerationEvent e;
  e.text = "a";
  st.push(e);
  e.finish = FinishReason::kLength;
  st.push(e);
  st.push(e);  // after the finish: dropped, no call
  CHECK(calls == 2);
  st.set_listener({});
  CHECK(st.next(milliseconds(0)).has_value());
}

TEST_CASE("body limit holds for chunked bodies; CL with TE is refused", "[http]") {
  HttpOptions o;
  o.max_body_bytes = 4096;
  Fixture f(o);
  {
    RawConn c(f.port);
    std::string req =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    REQUIRE(c.send(req));
    std::string chunk(1000, 'x');
    char size[16];
    std::snprintf(size, sizeof(size), "%zx\r\n", chunk.size());
    for (int i = 0; i < 8; ++i) {
      if (!c.send(size + chunk + "\r\n")) break;  // the server may close once over the limit
    }
    std::string out = c.read_all(milliseconds(3000));
    CHECK(status_of(out) == 413);
    CHECK(json::parse(body_of(out))["error"]["code"] == "request_too_large");
  }
  {
    RawConn c(f.port);
    REQUIRE(
        c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    std::string out = c.read_all(milliseconds(3000));
    CHECK(status_of(out) == 400);
    CHECK(json::parse(body_of(out))["error"]["message"].get<std::string>().find(
              "Transfer-Encoding") != std::string::npos);
  }
  {
    // A declared Content-Length over the limit is refused before the body is read, and the
    // reply still reaches a client that keeps sending (lingering close, no reset).
    RawConn c(f.port);
    REQUIRE(c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
    c.send(std::string(100000, 'x'));
    CHECK(status_of(c.read_all(milliseconds(3000))) == 413);
  }
  // Chunked within the limit works.
  RawConn c(f.port);
  std::string body = R"({"prompt":"a","max_tokens":2})";
  char size[16];
  std::snprintf(size, sizeof(size), "%zx\r\n", body.size());
  REQUIRE(
      c.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             "Transfer-Encoding: chunked\r\n\r\n" +
             std::string(size) + body + "\r\n0\r\n\r\n"));
  std::string out = c.read_all(milliseconds(3000));
  CHECK(status_of(out) == 200);
}

TEST_CASE("bad input gets 400 with our words, never the JSON library's", "[http]") {
  Fixture f;
  auto expect_clean_400 = [&](const HttpResponse& r, const std::string& needle) {
    INFO(r.body);
    CHECK(r.status == 400);
    json j = json::parse(r.body);
    const std::string msg = j["error"]["message"];
    CHECK(msg.find("json.exception") == std::string::npos);
    CHECK(msg.find("parse_error") == std::string::npos);
    CHECK(msg.find("type_error") == std::string::npos);
    if (!needle.empty()) CHECK(msg.find(needle) != std::string::npos);
  };
  expect_clean_400(f.post("/v1/completions", std::string(100, '[')), "deeper than 64");
  expect_clean_400(f.post("/v1/completions", "{\"prompt\":" + std::string(5000, '[')),
                   "deeper than 64");
  expect_clean_400(f.post("/v1/completions", "{\"prompt\": tru}"), "not valid JSON at byte");
  expect_clean_400(f.post("/v1/completions", "{\"prompt\": \"a\xff\"}"), "UTF-8");
  expect_clean_400(f.post("/v1/completions", "{\"prompt\": \"a\""), "ends early");
  expect_clean_400(f.post("/v1/completions", ""), "empty");
  expect_clean_400(f.post("/v1/completions", R"({"prompt":"a","max_tokens":1e400})"), "");
  expect_clean_400(f.post("/v1/completions", R"({"prompt":"a","temperature":1e400})"), "");
  expect_clean_400(f.post("/v1/completions", R"({"prompt":"a","seed":123456789012345678901234})"),
                   "seed");
  expect_clean_400(f.post("/v1/completions", R"({"prompt":{"a":1}})"), "prompt");
  expect_clean_400(f.post("/tokenize",
                          "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                          "[[[[[[[[[[[[[[[[[[[[[[]]]"),
                   "deeper");
  auto wrong_type = http_request(f.port, "POST", "/v1/completions",
                                 R"({"prompt":"a","max_tokens":1})", {}, "text/plain");
  expect_clean_400(wrong_type, "Content-Type");
  CHECK(json::parse(wrong_type.body)["error"]["code"] == "invalid_content_type");
  // A depth just under the limit parses (and fails later, on the field).
  check_error(
      f.post("/v1/completions", "{\"prompt\":" + std::string(62, '[') + std::string(62, ']') + "}"),
      400, "prompt");
  auto wrong_method = f.get("/v1/completions");
  CHECK(wrong_method.status == 405);
  CHECK(f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})").status == 200);
}

TEST_CASE("slow and idle clients are closed after their timeouts", "[http]") {
  HttpOptions o;
  o.header_timeout_ms = 300;
  o.body_timeout_ms = 300;
  o.keepalive_timeout_ms = 300;
  Fixture f(o);
  const auto t0 = Clock::now();
  RawConn trickle(f.port), silent(f.port), body(f.port), idle(f.port);
  REQUIRE(trickle.send("GET /health HTTP/1.1\r\nHo"));
  REQUIRE(body.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"));
  REQUIRE(idle.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  bool closed = false;
  std::string out = trickle.read_all(milliseconds(3000), &closed);
  CHECK(closed);
  CHECK(status_of(out) == 408);
  CHECK(Clock::now() - t0 < milliseconds(2500));
  out = silent.read_all(milliseconds(3000), &closed);
  CHECK(closed);
  CHECK(out.empty());  // never spoke: closed without a word
  out = body.read_all(milliseconds(3000), &closed);
  CHECK(closed);
  CHECK(status_of(out) == 408);
  out = idle.read_all(milliseconds(3000), &closed);
  CHECK(closed);
  CHECK(status_of(out) == 200);  // answered, then dropped after the keep-alive timeout
  // The server still answers.
  CHECK(f.get("/health").status == 200);
}

TEST_CASE("a non-streaming client that disconnects cancels its request", "[http]") {
  Fixture f;
  f.engine.token_delay = milliseconds(20);
  RawConn c(f.port);
  REQUIRE(c.send(raw_post("/v1/completions", R"({"prompt":"a","max_tokens":60})")));
  REQUIRE(eventually([&] { return f.engine.submitted.load() == 1; }, milliseconds(2000)));
  c.close();
  // 60 tokens x 20 ms = 1.2 s if it ran to the end; cancelled well before.
  CHECK(eventually([&] { return f.engine.cancels.load() == 1; }, milliseconds(800)));
}

TEST_CASE("X-Request-Id is echoed, or generated when absent or unusable", "[http]") {
  Fixture f;
  auto r =
      f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})", {{"X-Request-Id", "trace-42"}});
  CHECK(r.header("x-request-id") == "trace-42");
  CHECK(json::parse(r.body)["id"].get<std::string>().starts_with("cmpl-"));
  r = f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})");
  CHECK(r.header("x-request-id") == json::parse(r.body)["id"].get<std::string>());
  r = f.get("/health", {{"X-Request-Id", "abc"}});
  CHECK(r.header("x-request-id") == "abc");
  r = f.get("/health", {{"X-Request-Id", std::string(300, 'a')}});
  CHECK(r.header("x-request-id").starts_with("req-"));
  check_error(f.get("/nope", {{"X-Request-Id", "e1"}}), 404, "");
  CHECK(f.get("/nope", {{"X-Request-Id", "e1"}}).header("x-request-id") == "e1");
}

TEST_CASE("drain: ready and new completions 503, health 200, in-flight work finishes", "[http]") {
  Fixture f;
  f.engine.token_delay = milliseconds(10);
  HttpResponse inflight;
  std::thread t([&] {
    inflight = f.post("/v1/completions", R"({"prompt":"a","max_tokens":30,"stream":true})");
  });
  REQUIRE(eventually([&] { return f.engine.submitted.load() == 1; }, milliseconds(2000)));
  f.server->begin_drain();
  CHECK(f.get("/ready").status == 503);
  CHECK(f.get("/health").status == 200);
  auto refused = f.post("/v1/completions", R"({"prompt":"a","max_tokens":1})");
  check_error(refused, 503, "");
  t.join();
  CHECK(inflight.status == 200);
  auto data = sse_data(inflight.body);
  REQUIRE(!data.empty());
  CHECK(data.back() == "[DONE]");
  CHECK(json::parse(data[data.size() - 2])["choices"][0]["finish_reason"] == "length");
}

TEST_CASE("stop cancels a stream in flight; it still ends with DONE", "[http]") {
  auto f = std::make_unique<Fixture>();
  f->engine.token_delay = milliseconds(50);
  HttpResponse r;
  std::thread t(
      [&] { r = f->post("/v1/completions", R"({"prompt":"a","max_tokens":50,"stream":true})"); });
  REQUIRE(eventually([&] { return f->engine.submitted.load() == 1; }, milliseconds(2000)));
  std::this_thread::sleep_for(milliseconds(100));
  const auto t0 = Clock::now();
  f->server->stop();
  CHECK(Clock::now() - t0 < milliseconds(3000));
  t.join();
  REQUIRE(r.status == 200);
  auto data = sse_data(r.body);
  REQUIRE(data.size() >= 2);
  CHECK(data.back() == "[DONE]");
  CHECK(json::parse(data[data.size() - 2])["choices"][0]["finish_reason"] == "cancelled");
  f.reset();
}

TEST_CASE("beyond the connection cap: 503 and close, then service resumes", "[http]") {
  HttpOptions o;
  o.max_connections = 3;
  Fixture f(o);
  std::vector<std::unique_ptr<RawConn>> held;
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<RawConn>(f.port));
  REQUIRE(eventually([&] { return f.get("/health").status == 503; }, milliseconds(2000)));
  auto r = f.get("/health");
  check_error(r, 503, "", "too_many_connections");
  CHECK(r.header("retry-after") == "1");
  held.clear();
  CHECK(eventually([&] { return f.get("/health").status == 200; }, milliseconds(2000)));
}

TEST_CASE("streams without a listener are polled; pipelining and 100-continue work", "[http]") {
  Fixture f(HttpOptions{}, /*notify=*/false);
  auto r = f.post("/v1/completions", R"({"prompt":"a","max_tokens":5,"stream":true})");
  REQUIRE(r.status == 200);
  auto data = sse_data(r.body);
  CHECK(data.back() == "[DONE]");
  r = f.post("/v1/completions", R"({"prompt":"a","max_tokens":3})");
  CHECK(json::parse(r.body)["choices"][0]["text"] == "abc");

  RawConn c(f.port);
  std::string one = raw_post("/v1/completions", R"({"prompt":"a","max_tokens":2})");
  REQUIRE(c.send(one + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::string out = c.read_all(milliseconds(3000));
  CHECK(out.find("HTTP/1.1 200") == 0);
  CHECK(out.find("HTTP/1.1 200", 10) != std::string::npos);
  CHECK(out.find("\"status\":\"ok\"") != std::string::npos);

  RawConn e(f.port);
  std::string body = R"({"prompt":"a","max_tokens":1})";
  REQUIRE(e.send(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n"));
  CHECK(e.read_all(milliseconds(1000)).starts_with("HTTP/1.1 100 Continue"));
  REQUIRE(e.send(body));
  CHECK(status_of(e.read_all(milliseconds(3000))) == 200);
}

TEST_CASE("many open streams leave probes answering at once", "[http]") {
  Fixture f;
  const int scale = tessera::test::timeout_scale();  // the streams outlast a slow start
  f.engine.token_delay = milliseconds(50) * scale;
  constexpr int kStreams = 200;
  std::vector<std::unique_ptr<RawConn>> conns;
  for (int i = 0; i < kStreams; ++i) {
    conns.push_back(std::make_unique<RawConn>(f.port));
    REQUIRE(conns.back()->send(
        raw_post("/v1/completions", R"({"prompt":"a","max_tokens":40,"stream":true})")));
  }
  REQUIRE(eventually([&] { return f.engine.submitted.load() == kStreams; },
                     milliseconds(5000) * scale));
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    CHECK(f.get("/health").status == 200);
    CHECK(f.get("/metrics").body.find("tessera:http_active_streams 200") != std::string::npos);
    CHECK(Clock::now() - t0 < milliseconds(500) * scale);
  }
  conns.clear();  // every client leaves: every request is cancelled
  CHECK(
      eventually([&] { return f.engine.finished.load() == kStreams; }, milliseconds(5000) * scale));
}
