#pragma once
// Log line format for every spdlog logger: "text" (spdlog's default pattern) or "json" (one
// object per line, for log collectors in containers):
//   {"time":"2026-01-01T00:00:00.123Z","level":"info","thread":123,"msg":"..."}
#include <string>

namespace tessera {

// Throws Error(kInvalidArgument) for a name other than "text" or "json".
void set_log_format(const std::string& format);

// `s` as the inside of a JSON string literal (quotes, backslashes, control characters).
std::string json_escape(const std::string& s);

}  // namespace tessera
