#include "kernels/kv_cache.h"

#include <cstring>
#include <string>

#include "common/error.h"

namespace tessera {

const char* kv_dtype_name(KvDtype t) {
  switch (t) {
    case KvDtype::kAuto:
      return "auto";
    case KvDtype::kF32:
      return "f32";
    case KvDtype::kF16:
      return "fp16";
    case KvDtype::kBF16:
      return "bf16";
    case KvDtype::kFp8:
      return "fp8";
    case KvDtype::kInt8:
      return "int8";
  }
  return "?";
}

bool parse_kv_dtype(const char* text, KvDtype& out) {
  const struct {
    const char* name;
    KvDtype t;
  } names[] = {{"auto", KvDtype::kAuto}, {"f32", KvDtype::kF32}, {"fp32", KvDtype::kF32},
               {"fp16", KvDtype::kF16},  {"f16", KvDtype::kF16}, {"half", KvDtype::kF16},
               {"bf16", KvDtype::kBF16}, {"fp8", KvDtype::kFp8}, {"fp8_e4m3", KvDtype::kFp8},
               {"int8", KvDtype::kInt8}};
  for (const auto& n : names) {
    if (std::strcmp(text, n.name) == 0) {
      out = n.t;
      return true;
    }
  }
  return false;
}

size_t kv_elem_bytes(KvDtype t) {
  switch (t) {
    case KvDtype::kF32:
      return 4;
    case KvDtype::kF16:
    case KvDtype::kBF16:
      return 2;
    case KvDtype::kFp8:
    case KvDtype::kInt8:
      return 1;
    case KvDtype::kAuto:
      break;
  }
  throw Error(ErrorKind::kInvalidArgument, "KV dtype 'auto' has no size before it is resolved");
}

bool kv_dtype_has_scales(KvDtype t) {
  return t == KvDtype::kFp8 || t == KvDtype::kInt8;
}

size_t kv_bytes_per_token(int num_layers, int num_kv_heads, int head_dim, KvDtype dtype) {
  const size_t per_head =
      size_t(head_dim) * kv_elem_bytes(dtype) + (kv_dtype_has_scales(dtype) ? sizeof(float) : 0);
  return size_t{2} * num_layers * num_kv_heads * per_head;
}

void validate_kv_shape(const KvCacheShape& s) {
  if (s.num_layers <= 0 || s.num_blocks <= 1 || s.block_size <= 0 || s.num_kv_heads <= 0 ||
      s.head_dim <= 0) {
    throw Error(ErrorKind::kInvalidArgument,
                "invalid KV cache shape: every dimension must be positive (and num_blocks >= 2)");
  }
  if (s.num_heads != 0 && s.num_heads % s.num_kv_heads != 0) {
    throw Error(ErrorKind::kInvalidArgument,
                "invalid KV cache shape: num_heads must be a multiple of num_kv_heads");
  }
}

}  // namespace tessera
