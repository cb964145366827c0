#include "model/safetensors_file.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/loader_mmap.h"

namespace tessera {
namespace {

// Real headers are well under a megabyte even for thousands of tensors.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw Error(ErrorKind::kCorruptFile, file + ": " + what);
}

SafetensorsTensor parse_entry(const std::string& file, const std::string& name,
                              const nlohmann::json& e, uint64_t data_size) {
  const std::string where = "tensor '" + name + "': ";
  if (!e.is_object()) fail(file, where + "entry is not an object");
  SafetensorsTensor t;
  t.name = name;
  if (!e.contains("dtype") || !e["dtype"].is_string()) fail(file, where + "dtype is missing");
  t.dtype = e["dtype"].get<std::string>();
  const size_t elem = safetensors_dtype_size(t.dtype);
  if (elem == 0) {
    throw Error(ErrorKind::kUnsupported, file + ": " + where + "unknown dtype " + t.dtype);
  }
  if (!e.contains("shape") || !e["shape"].is_array()) fail(file, where + "shape is missing");
  uint64_t count = 1;
  for (const auto& d : e["shape"]) {
    if (!d.is_number_unsigned()) fail(file, where + "shape holds " + d.dump());
    const uint64_t v = d.get<uint64_t>();
    if (v != 0 && count > std::numeric_limits<uint64_t>::max() / 8 / v) {
      fail(file, where + "shape overflows");
    }
    count *= v;
    t.shape.push_back(static_cast<int64_t>(v));
  }
  const auto& offsets = e.contains("data_offsets") ? e["data_offsets"] : nlohmann::json();
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    fail(file, where + "data_offsets must be [begin, end]");
  }
  const uint64_t begin = offsets[0].get<uint64_t>();
  const uint64_t end = offsets[1].get<uint64_t>();
  if (begin > end || end > data_size) {
    fail(file, where + "data [" + std::to_string(begin) + ", " + std::to_string(end) +
                   ") lies outside the " + std::to_string(data_size) +
                   "-byte data section (file truncated?)");
  }
  if (end - begin != count * elem) {
    fail(file, where + "holds " + std::to_string(end - begin) + " bytes but its shape needs " +
                   std::to_string(count * elem));
  }
  t.nbytes = end - begin;
  return t;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2") {
    return 1;
  }
  return 0;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::parse(std::span<const uint8_t> bytes,
                                                        const std::string& name) {
  if (bytes.size() < 8) fail(name, "truncated file (no header length)");
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - 8) {
    fail(name, "header length " + std::to_string(header_len) + " exceeds the file (" +
                   std::to_string(bytes.size()) + " bytes) or the 100 MB limit");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(name, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(name, "header is not a JSON object");
  auto file = std::make_shared<SafetensorsFile>();
  file->path_ = name;
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = bytes.size() - data_start;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail(name, "__metadata__ is not an object");
      for (const auto& [k, v] : value.items()) {
        if (v.is_string()) file->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    SafetensorsTensor t = parse_entry(name, key, value, data_size);
    const uint64_t begin = value["data_offsets"][0].get<uint64_t>();
    t.data = bytes.data() + data_start + begin;
    file->tensors_.emplace(key, std::move(t));
  }
  // No two tensors may share bytes.
  std::vector<const SafetensorsTensor*> order;
  for (const auto& [key, t] : file->tensors_) {
    if (t.nbytes > 0) order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->data < b->data; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i - 1]->data + order[i - 1]->nbytes > order[i]->data) {
      fail(name, "tensor '" + order[i]->name + "' overlaps tensor '" + order[i - 1]->name + "'");
    }
  }
  return file;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  MappedFile mapped = map_file(path);
  auto file = parse(mapped.bytes, path);
  file->mapping_ = std::move(mapped.mapping);
  return file;
}

}  // namespace tessera
