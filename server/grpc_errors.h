#pragma once
// gRPC status mapping for the service: what a client sees when a call fails.
//  - invalid input: INVALID_ARGUMENT, a message naming the field, and google.rpc.BadRequest
//    details (proto/rpc_status.proto) in the `grpc-status-details-bin` trailer;
//  - a message that does not parse: the same, instead of gRPC's bare INTERNAL (an
//    interceptor rewrites the library's status, see make_status_interceptor_factory);
//  - internal failures: INTERNAL with a reference number; the exception text goes only to
//    the server log, never to the client.
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <exception>
#include <memory>
#include <string>

namespace tessera {

class ApiError;

grpc::Status invalid_argument_status(const std::string& field, const std::string& message);
// `field`: the proto path of the offending field (e.g. "sampling.temperature"), may be empty.
grpc::Status to_status(const ApiError& e, const std::string& field);
// Logs `e` with a fresh reference and returns INTERNAL naming only the reference.
grpc::Status internal_status(const char* method, const std::exception& e);

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
make_status_interceptor_factory();

}  // namespace tessera
