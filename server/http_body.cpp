// Request bodies in, JSON replies out: content type, JSON parsing under depth and size
// limits, error bodies.
#include <algorithm>
#include <cctype>
#include <string_view>

#include "server/http_internal.h"
#include "server/openai_response.h"

namespace tessera {

using json = nlohmann::json;

namespace {

// A tree of many tiny containers costs ~50x its text; this caps that at a few MB while
// leaving room for any real request (64 prompts, thousands of chat messages).
constexpr int kMaxContainers = 1 << 16;

struct TooDeep {};
struct TooManyContainers {};

ApiError bad_json(const std::string& message) {
  return ApiError(400, "invalid_request_error", message, std::nullopt, "invalid_json");
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

void check_json_content_type(const HttpRequest& req) {
  if (req.content_type.empty()) return;  // curl --data-binary without -H, raw clients
  std::string_view media(req.content_type);
  media = media.substr(0, media.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  while (!media.empty() && media.front() == ' ') media.remove_prefix(1);
  const std::string m = lower(media);
  if (m == "application/json" || m.ends_with("+json")) return;
  throw ApiError(400, "invalid_request_error",
                 "Content-Type must be application/json (got '" + std::string(media) + "')",
                 std::nullopt, "invalid_content_type");
}

json parse_json_body(const std::string& body, int max_depth) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw bad_json("request body is empty; expected a JSON object");
  }
  int containers = 0;
  // The callback sees each container as it opens, at the depth of its parent: a nesting
  // bomb stops at max_depth, before its tree exists.
  auto limit = [&](int depth, json::parse_event_t event, json&) {
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
      if (depth >= max_depth) throw TooDeep{};
      if (++containers > kMaxContainers) throw TooManyContainers{};
    }
    return true;
  };
  try {
    return json::parse(body, limit);
  } catch (const TooDeep&) {
    throw bad_json("request body nests JSON deeper than " + std::to_string(max_depth) + " levels");
  } catch (const TooManyContainers&) {
    throw bad_json("request body holds more than " + std::to_string(kMaxContainers) +
                   " JSON arrays and objects");
  } catch (const json::out_of_range&) {
    throw bad_json("request body holds a number too large to represent");
  } catch (const json::parse_error& e) {
    // e.what() is the library's wording; say it in ours. The lexer names bad UTF-8.
    const bool utf8 = std::string_view(e.what()).find("UTF-8") != std::string_view::npos;
    const size_t at = e.byte == 0 ? 0 : e.byte - 1;
    if (utf8) throw bad_json("request body is not valid UTF-8 at byte " + std::to_string(at));
    if (e.byte > body.size()) throw bad_json("request body is not valid JSON: it ends early");
    throw bad_json("request body is not valid JSON at byte " + std::to_string(at));
  }
}

HttpReply json_reply(int status, const json& body) {
  HttpReply r;
  r.status = status;
  r.body = dump_json(body);
  return r;
}

HttpReply error_reply(const ApiError& e) {
  HttpReply r = json_reply(e.status(), e.to_json());
  if (e.status() == 429 || e.status() == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

std::string route_label(const std::string& path) {
  static const char* kKnown[] = {"/v1/completions", "/v1/chat/completions",
                                 "/v1/models",      "/tokenize",
                                 "/detokenize",     "/health",
                                 "/ready",          "/metrics"};
  for (const char* k : kKnown) {
    if (path == k) return k;
  }
  if (path.starts_with("/v1/models/")) return "/v1/models/{id}";
  return "other";
}

}  // namespace tessera
