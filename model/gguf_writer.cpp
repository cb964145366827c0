#include "model/gguf_writer.h"

#include <cstring>
#include <fstream>

#include "common/error.h"

namespace tessera {
namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// Reads a number out of whichever alternative holds it, for writing at another width.
uint64_t bits_u(const GgufValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<uint64_t>(*i);
  if (const auto* b = std::get_if<bool>(&v)) return *b ? 1 : 0;
  if (const auto* d = std::get_if<double>(&v)) return static_cast<uint64_t>(*d);
  throw Error(ErrorKind::kInvalidArgument, "GgufWriter: value is not a number");
}

double as_double(const GgufValue& v) {
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  return static_cast<double>(bits_u(v));
}

void put_value(std::vector<uint8_t>& out, uint32_t type, const GgufValue& v) {
  switch (static_cast<GgufType>(type)) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      put<uint8_t>(out, static_cast<uint8_t>(bits_u(v)));
      return;
    case GgufType::kUint16:
    case GgufType::kInt16:
      put<uint16_t>(out, static_cast<uint16_t>(bits_u(v)));
      return;
    case GgufType::kUint32:
    case GgufType::kInt32:
      put<uint32_t>(out, static_cast<uint32_t>(bits_u(v)));
      return;
    case GgufType::kUint64:
    case GgufType::kInt64:
      put<uint64_t>(out, bits_u(v));
      return;
    case GgufType::kFloat32:
      put<float>(out, static_cast<float>(as_double(v)));
      return;
    case GgufType::kFloat64:
      put<double>(out, as_double(v));
      return;
    case GgufType::kString:
      put_string(out, std::get<std::string>(v));
      return;
    case GgufType::kArray: {
      const GgufArray& a = *std::get<std::shared_ptr<GgufArray>>(v);
      put<uint32_t>(out, a.elem_type);
      put<uint64_t>(out, a.values.size());
      for (const GgufValue& e : a.values) put_value(out, a.elem_type, e);
      return;
    }
  }
  throw Error(ErrorKind::kInvalidArgument, "GgufWriter: unknown type " + std::to_string(type));
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufType type, const GgufValue& value) {
  put_string(kv_bytes_, key);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(type));
  put_value(kv_bytes_, static_cast<uint32_t>(type), value);
  ++num_kv_;
}

void GgufWriter::set_array(const std::string& key, const GgufArray& array) {
  set(key, GgufType::kArray, std::make_shared<GgufArray>(array));
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  GgufArray a;
  a.elem_type = static_cast<uint32_t>(GgufType::kString);
  a.values.assign(v.begin(), v.end());
  set_array(key, a);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> dims, uint32_t ggml_type,
                            std::vector<uint8_t> data) {
  tensors_.push_back({name, std::move(dims), ggml_type, std::move(data)});
}

std::vector<uint8_t> GgufWriter::build(uint32_t version, uint32_t alignment) const {
  std::vector<uint8_t> out(4);
  std::memcpy(out.data(), "GGUF", 4);
  put<uint32_t>(out, version);
  put<uint64_t>(out, tensors_.size());
  const bool write_alignment = alignment != 32;
  put<uint64_t>(out, num_kv_ + (write_alignment ? 1 : 0));
  out.insert(out.end(), kv_bytes_.begin(), kv_bytes_.end());
  if (write_alignment) {
    put_string(out, "general.alignment");
    put<uint32_t>(out, static_cast<uint32_t>(GgufType::kUint32));
    put<uint32_t>(out, alignment);
  }
  auto padded = [alignment](uint64_t n) { return (n + alignment - 1) / alignment * alignment; };
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, t.ggml_type);
    put<uint64_t>(out, offset);
    offset = padded(offset + t.data.size());
  }
  out.resize(padded(out.size()), 0);
  for (const Tensor& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize(padded(out.size()), 0);
  }
  return out;
}

void GgufWriter::write(const std::string& path, uint32_t version, uint32_t alignment) const {
  const std::vector<uint8_t> bytes = build(version, alignment);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw Error(ErrorKind::kInternal, path + ": cannot write GGUF");
}

}  // namespace tessera
