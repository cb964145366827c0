// GGUF reader. Layout (little-endian, spec v2/v3; v3 only added big-endian files, which we
// reject):
//   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x { string key | u32 value_type | value }
//   tensor_count x { string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset }
//   padding to general.alignment (default 32) | data section (tensor offsets are relative to it)
// A string is u64 length + bytes; an array is u32 elem_type + u64 count + elements.
// Every read goes through need(), which checks the remaining byte count first, so no input
// can make the parser read outside `bytes`.
#include "model/gguf_file.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "model/gguf_types.h"
#include "model/loader_mmap.h"

namespace tessera {
namespace {

constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxAlignment = 1u << 20;
constexpr uint64_t kMaxTensors = 1u << 20;
constexpr uint64_t kMaxKeys = 1u << 20;
constexpr uint64_t kMaxKeyLength = 65535;  // the spec's limit for keys
constexpr uint64_t kMaxTensorNameLength = 256;
constexpr uint64_t kMaxStringLength = 1ull << 30;
// Parsed array elements live in 40-byte variants: cap the total so a crafted count cannot
// turn a small file into gigabytes of memory. Real vocabularies have < 1M entries per array.
constexpr uint64_t kMaxArrayElementsTotal = 1ull << 25;
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

}  // namespace

class GgufParser {
 public:
  GgufParser(std::span<const uint8_t> bytes, GgufFile& out) : bytes_(bytes), out_(out) {}

  void parse() {
    context_ = "header";
    parse_header();
    for (uint64_t i = 0; i < num_kv_; ++i) parse_kv(i);
    apply_alignment();
    out_.tensors_.reserve(num_tensors_);
    for (uint64_t i = 0; i < num_tensors_; ++i) parse_tensor_info(i);
    place_tensor_data();
  }

 private:
  [[noreturn]] void fail(ErrorKind kind, const std::string& reason, size_t offset) const {
    throw Error(kind, out_.path_ + ": " + context_ + " at offset " + std::to_string(offset) + ": " +
                          reason);
  }
  [[noreturn]] void fail(const std::string& reason) const {
    fail(ErrorKind::kCorruptFile, reason, pos_);
  }

  size_t remaining() const { return bytes_.size() - pos_; }

  void need(uint64_t n) const {
    if (n > remaining()) {
      fail("truncated file (needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) +
           " left)");
    }
  }

  template <typename T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(uint64_t max_length, const char* what) {
    const size_t start = pos_;
    const uint64_t len = read<uint64_t>();
    if (len > max_length) {
      fail(ErrorKind::kCorruptFile,
           std::string(what) + " length " + std::to_string(len) + " exceeds the limit of " +
               std::to_string(max_length),
           start);
    }
    need(len);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return s;
  }

  void parse_header() {
    need(4);
    if (std::memcmp(bytes_.data(), "GGUF", 4) != 0) {
      fail(ErrorKind::kCorruptFile, "bad magic (not a GGUF file)", 0);
    }
    pos_ = 4;
    const uint32_t version = read<uint32_t>();
    if (version != 2 && version != 3) {
      // A big-endian file's version reads byte-swapped (0x03000000) on this little-endian host.
      const bool swapped = (version & 0xffffu) == 0 && (version >> 16) != 0;
      fail(ErrorKind::kUnsupported,
           swapped ? std::string("big-endian GGUF is not supported")
                   : "unsupported GGUF version " + std::to_string(version) + " (supported: 2, 3)",
           4);
    }
    out_.version_ = version;
    num_tensors_ = read<uint64_t>();
    num_kv_ = read<uint64_t>();
    // Each tensor info needs >= 24 bytes and each key/value >= 13, so larger counts cannot
    // fit in the file: reject them before reserving anything.
    if (num_tensors_ > kMaxTensors || num_tensors_ * 24 > remaining()) {
      fail(ErrorKind::kCorruptFile, "absurd tensor count " + std::to_string(num_tensors_), 8);
    }
    if (num_kv_ > kMaxKeys || num_kv_ * 13 > remaining()) {
      fail(ErrorKind::kCorruptFile, "absurd metadata count " + std::to_string(num_kv_), 16);
    }
  }

  void parse_kv(uint64_t index) {
    context_ = "metadata entry " + std::to_string(index);
    std::string key = read_string(kMaxKeyLength, "key");
    context_ = "metadata key '" + key + "'";
    if (out_.metadata_.count(key) != 0) fail("duplicate key");
    const uint32_t type = read<uint32_t>();
    GgufValue value = read_value(type, 0);
    out_.metadata_.emplace(std::move(key), std::move(value));
  }

  GgufValue read_value(uint32_t type, int depth) {
    switch (static_cast<GgufType>(type)) {
      case GgufType::kUint8:
        return uint64_t{read<uint8_t>()};
      case GgufType::kInt8:
        return int64_t{read<int8_t>()};
      case GgufType::kUint16:
        return uint64_t{read<uint16_t>()};
      case GgufType::kInt16:
        return int64_t{read<int16_t>()};
      case GgufType::kUint32:
        return uint64_t{read<uint32_t>()};
      case GgufType::kInt32:
        return int64_t{read<int32_t>()};
      case GgufType::kFloat32:
        return double{read<float>()};
      case GgufType::kBool:
        return read<uint8_t>() != 0;
      case GgufType::kString:
        return read_string(kMaxStringLength, "string");
      case GgufType::kArray:
        return read_array(depth);
      case GgufType::kUint64:
        return read<uint64_t>();
      case GgufType::kInt64:
        return read<int64_t>();
      case GgufType::kFloat64:
        return read<double>();
    }
    fail(ErrorKind::kCorruptFile, "unknown value type " + std::to_string(type), pos_ - 4);
  }

  GgufValue read_array(int depth) {
    if (depth >= kMaxArrayDepth) fail("arrays nested deeper than " + std::to_string(depth));
    const size_t start = pos_;
    auto array = std::make_shared<GgufArray>();
    array->elem_type = read<uint32_t>();
    if (gguf_type_name(array->elem_type) == nullptr) {
      fail(ErrorKind::kCorruptFile,
           "unknown array element type " + std::to_string(array->elem_type), start);
    }
    const uint64_t count = read<uint64_t>();
    // Strings need >= 8 bytes each (their length), arrays >= 12, scalars their size.
    size_t min_size = gguf_scalar_size(array->elem_type);
    if (array->elem_type == static_cast<uint32_t>(GgufType::kString)) min_size = 8;
    if (array->elem_type == static_cast<uint32_t>(GgufType::kArray)) min_size = 12;
    if (count > remaining() / min_size) {
      fail(ErrorKind::kCorruptFile,
           "array count " + std::to_string(count) + " of " + gguf_type_name(array->elem_type) +
               " exceeds the " + std::to_string(remaining()) + " bytes left",
           start + 4);
    }
    array_elements_ += count;
    if (array_elements_ > kMaxArrayElementsTotal) {
      fail(ErrorKind::kCorruptFile,
           "more than " + std::to_string(kMaxArrayElementsTotal) + " array elements in total",
           start + 4);
    }
    array->values.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      array->values.push_back(read_value(array->elem_type, depth + 1));
    }
    return array;
  }

  void apply_alignment() {
    context_ = "metadata key 'general.alignment'";
    auto it = out_.metadata_.find("general.alignment");
    if (it == out_.metadata_.end()) return;
    const uint64_t* value = std::get_if<uint64_t>(&it->second);
    if (value == nullptr) fail(ErrorKind::kCorruptFile, "must be an unsigned integer", 0);
    if (*value == 0 || *value > kMaxAlignment || (*value & (*value - 1)) != 0) {
      fail(ErrorKind::kCorruptFile,
           "alignment " + std::to_string(*value) + " is not a power of two <= 2^20", 0);
    }
    out_.alignment_ = static_cast<uint32_t>(*value);
  }

  void parse_tensor_info(uint64_t index) {
    context_ = "tensor info " + std::to_string(index);
    GgufTensorInfo t;
    t.name = read_string(kMaxTensorNameLength, "tensor name");
    context_ = "tensor '" + t.name + "'";
    if (out_.tensor_index_.count(t.name) != 0) fail("duplicate tensor name");
    const uint32_t n_dims = read<uint32_t>();
    if (n_dims == 0 || n_dims > kMaxDims) {
      fail(ErrorKind::kCorruptFile, "has " + std::to_string(n_dims) + " dimensions (1..4)",
           pos_ - 4);
    }
    int64_t elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = read<uint64_t>();
      constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
      if (dim > kMax || (dim != 0 && static_cast<uint64_t>(elems) > kMax / dim)) {
        fail(ErrorKind::kCorruptFile,
             "dimension " + std::to_string(d) + " = " + std::to_string(dim) +
                 " overflows the element count",
             pos_ - 8);
      }
      t.dims.push_back(static_cast<int64_t>(dim));
      elems *= static_cast<int64_t>(dim);
    }
    t.ggml_type = read<uint32_t>();
    const GgmlTypeTraits* traits = ggml_type_traits(t.ggml_type);
    if (traits == nullptr) {
      fail(ErrorKind::kUnsupported, "unknown ggml type " + std::to_string(t.ggml_type), pos_ - 4);
    }
    t.type_name = traits->name;
    t.supported = traits->supported;
    t.dtype = traits->dtype;
    if (t.dims[0] % traits->block_elems != 0) {
      fail(ErrorKind::kCorruptFile,
           "row length " + std::to_string(t.dims[0]) + " is not a multiple of the " + t.type_name +
               " block (" + std::to_string(traits->block_elems) + ")",
           pos_ - 4);
    }
    // elems / block_elems * block_bytes <= elems * 4.5 for every type except i64/f64 (x8),
    // so the product below fits in 64 bits once elems <= 2^59.
    if (static_cast<uint64_t>(elems) > (1ull << 59)) {
      fail(ErrorKind::kCorruptFile, "absurd element count " + std::to_string(elems), pos_ - 4);
    }
    t.nbytes = static_cast<size_t>(elems / traits->block_elems) * traits->block_bytes;
    t.offset = read<uint64_t>();
    if (t.offset % out_.alignment_ != 0) {
      fail(ErrorKind::kCorruptFile,
           "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
               std::to_string(out_.alignment_),
           pos_ - 8);
    }
    out_.tensor_index_.emplace(t.name, out_.tensors_.size());
    out_.tensors_.push_back(std::move(t));
  }

  void place_tensor_data() {
    context_ = "data section";
    const uint64_t align = out_.alignment_;
    const uint64_t data_offset = (pos_ + align - 1) / align * align;
    out_.data_offset_ = data_offset;
    const uint64_t data_size = data_offset <= bytes_.size() ? bytes_.size() - data_offset : 0;
    std::vector<const GgufTensorInfo*> order;
    for (GgufTensorInfo& t : out_.tensors_) {
      context_ = "tensor '" + t.name + "'";
      if (t.offset > data_size || t.nbytes > data_size - t.offset) {
        fail(ErrorKind::kCorruptFile,
             "data [" + std::to_string(t.offset) + ", " + std::to_string(t.offset + t.nbytes) +
                 ") extends past the end of the data section (" + std::to_string(data_size) +
                 " bytes; file truncated?)",
             data_offset + t.offset);
      }
      // Empty tensors get no pointer: with no data section, data_offset may lie past the end.
      if (t.nbytes == 0) continue;
      t.data = bytes_.data() + data_offset + t.offset;
      order.push_back(&t);
    }
    std::sort(order.begin(), order.end(), [](const GgufTensorInfo* a, const GgufTensorInfo* b) {
      return a->offset < b->offset;
    });
    for (size_t i = 1; i < order.size(); ++i) {
      if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset) {
        context_ = "tensor '" + order[i]->name + "'";
        fail(ErrorKind::kCorruptFile, "data overlaps tensor '" + order[i - 1]->name + "'",
             data_offset + order[i]->offset);
      }
    }
  }

  std::span<const uint8_t> bytes_;
  GgufFile& out_;
  size_t pos_ = 0;
  uint64_t num_tensors_ = 0;
  uint64_t num_kv_ = 0;
  uint64_t array_elements_ = 0;
  std::string context_;
};

int64_t GgufTensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::shared_ptr<GgufFile> GgufFile::parse(std::span<const uint8_t> bytes, const std::string& name) {
  auto file = std::make_shared<GgufFile>();
  file->path_ = name;
  file->file_size_ = bytes.size();
  file->alignment_ = kDefaultAlignment;
  GgufParser(bytes, *file).parse();
  return file;
}

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  MappedFile mapped = map_file(path);
  std::shared_ptr<GgufFile> file = parse(mapped.bytes, path);
  file->mapping_ = std::move(mapped.mapping);
  return file;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace tessera
