#include "server/grpc_errors.h"

#include <atomic>

#include <spdlog/spdlog.h>

#include "rpc_status.pb.h"
#include "server/api_error.h"

namespace tessera {
namespace {

grpc::StatusCode status_code_for(int http_status) {
  switch (http_status) {
    case 400:
    case 413:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case 401:
      return grpc::StatusCode::UNAUTHENTICATED;
    case 404:
      return grpc::StatusCode::NOT_FOUND;
    case 429:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 503:
      return grpc::StatusCode::UNAVAILABLE;
    default:
      return grpc::StatusCode::INTERNAL;
  }
}

std::atomic<uint64_t> g_next_ref{1};

// What gRPC's generated handlers answer when the request bytes do not parse as the method's
// message (grpcpp/impl/codegen/proto_utils.h): INTERNAL with "No payload" or the parser's
// InitializationErrorString(), which is empty for proto3. Our handlers never return INTERNAL
// with either message (internal_status() always names a reference).
bool is_deserialize_failure(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::INTERNAL &&
         (s.error_message().empty() || s.error_message() == "No payload");
}

class StatusInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit StatusInterceptor(grpc::experimental::ServerRpcInfo* info) : info_(info) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status st = methods->GetSendStatus();
      if (is_deserialize_failure(st)) {
        const std::string method = info_->method() ? info_->method() : "";
        spdlog::warn("gRPC {}: request message does not parse ({})", method,
                     st.error_message().empty() ? "no detail" : st.error_message());
        methods->ModifySendStatus(invalid_argument_status(
            "", "malformed request: the message does not parse as the request type of " + method +
                    " (bad wire format or invalid UTF-8 in a string field)"));
      }
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
};

class StatusInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new StatusInterceptor(info);
  }
};

}  // namespace

grpc::Status invalid_argument_status(const std::string& field, const std::string& message) {
  google::rpc::BadRequest bad;
  google::rpc::BadRequest::FieldViolation* v = bad.add_field_violations();
  v->set_field(field);
  v->set_description(message);
  google::rpc::Status details;
  details.set_code(static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  details.set_message(message);
  details.add_details()->PackFrom(bad);
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message, details.SerializeAsString());
}

grpc::Status to_status(const ApiError& e, const std::string& field) {
  std::string msg = e.what();
  if (!field.empty() && msg.find(field) == std::string::npos) msg = field + ": " + msg;
  const grpc::StatusCode code = status_code_for(e.status());
  if (code == grpc::StatusCode::INVALID_ARGUMENT) return invalid_argument_status(field, msg);
  if (code == grpc::StatusCode::INTERNAL) return internal_status("", e);
  return grpc::Status(code, msg);
}

grpc::Status internal_status(const char* method, const std::exception& e) {
  const uint64_t ref = g_next_ref.fetch_add(1);
  spdlog::error("gRPC {} failed (ref {}): {}", method, ref, e.what());
  return grpc::Status(grpc::StatusCode::INTERNAL,
                      "internal error (ref " + std::to_string(ref) + "; see the server log)");
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
make_status_interceptor_factory() {
  return std::make_unique<StatusInterceptorFactory>();
}

}  // namespace tessera
