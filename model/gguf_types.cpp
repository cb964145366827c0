// Tables of GGUF value types and ggml tensor types. Sizes of types Tessera does not compute
// with are still listed so the parser can bounds-check every tensor of a file and report
// "unsupported type q6_K" instead of "corrupt".
#include "model/gguf_types.h"

#include <array>

namespace tessera {
namespace {

constexpr std::array<GgmlTypeTraits, 40> kGgmlTypes = {{
    {"f32", 1, 4, true, DType::kF32},
    {"f16", 1, 2, true, DType::kF16},
    {"q4_0", 32, 18, true, DType::kQ4_0},
    {"q4_1", 32, 20, true, DType::kQ4_1},
    {nullptr, 0, 0, false, DType::kF32},  // 4: q4_2, removed from ggml
    {nullptr, 0, 0, false, DType::kF32},  // 5: q4_3, removed from ggml
    {"q5_0", 32, 22, false, DType::kF32},
    {"q5_1", 32, 24, false, DType::kF32},
    {"q8_0", 32, 34, true, DType::kQ8_0},
    {"q8_1", 32, 36, false, DType::kF32},
    {"q2_K", 256, 84, false, DType::kF32},
    {"q3_K", 256, 110, false, DType::kF32},
    {"q4_K", 256, 144, true, DType::kQ4_K},
    {"q5_K", 256, 176, true, DType::kQ5_K},
    {"q6_K", 256, 210, true, DType::kQ6_K},
    {"q8_K", 256, 292, false, DType::kF32},
    {"iq2_xxs", 256, 66, false, DType::kF32},
    {"iq2_xs", 256, 74, false, DType::kF32},
    {"iq3_xxs", 256, 98, false, DType::kF32},
    {"iq1_s", 256, 50, false, DType::kF32},
    {"iq4_nl", 32, 18, false, DType::kF32},
    {"iq3_s", 256, 110, false, DType::kF32},
    {"iq2_s", 256, 82, false, DType::kF32},
    {"iq4_xs", 256, 136, false, DType::kF32},
    {"i8", 1, 1, false, DType::kF32},
    {"i16", 1, 2, false, DType::kF32},
    {"i32", 1, 4, false, DType::kF32},
    {"i64", 1, 8, false, DType::kF32},
    {"f64", 1, 8, false, DType::kF32},
    {"iq1_m", 256, 56, false, DType::kF32},
    {"bf16", 1, 2, true, DType::kBF16},
    {nullptr, 0, 0, false, DType::kF32},  // 31-33: q4_0_4_4 etc., removed from ggml
    {nullptr, 0, 0, false, DType::kF32},
    {nullptr, 0, 0, false, DType::kF32},
    {"tq1_0", 256, 54, false, DType::kF32},
    {"tq2_0", 256, 66, false, DType::kF32},
    {nullptr, 0, 0, false, DType::kF32},  // 36-38: iq4_nl_4_4 etc., removed from ggml
    {nullptr, 0, 0, false, DType::kF32},
    {nullptr, 0, 0, false, DType::kF32},
    {"mxfp4", 32, 17, false, DType::kF32},
}};

}  // namespace

const GgmlTypeTraits* ggml_type_traits(uint32_t ggml_type) {
  if (ggml_type >= kGgmlTypes.size() || kGgmlTypes[ggml_type].name == nullptr) return nullptr;
  return &kGgmlTypes[ggml_type];
}

const char* ggml_type_name(uint32_t ggml_type) {
  const GgmlTypeTraits* t = ggml_type_traits(ggml_type);
  return t ? t->name : nullptr;
}

uint32_t ggml_type_of(DType dtype) {
  for (uint32_t i = 0; i < kGgmlTypes.size(); ++i) {
    if (kGgmlTypes[i].supported && kGgmlTypes[i].dtype == dtype) return i;
  }
  return 0;
}

const char* gguf_type_name(uint32_t type) {
  switch (static_cast<GgufType>(type)) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return nullptr;
}

size_t gguf_scalar_size(uint32_t type) {
  switch (static_cast<GgufType>(type)) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

}  // namespace tessera
