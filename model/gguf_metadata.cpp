// Typed access to GGUF metadata. Integer widths are folded on parse (uint8..uint64 ->
// uint64_t, int8..int64 -> int64_t, float32/64 -> double), so getters accept any width.
#include <cmath>
#include <limits>

#include "common/error.h"
#include "model/gguf_file.h"

namespace tessera {
namespace {

const char* value_kind(const GgufValue& v) {
  switch (v.index()) {
    case 0:
      return "unsigned integer";
    case 1:
      return "signed integer";
    case 2:
      return "float";
    case 3:
      return "bool";
    case 4:
      return "string";
    default:
      return "array";
  }
}

[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const GgufValue& v,
                             const char* expected) {
  throw Error(ErrorKind::kCorruptFile, path + ": metadata key '" + key + "' is a " + value_kind(v) +
                                           ", expected " + expected);
}

std::optional<int64_t> as_int(const GgufValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  return std::nullopt;
}

std::optional<double> as_float(const GgufValue& v) {
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  return std::nullopt;
}

}  // namespace

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return std::nullopt;
  std::optional<int64_t> v = as_int(it->second);
  if (!v) wrong_type(path_, key, it->second, "an integer (fitting int64)");
  return v;
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return std::nullopt;
  std::optional<double> v = as_float(it->second);
  if (!v) wrong_type(path_, key, it->second, "a number");
  return v;
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return std::nullopt;
  if (const auto* b = std::get_if<bool>(&it->second)) return *b;
  wrong_type(path_, key, it->second, "a bool");
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(&it->second)) return *s;
  wrong_type(path_, key, it->second, "a string");
}

namespace {

const GgufArray* find_array(const std::map<std::string, GgufValue>& metadata,
                            const std::string& path, const std::string& key) {
  auto it = metadata.find(key);
  if (it == metadata.end()) return nullptr;
  const auto* array = std::get_if<std::shared_ptr<GgufArray>>(&it->second);
  if (array == nullptr) wrong_type(path, key, it->second, "an array");
  return array->get();
}

[[noreturn]] void wrong_element(const std::string& path, const std::string& key, size_t index,
                                const GgufValue& v, const char* expected) {
  wrong_type(path, key + "[" + std::to_string(index) + "]", v, expected);
}

}  // namespace

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  std::vector<std::string> out;
  const GgufArray* array = find_array(metadata_, path_, key);
  if (array == nullptr) return out;
  out.reserve(array->values.size());
  for (size_t i = 0; i < array->values.size(); ++i) {
    const auto* s = std::get_if<std::string>(&array->values[i]);
    if (s == nullptr) wrong_element(path_, key, i, array->values[i], "a string");
    out.push_back(*s);
  }
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  std::vector<double> out;
  const GgufArray* array = find_array(metadata_, path_, key);
  if (array == nullptr) return out;
  out.reserve(array->values.size());
  for (size_t i = 0; i < array->values.size(); ++i) {
    std::optional<double> v = as_float(array->values[i]);
    if (!v) wrong_element(path_, key, i, array->values[i], "a number");
    out.push_back(*v);
  }
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  std::vector<int64_t> out;
  const GgufArray* array = find_array(metadata_, path_, key);
  if (array == nullptr) return out;
  out.reserve(array->values.size());
  for (size_t i = 0; i < array->values.size(); ++i) {
    std::optional<int64_t> v = as_int(array->values[i]);
    if (!v) wrong_element(path_, key, i, array->values[i], "an integer");
    out.push_back(*v);
  }
  return out;
}

}  // namespace tessera
