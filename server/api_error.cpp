#include "server/api_error.h"

#include "common/error.h"

namespace tessera {

nlohmann::json ApiError::to_json() const {
  nlohmann::json err = {
      {"message", what()}, {"type", type_}, {"param", nullptr}, {"code", nullptr}};
  if (param_) err["param"] = *param_;
  if (code_) err["code"] = *code_;
  return {{"error", err}};
}

ApiError invalid_param(const std::string& param, const std::string& why) {
  return ApiError(400, "invalid_request_error", "'" + param + "' " + why, param, "invalid_value");
}

ApiError api_error_from(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::kInvalidArgument:
      return ApiError(400, "invalid_request_error", e.what(), std::nullopt, "invalid_value");
    case ErrorKind::kNotFound:
      return ApiError(404, "invalid_request_error", e.what(), std::nullopt, "not_found");
    case ErrorKind::kResourceExhausted:
      return ApiError(429, "rate_limit_error", e.what(), std::nullopt, "queue_full");
    case ErrorKind::kUnsupported:
      return ApiError(400, "invalid_request_error", e.what(), std::nullopt, "unsupported");
    case ErrorKind::kCorruptFile:
    case ErrorKind::kInternal:
      break;
  }
  return ApiError(500, "server_error", e.what(), std::nullopt, "internal_error");
}

}  // namespace tessera
