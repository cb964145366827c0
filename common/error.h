#pragma once
// Typed errors thrown by host code. Each carries the throwing file and line so a log line
// points at the cause; frontends map the kind to an HTTP / gRPC status.
#include <source_location>
#include <stdexcept>
#include <string>

namespace tessera {

enum class ErrorKind {
  kInvalidArgument,    // bad user input (400 / INVALID_ARGUMENT)
  kNotFound,           // unknown model, missing file (404 / NOT_FOUND)
  kResourceExhausted,  // queue full, KV cache cannot fit (429 / RESOURCE_EXHAUSTED)
  kCorruptFile,        // a model or tokenizer file that cannot be parsed
  kUnsupported,        // valid input we do not implement (e.g. a GGUF tensor type)
  kInternal,           // a bug or a backend failure
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message,
        std::source_location where = std::source_location::current());
  ErrorKind kind() const { return kind_; }
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  ErrorKind kind_;
  const char* file_;
  int line_;
};

const char* error_kind_name(ErrorKind kind);

}  // namespace tessera
