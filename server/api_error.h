#pragma once
// Errors a frontend returns to its client. One type for HTTP and gRPC: the HTTP layer renders
// it as an OpenAI-style body {"error": {"message", "type", "param", "code"}} with `status`;
// the gRPC layer maps `status` onto a grpc::StatusCode.
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace tessera {

class Error;

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, const std::string& message,
           std::optional<std::string> param = std::nullopt,
           std::optional<std::string> code = std::nullopt)
      : std::runtime_error(message),
        status_(status),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::optional<std::string>& param() const { return param_; }
  const std::optional<std::string>& code() const { return code_; }
  nlohmann::json to_json() const;

 private:
  int status_;
  std::string type_;
  std::optional<std::string> param_;
  std::optional<std::string> code_;
};

// 400 naming the offending field, e.g. invalid_param("temperature", "must be in [0, 2]").
ApiError invalid_param(const std::string& param, const std::string& why);
// An engine/model Error (thrown by Engine::submit, the tokenizer, ...) as a client error.
ApiError api_error_from(const Error& e);

}  // namespace tessera
