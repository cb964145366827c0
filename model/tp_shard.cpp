#include "model/tp_shard.h"

#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/weight_scheme.h"

namespace tessera {
namespace {

[[noreturn]] void refuse(const std::string& what) {
  throw Error(ErrorKind::kInvalidArgument, "tensor parallel: " + what);
}

// Bytes of `cols` consecutive values of one row in t's storage.
size_t span_bytes(const HostTensor& t, int64_t cols) {
  switch (t.scheme.kind) {
    case QuantKind::kFp8:
    case QuantKind::kInt8:
      return static_cast<size_t>(cols);
    case QuantKind::kInt4:
      return static_cast<size_t>(cols / 2);
    default:
      return dtype_row_bytes(t.dtype, cols);
  }
}

int64_t storage_align(const HostTensor& t) {
  switch (t.scheme.kind) {
    case QuantKind::kInt4:
      return 2;
    case QuantKind::kFp8:
    case QuantKind::kInt8:
      return 1;
    default:
      return dtype_block_elems(t.dtype);
  }
}

}  // namespace

TpShard make_tp_shard(const ModelConfig& c, int rank, int world, int64_t ffn_align) {
  if (world < 1 || rank < 0 || rank >= world)
    refuse("rank " + std::to_string(rank) + " outside world size " + std::to_string(world));
  TpShard s;
  s.rank = rank;
  s.world = world;
  if (c.num_heads % world != 0)
    refuse(std::to_string(c.num_heads) + " attention heads do not divide over " +
           std::to_string(world) + " ranks");
  s.num_heads = c.num_heads / world;
  s.head_begin = rank * s.num_heads;
  if (c.num_kv_heads >= world) {
    if (c.num_kv_heads % world != 0)
      refuse(std::to_string(c.num_kv_heads) + " KV heads do not divide over " +
             std::to_string(world) + " ranks");
    s.num_kv_heads = c.num_kv_heads / world;
    s.kv_head_begin = rank * s.num_kv_heads;
  } else {
    if (world % c.num_kv_heads != 0)
      refuse(std::to_string(world) + " ranks are not a multiple of " +
             std::to_string(c.num_kv_heads) + " KV heads (needed to replicate them)");
    s.num_kv_heads = 1;
    // Query head h reads KV head h / (num_heads / num_kv_heads); a rank's heads share one.
    s.kv_head_begin = s.head_begin / (c.num_heads / c.num_kv_heads);
  }
  const int64_t align = std::max<int64_t>(1, ffn_align);
  if (c.intermediate_size % (align * world) != 0)
    refuse("intermediate size " + std::to_string(c.intermediate_size) + " does not divide into " +
           std::to_string(world) + " parts of a multiple of " + std::to_string(align));
  const int64_t per = c.intermediate_size / world;
  s.ffn_begin = rank * per;
  s.ffn_end = s.ffn_begin + per;
  const int64_t vper = (c.vocab_size + world - 1) / world;
  s.vocab_begin = std::min<int64_t>(c.vocab_size, rank * vper);
  s.vocab_end = std::min<int64_t>(c.vocab_size, s.vocab_begin + vper);
  return s;
}

ModelConfig shard_config(const ModelConfig& c, const TpShard& s) {
  ModelConfig out = c;
  out.num_heads = s.num_heads;
  out.num_kv_heads = s.num_kv_heads;
  out.intermediate_size = static_cast<int>(s.ffn_end - s.ffn_begin);
  return out;
}

TensorSlice slice_rows(const HostTensor& t, int64_t begin, int64_t end) {
  if (begin < 0 || end > t.rows || begin > end) refuse("row slice out of range");
  TensorSlice out;
  out.view = t;
  out.view.rows = end - begin;
  out.view.data = static_cast<const uint8_t*>(t.data) + span_bytes(t, t.cols) * begin;
  if (t.scales != nullptr) {
    const bool per_row = t.scheme.kind != QuantKind::kFp8 || t.scheme.per_channel;
    const int64_t groups = quant_num_groups(t.scheme, t.cols, t.g_idx);
    if (per_row) out.view.scales = t.scales + groups * begin;
  }
  if (t.zeros != nullptr)
    out.view.zeros = t.zeros + quant_num_groups(t.scheme, t.cols, t.g_idx) * begin;
  return out;
}

TensorSlice slice_cols(const HostTensor& t, int64_t begin, int64_t end) {
  if (begin < 0 || end > t.cols || begin > end) refuse("column slice out of range");
  const int64_t align = storage_align(t);
  if (begin % align != 0 || end % align != 0)
    refuse("column slice [" + std::to_string(begin) + ", " + std::to_string(end) +
           ") splits a storage block of " + std::to_string(align));
  const bool grouped = (t.scheme.kind == QuantKind::kInt4 || t.scheme.kind == QuantKind::kInt8) &&
                       t.g_idx == nullptr && t.scheme.group_size > 0;
  if (t.g_idx != nullptr && !t.scheme.act_order) refuse("g_idx without act order");
  if (grouped && (begin % t.scheme.group_size != 0 || end % t.scheme.group_size != 0))
    refuse("column slice splits a quantization group of " + std::to_string(t.scheme.group_size));
  const int64_t cols = end - begin;
  const size_t src_row = span_bytes(t, t.cols), dst_row = span_bytes(t, cols);
  const size_t skip = span_bytes(t, begin);
  const int64_t groups = quant_num_groups(t.scheme, t.cols, t.g_idx);
  // The source groups the slice keeps, in their new order: a run of whole groups, or with act
  // order the groups its columns name (renumbered, so the slice's g_idx stays dense).
  std::vector<int64_t> used;
  std::vector<int32_t> new_gidx;
  if (t.g_idx != nullptr) {
    std::vector<int32_t> map(groups, -1);
    for (int64_t c = begin; c < end; ++c) map[t.g_idx[c]] = 0;
    for (int64_t g = 0; g < groups; ++g)
      if (map[g] == 0) {
        map[g] = static_cast<int32_t>(used.size());
        used.push_back(g);
      }
    for (int64_t c = begin; c < end; ++c) new_gidx.push_back(map[t.g_idx[c]]);
  } else if (grouped) {
    for (int64_t g = begin / t.scheme.group_size; g < end / t.scheme.group_size; ++g)
      used.push_back(g);
  } else {
    used.push_back(0);
  }
  const int64_t kept = static_cast<int64_t>(used.size());
  const bool has_scales = t.scales != nullptr;
  const bool row_scales = has_scales && (t.scheme.kind != QuantKind::kFp8 || t.scheme.per_channel);
  const size_t data_bytes = dst_row * t.rows;
  const size_t scale_count = row_scales ? kept * t.rows : (has_scales ? 1 : 0);
  const size_t zero_bytes = t.zeros != nullptr ? kept * t.rows : 0;
  const size_t total = data_bytes + scale_count * sizeof(float) +
                       new_gidx.size() * sizeof(int32_t) + zero_bytes + 16;
  std::shared_ptr<uint8_t[]> buf(new uint8_t[total]);
  uint8_t* p = buf.get();
  TensorSlice out;
  out.view = t;
  out.view.cols = cols;
  const auto* src = static_cast<const uint8_t*>(t.data);
  for (int64_t r = 0; r < t.rows; ++r)
    std::memcpy(p + dst_row * r, src + src_row * r + skip, dst_row);
  out.view.data = p;
  p += data_bytes;
  // Keep the float and int32 arrays 4-byte aligned.
  p = buf.get() + ((p - buf.get() + 3) / 4) * 4;
  if (has_scales) {
    auto* sc = reinterpret_cast<float*>(p);
    if (row_scales) {
      const int64_t stride = t.scheme.kind == QuantKind::kFp8 ? 1 : groups;
      for (int64_t r = 0; r < t.rows; ++r)
        for (int64_t i = 0; i < kept; ++i) sc[kept * r + i] = t.scales[stride * r + used[i]];
    } else {
      sc[0] = t.scales[0];
    }
    out.view.scales = sc;
    p += scale_count * sizeof(float);
  }
  if (!new_gidx.empty()) {
    auto* g = reinterpret_cast<int32_t*>(p);
    std::memcpy(g, new_gidx.data(), new_gidx.size() * sizeof(int32_t));
    out.view.g_idx = g;
    p += new_gidx.size() * sizeof(int32_t);
  }
  if (t.zeros != nullptr) {
    for (int64_t r = 0; r < t.rows; ++r)
      for (int64_t i = 0; i < kept; ++i) p[kept * r + i] = t.zeros[groups * r + used[i]];
    out.view.zeros = p;
  }
  out.storage = std::shared_ptr<void>(buf, buf.get());
  return out;
}

}  // namespace tessera
