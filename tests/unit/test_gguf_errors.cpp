// GGUF reader on synthetic files: every value type round-trips, and each kind of damage
// fails with a typed error that names the file, the place and the reason.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "model/gguf_file.h"
#include "model/gguf_types.h"
#include "model/gguf_writer.h"

using tessera::ErrorKind;
using tessera::GgufArray;
using tessera::GgufFile;
using tessera::GgufType;
using tessera::GgufValue;
using tessera::GgufWriter;

namespace {

constexpr uint32_t kF32 = 0, kQ8_0 = 8, kQ2_K = 10;

std::vector<uint8_t> f32_bytes(std::vector<float> v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

GgufWriter small_model() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 1);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
  w.add_tensor("norm.weight", {4}, kF32, f32_bytes({1, 2, 3, 4}));
  w.add_tensor("w.weight", {4, 2}, kF32, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  return w;
}

// Parses and returns the error; fails the test if parsing succeeds.
tessera::Error parse_error(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile::parse(bytes, "test.gguf");
  } catch (const tessera::Error& e) {
    return e;
  }
  FAIL("parse succeeded on a damaged file");
  return tessera::Error(ErrorKind::kInternal, "unreachable");
}

bool contains(const tessera::Error& e, const std::string& s) {
  return std::string(e.what()).find(s) != std::string::npos;
}

void put_u64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  std::memcpy(&b[at], &v, 8);
}
void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  std::memcpy(&b[at], &v, 4);
}

size_t find(const std::vector<uint8_t>& b, const std::string& s) {
  auto it = std::search(b.begin(), b.end(), s.begin(), s.end());
  REQUIRE(it != b.end());
  return static_cast<size_t>(it - b.begin());
}

}  // namespace

TEST_CASE("GGUF: every value type round-trips, v2 and v3", "[gguf]") {
  for (uint32_t version : {2u, 3u}) {
    GgufWriter w;
    w.set("u8", GgufType::kUint8, uint64_t{200});
    w.set("i8", GgufType::kInt8, int64_t{-100});
    w.set("u16", GgufType::kUint16, uint64_t{60000});
    w.set("i16", GgufType::kInt16, int64_t{-30000});
    w.set("u32", GgufType::kUint32, uint64_t{4000000000u});
    w.set("i32", GgufType::kInt32, int64_t{-2000000000});
    w.set("u64", GgufType::kUint64, uint64_t{1} << 63);
    w.set("i64", GgufType::kInt64, int64_t{-(int64_t{1} << 62)});
    w.set("f32", GgufType::kFloat32, 0.25);
    w.set("f64", GgufType::kFloat64, 1e300);
    w.set("bool", GgufType::kBool, true);
    w.set("str", GgufType::kString, std::string("h\xc3\xa9llo\0x", 8));
    GgufArray inner;
    inner.elem_type = static_cast<uint32_t>(GgufType::kInt16);
    inner.values = {int64_t{-1}, int64_t{2}};
    GgufArray outer;
    outer.elem_type = static_cast<uint32_t>(GgufType::kArray);
    outer.values = {std::make_shared<GgufArray>(inner), std::make_shared<GgufArray>()};
    std::get<std::shared_ptr<GgufArray>>(outer.values[1])->elem_type = 8;
    w.set_array("nested", outer);
    GgufArray floats;
    floats.elem_type = static_cast<uint32_t>(GgufType::kFloat32);
    floats.values = {0.5, -2.0};
    w.set_array("floats", floats);
    const auto bytes = w.build(version);
    auto g = GgufFile::parse(bytes, "t.gguf");
    CHECK(g->version() == version);
    CHECK(g->get_int("u8") == 200);
    CHECK(g->get_int("i8") == -100);
    CHECK(g->get_int("u16") == 60000);
    CHECK(g->get_int("i16") == -30000);
    CHECK(g->get_int("u32") == 4000000000LL);
    CHECK(g->get_int("i32") == -2000000000LL);
    CHECK(std::get<uint64_t>(g->metadata().at("u64")) == uint64_t{1} << 63);
    CHECK_THROWS_AS(g->get_int("u64"), tessera::Error);  // does not fit int64
    CHECK(g->get_int("i64") == -(int64_t{1} << 62));
    CHECK(g->get_float("f32") == 0.25);
    CHECK(g->get_float("f64") == 1e300);
    CHECK(g->get_bool("bool") == true);
    CHECK(g->get_string("str") == std::string("h\xc3\xa9llo\0x", 8));
    CHECK(g->get_float_array("floats") == std::vector<double>{0.5, -2.0});
    const auto& nested = *std::get<std::shared_ptr<GgufArray>>(g->metadata().at("nested"));
    REQUIRE(nested.values.size() == 2);
    const auto& first = *std::get<std::shared_ptr<GgufArray>>(nested.values[0]);
    CHECK(first.elem_type == static_cast<uint32_t>(GgufType::kInt16));
    CHECK(std::get<int64_t>(first.values[1]) == 2);
    CHECK(std::get<std::shared_ptr<GgufArray>>(nested.values[1])->values.empty());
    CHECK(g->tensors().empty());
  }
}

TEST_CASE("GGUF: tensors, alignment and data placement", "[gguf]") {
  for (uint32_t alignment : {32u, 64u, 1u}) {
    const auto bytes = small_model().build(3, alignment);
    auto g = GgufFile::parse(bytes, "t.gguf");
    CHECK(g->alignment() == alignment);
    CHECK(g->data_offset() % alignment == 0);
    const auto* w = g->find_tensor("w.weight");
    REQUIRE(w != nullptr);
    CHECK(w->dims == std::vector<int64_t>{4, 2});
    CHECK(w->nbytes == 32);
    float v[8];
    std::memcpy(v, w->data, 32);
    CHECK(v[0] == 1.0f);
    CHECK(v[7] == 8.0f);
    CHECK(g->get_string_array("tokenizer.ggml.tokens") == std::vector<std::string>{"a", "b", "c"});
  }
}

TEST_CASE("GGUF: header errors", "[gguf]") {
  auto bytes = small_model().build();
  SECTION("bad magic") {
    bytes[0] = 'X';
    auto e = parse_error(bytes);
    CHECK(e.kind() == ErrorKind::kCorruptFile);
    CHECK(contains(e, "test.gguf"));
    CHECK(contains(e, "bad magic"));
  }
  SECTION("v1") {
    put_u32(bytes, 4, 1);
    auto e = parse_error(bytes);
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK(contains(e, "version 1"));
  }
  SECTION("future version") {
    put_u32(bytes, 4, 4);
    CHECK(parse_error(bytes).kind() == ErrorKind::kUnsupported);
  }
  SECTION("big-endian") {
    put_u32(bytes, 4, 0x03000000);
    auto e = parse_error(bytes);
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK(contains(e, "big-endian"));
  }
  SECTION("absurd tensor count") {
    put_u64(bytes, 8, uint64_t{1} << 40);
    auto e = parse_error(bytes);
    CHECK(contains(e, "absurd tensor count"));
    CHECK(contains(e, "offset 8"));
  }
  SECTION("absurd metadata count") {
    put_u64(bytes, 16, ~uint64_t{0});
    CHECK(contains(parse_error(bytes), "absurd metadata count"));
  }
}

TEST_CASE("GGUF: every truncation fails cleanly", "[gguf]") {
  const auto bytes = small_model().build();
  for (size_t n = 0; n < bytes.size(); ++n) {
    // The last tensor's data ends the file, so every shorter prefix is damaged.
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    auto e = parse_error(cut);
    CHECK(e.kind() == ErrorKind::kCorruptFile);
    CHECK(contains(e, "test.gguf"));
    const bool says_why = contains(e, "truncated") || contains(e, "bad magic") ||
                          contains(e, "absurd") || contains(e, "exceeds");
    CHECK(says_why);
  }
}

TEST_CASE("GGUF: metadata errors", "[gguf]") {
  SECTION("absurd string length names the key") {
    GgufWriter w;
    w.set_string("general.name", "abc");
    auto bytes = w.build();
    const size_t at = find(bytes, "general.name") + 12 + 4;  // past key and value type
    put_u64(bytes, at, uint64_t{1} << 50);
    auto e = parse_error(bytes);
    CHECK(contains(e, "general.name"));
    CHECK(contains(e, "length"));
    CHECK(contains(e, "offset " + std::to_string(at)));
  }
  SECTION("unknown value type") {
    GgufWriter w;
    w.set_u32("k", 7);
    auto bytes = w.build();
    put_u32(bytes, find(bytes, "k") + 1, 13);
    auto e = parse_error(bytes);
    CHECK(contains(e, "unknown value type 13"));
    CHECK(contains(e, "'k'"));
  }
  SECTION("array count larger than the file") {
    GgufWriter w;
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b"});
    auto bytes = w.build();
    put_u64(bytes, find(bytes, "tokenizer.ggml.tokens") + 21 + 4 + 4, 1000000000);
    auto e = parse_error(bytes);
    CHECK(contains(e, "array count 1000000000"));
    CHECK(contains(e, "tokenizer.ggml.tokens"));
  }
  SECTION("duplicate key") {
    GgufWriter w;
    w.set_u32("k", 1);
    w.set_u32("k", 2);
    CHECK(contains(parse_error(w.build()), "duplicate key"));
  }
  SECTION("alignment not a power of two") {
    GgufWriter w;
    w.set_u32("general.alignment", 24);
    CHECK(contains(parse_error(w.build()), "alignment 24"));
  }
  SECTION("deep nesting is bounded") {
    GgufArray a;
    a.elem_type = static_cast<uint32_t>(GgufType::kUint8);
    a.values = {uint64_t{1}};
    for (int i = 0; i < 20; ++i) {
      GgufArray outer;
      outer.elem_type = static_cast<uint32_t>(GgufType::kArray);
      outer.values = {std::make_shared<GgufArray>(a)};
      a = outer;
    }
    GgufWriter w;
    w.set_array("deep", a);
    CHECK(contains(parse_error(w.build()), "nested deeper"));
  }
}

TEST_CASE("GGUF: tensor errors", "[gguf]") {
  SECTION("unknown ggml type is unsupported and named") {
    GgufWriter w;
    w.add_tensor("x.weight", {4}, 99, f32_bytes({1, 2, 3, 4}));
    auto e = parse_error(w.build());
    CHECK(e.kind() == ErrorKind::kUnsupported);
    CHECK(contains(e, "unknown ggml type 99"));
    CHECK(contains(e, "x.weight"));
  }
  SECTION("known but unsupported type parses with supported = false") {
    GgufWriter w;
    w.add_tensor("k.weight", {256}, kQ2_K, std::vector<uint8_t>(84, 1));
    const auto g_bytes = w.build();  // the file views these bytes
    auto g = GgufFile::parse(g_bytes, "t.gguf");
    CHECK_FALSE(g->tensors()[0].supported);
    CHECK(g->tensors()[0].type_name == "q2_K");
    CHECK(g->tensors()[0].nbytes == 84);
  }
  SECTION("row length not a multiple of the block") {
    GgufWriter w;
    w.add_tensor("q.weight", {16}, kQ8_0, std::vector<uint8_t>(34, 0));
    auto e = parse_error(w.build());
    CHECK(contains(e, "q.weight"));
    CHECK(contains(e, "not a multiple"));
  }
  SECTION("too many dimensions") {
    GgufWriter w;
    w.add_tensor("t", {1, 1, 1, 1, 1}, kF32, f32_bytes({1}));
    CHECK(contains(parse_error(w.build()), "5 dimensions"));
  }
  SECTION("overflowing dimensions") {
    GgufWriter w;
    w.add_tensor("t", {int64_t{1} << 40, int64_t{1} << 40}, kF32, {});
    CHECK(contains(parse_error(w.build()), "overflows"));
  }
  SECTION("data past the end of the file") {
    auto bytes = small_model().build();
    bytes.resize(bytes.size() - 32);
    auto e = parse_error(bytes);
    CHECK(contains(e, "w.weight"));
    CHECK(contains(e, "extends past the end"));
  }
  SECTION("misaligned offset") {
    auto bytes = small_model().build();
    const size_t at = find(bytes, "w.weight") + 8 + 4 + 16 + 4;
    put_u64(bytes, at, 4);
    auto e = parse_error(bytes);
    CHECK(contains(e, "w.weight"));
    CHECK(contains(e, "alignment"));
  }
  SECTION("overlapping tensors") {
    auto bytes = small_model().build();
    const size_t at = find(bytes, "w.weight") + 8 + 4 + 16 + 4;
    put_u64(bytes, at, 0);
    auto e = parse_error(bytes);
    CHECK(contains(e, "overlaps"));
  }
  SECTION("duplicate tensor name") {
    GgufWriter w;
    w.add_tensor("t", {1}, kF32, f32_bytes({1}));
    w.add_tensor("t", {1}, kF32, f32_bytes({1}));
    CHECK(contains(parse_error(w.build()), "duplicate tensor name"));
  }
}
