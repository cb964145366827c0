#pragma once
// The paged KV cache as an object of its own: its geometry, its element type and (for the
// 8-bit types) its scales. A backend creates it (Ops::make_kv_cache) and the model that owns
// it passes it to every op that reads or writes K/V (begin_step, rope_store_kv,
// paged_attention, copy_kv_blocks), so two models on one Ops (a target and its draft) each
// keep a pool of their own.
//
// Per layer, one K pool and one V pool:  [num_blocks, block_size, num_kv_heads, head_dim]
// Block 0 is reserved as the padding block and is never handed to a sequence.
//
// 8-bit caches (kFp8 = e4m3fn, kInt8) store every (token, kv head) row of head_dim values
// with one f32 scale of its own, chosen when the row is written (amax / 448 for e4m3,
// amax / 127 for int8; value = stored * scale). The scales live beside each pool:
//   scales: [num_blocks, block_size, num_kv_heads] f32
// so "per head" here means per head and token: no calibration is needed, and a block copy
// moves its scales with it.
#include <cstddef>
#include <cstdint>

namespace tessera {

class Ops;

enum class KvDtype : uint8_t { kAuto, kF32, kF16, kBF16, kFp8, kInt8 };

const char* kv_dtype_name(KvDtype t);
// "auto", "f32", "fp16"/"f16", "bf16", "fp8"/"fp8_e4m3", "int8"; false when unknown.
bool parse_kv_dtype(const char* text, KvDtype& out);
// Bytes of one stored element (the scales not counted).
size_t kv_elem_bytes(KvDtype t);
bool kv_dtype_has_scales(KvDtype t);

struct KvCacheShape {
  int num_layers = 0;
  int num_blocks = 0;
  int block_size = 16;
  int num_kv_heads = 0;
  int head_dim = 0;
  KvDtype dtype = KvDtype::kAuto;  // kAuto: the backend's default (Ops::resolve_kv_dtype)
  // Query heads per layer. Lets a backend plan attention already in begin_step (needed for
  // graph capture); 0 = unknown, learned at the first paged_attention call.
  int num_heads = 0;
  // Longest sequence the cache will hold (max_model_len); 0 = unknown (then its capacity).
  // Deterministic attention sizes its fixed split chunks from it.
  int max_seq_len = 0;
};

// KV bytes per token over all layers, K and V, scales included.
size_t kv_bytes_per_token(int num_layers, int num_kv_heads, int head_dim, KvDtype dtype);

// A backend's cache. The base only records what every backend shares; the backend's
// subclass owns the memory. Not copyable; destroy it before its Ops.
class KvCache {
 public:
  KvCache(const Ops& owner, const KvCacheShape& shape) : owner_(&owner), shape_(shape) {}
  virtual ~KvCache() = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheShape& shape() const { return shape_; }  // dtype resolved (never kAuto)
  KvDtype dtype() const { return shape_.dtype; }
  const Ops& owner() const { return *owner_; }
  size_t bytes_per_token() const {
    return kv_bytes_per_token(shape_.num_layers, shape_.num_kv_heads, shape_.head_dim,
                              shape_.dtype);
  }
  int64_t capacity_tokens() const {  // block 0 excluded
    return int64_t{shape_.num_blocks - 1} * shape_.block_size;
  }

 private:
  const Ops* owner_;
  KvCacheShape shape_;
};

// Throws Error(kInvalidArgument) unless every dimension is positive, num_blocks >= 2 and
// num_heads (when set) is a multiple of num_kv_heads.
void validate_kv_shape(const KvCacheShape& shape);

}  // namespace tessera
