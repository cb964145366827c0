#include "common/error.h"

namespace tessera {

Error::Error(ErrorKind kind, const std::string& message, std::source_location where)
    : std::runtime_error(message),
      kind_(kind),
      file_(where.file_name()),
      line_(static_cast<int>(where.line())) {}

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
      return "invalid_argument";
    case ErrorKind::kNotFound:
      return "not_found";
    case ErrorKind::kResourceExhausted:
      return "resource_exhausted";
    case ErrorKind::kCorruptFile:
      return "corrupt_file";
    case ErrorKind::kUnsupported:
      return "unsupported";
    case ErrorKind::kInternal:
      return "internal";
  }
  return "unknown";
}

}  // namespace tessera
