#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/nccl_comm.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/gemv.h"
#include "kernels/dequant.h"
#include "kernels/scheme_ref.h"

namespace tessera::cuda {
namespace {

using bf16 = __nv_bfloat16;

void invalid(const std::string& what) {
  throw Error(ErrorKind::kInvalidArgument, what);
}

void check_launch(cudaError_t e, const char* what) {
  if (e == cudaErrorInvalidValue) {
    throw Error(ErrorKind::kUnsupported, std::string(what) + ": unsupported shape or dtype");
  }
  check_cuda(e, what);
}

// Llama-3 frequency scaling (Meta's reference rope scaling): long wavelengths are slowed
// down by `factor`, short ones kept, and the band between is interpolated smoothly.
std::vector<float> rope_inv_freq(const RopeConfig& rope, int rotary_dim) {
  std::vector<float> out(static_cast<size_t>(rotary_dim / 2));
  for (int i = 0; i < rotary_dim / 2; ++i) {
    double f = std::pow(static_cast<double>(rope.theta), -2.0 * i / rotary_dim);
    if (rope.scaling_factor > 0.f) {
      const double old_len = rope.original_max_position;
      const double low_wavelen = old_len / rope.low_freq_factor;
      const double high_wavelen = old_len / rope.high_freq_factor;
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f /= rope.scaling_factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_len / wavelen - rope.low_freq_factor) /
                              (rope.high_freq_factor - rope.low_freq_factor);
        f = (1.0 - smooth) * f / rope.scaling_factor + smooth * f;
      }
    }
    out[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  return out;
}

void validate_layout(const StepLayout& l, const KvCacheShape& kv) {
  const size_t t = l.tokens.size();
  const int seqs = l.num_seqs();
  if (l.positions.size() != t || l.slot_mapping.size() != t) {
    invalid("begin_step: tokens, positions and slot_mapping differ in length");
  }
  if (l.query_start.size() != static_cast<size_t>(seqs) + 1 ||
      l.block_table_start.size() != static_cast<size_t>(seqs) + 1) {
    invalid("begin_step: query_start / block_table_start must have num_seqs + 1 entries");
  }
  if (l.query_start[0] != 0 || l.query_start[seqs] != static_cast<int32_t>(t) ||
      l.block_table_start[0] != 0 ||
      l.block_table_start[seqs] != static_cast<int32_t>(l.block_tables.size())) {
    invalid("begin_step: CSR offsets do not cover tokens / block tables");
  }
  if (l.block_size != kv.block_size) invalid("begin_step: block_size differs from the KV cache");
  if (!l.seq_keys.empty() && l.seq_keys.size() != static_cast<size_t>(seqs))
    invalid("begin_step: seq_keys must have num_seqs entries");
  const int64_t num_slots = int64_t(kv.num_blocks) * kv.block_size;
  for (int s = 0; s < seqs; ++s) {
    const int qlen = l.query_start[s + 1] - l.query_start[s];
    const int blocks = l.block_table_start[s + 1] - l.block_table_start[s];
    if (qlen < 0 || blocks < 0) invalid("begin_step: CSR offsets must not decrease");
    if (l.context_len[s] < qlen) invalid("begin_step: context_len shorter than the query");
    if (int64_t(blocks) * kv.block_size < l.context_len[s]) {
      invalid("begin_step: block table too short for context_len");
    }
  }
  for (int32_t b : l.block_tables) {
    if (b < 0 || b >= kv.num_blocks) invalid("begin_step: block id out of range");
  }
  for (int32_t s : l.slot_mapping) {
    if (s >= num_slots) invalid("begin_step: slot out of range");
  }
  for (int32_t r : l.logit_rows) {
    if (r < 0 || r >= static_cast<int32_t>(t)) invalid("begin_step: logit row out of range");
  }
}

}  // namespace

bool DeviceBuffer::reserve(size_t need) {
  if (need <= bytes) return false;
  if (ptr) check_cuda(cudaFree(ptr), "cudaFree");
  const size_t want = need + need / 2 + 256;
  check_cuda(cudaMalloc(&ptr, want), "cudaMalloc(workspace)");
  bytes = want;
  return true;
}
DeviceBuffer::~DeviceBuffer() {
  if (ptr) cudaFree(ptr);
}
void PinnedBuffer::reserve(size_t need) {
  if (need <= bytes) return;
  if (ptr) check_cuda(cudaFreeHost(ptr), "cudaFreeHost");
  const size_t want = need + need / 2 + 256;
  check_cuda(cudaMallocHost(&ptr, want), "cudaMallocHost");
  bytes = want;
}
PinnedBuffer::~PinnedBuffer() {
  if (ptr) cudaFreeHost(ptr);
}

CudaOps::CudaOps(int device) : device_(device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    throw Error(ErrorKind::kUnsupported, "no CUDA device is available");
  }
  if (device < 0 || device >= count) {
    invalid("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
            " present)");
  }
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  check_cuda(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute");
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  check_cuda(cudaEventCreateWithFlags(&upload_done_, cudaEventDisableTiming), "cudaEventCreate");
  gemm_ = std::make_unique<LtGemm>();
  // Raise the attention kernels' shared-memory limits now, never during graph capture.
  PagedAttentionArgs none;
  none.num_heads = none.num_kv_heads = 1;
  for (DType t : {DType::kBF16, DType::kF16}) {
    for (int d : {64, 128}) {
      none.head_dim = d;
      for (AttentionMode m : {AttentionMode::kDecode, AttentionMode::kPrefill}) {
        check_cuda(launch_paged_attention(none, m, t, stream_), "attention setup");
      }
      if (t != DType::kBF16) continue;
      for (int q : {1, 2}) {  // the 8-bit caches' instantiations
        PagedAttentionArgs q8 = none;
        q8.kv_quant = q;
        q8.k_scales = q8.v_scales = reinterpret_cast<const float*>(&q8);  // never read
        for (AttentionMode m : {AttentionMode::kDecode, AttentionMode::kPrefill}) {
          check_cuda(launch_paged_attention(q8, m, t, stream_), "attention setup");
        }
      }
    }
  }
}

CudaOps::~CudaOps() {
  if (stream_) cudaStreamSynchronize(stream_);
  clear_graphs();
  destroy_pipeline_events();
  for (auto& [key, p] : inv_freq_) cudaFree(p);
  gemm_.reset();
  if (upload_done_) cudaEventDestroy(upload_done_);
  if (stream_) cudaStreamDestroy(stream_);
}

void* CudaOps::alloc(size_t bytes) {
  void* p = nullptr;
  check_cuda(cudaMalloc(&p, bytes == 0 ? 1 : bytes), "cudaMalloc");
  return p;
}
void CudaOps::free(void* ptr) {
  if (ptr) check_cuda(cudaFree(ptr), "cudaFree");
}
void CudaOps::to_device(void* dst, const void* src, size_t bytes) {
  check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "to_device");
  check_cuda(cudaStreamSynchronize(stream_), "to_device sync");
}
void CudaOps::to_host(void* dst, const void* src, size_t bytes) {
  check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "to_host");
  check_cuda(cudaStreamSynchronize(stream_), "to_host sync");
}
void CudaOps::synchronize() {
  check_cuda(cudaStreamSynchronize(stream_), "synchronize");
}
bool CudaOps::memory_info(size_t& free_bytes, size_t& total_bytes) {
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  return true;
}

Weight CudaOps::upload(const HostTensor& t) {
  if (t.rows < 0 || t.cols < 0 || (t.data == nullptr && t.rows * t.cols > 0)) {
    invalid("upload: tensor with bad shape or no data");
  }
  if (t.scheme.quantized() && t.scheme.kind != QuantKind::kGguf && t.rows > 1) {
    return upload_scheme(t);  // kept quantized (cuda_ops_quant.cpp)
  }
  if (!t.scheme.quantized() && dtype_is_quantized(t.dtype) && t.rows > 1 && gguf_blocks_ &&
      gguf_blocks_supported(t.dtype, t.cols)) {
    return upload_gguf(t);  // kept as blocks (cuda_ops_quant.cpp)
  }
  const bool scheme = t.scheme.quantized() && t.scheme.kind != QuantKind::kGguf;
  if (!scheme && t.cols % dtype_block_elems(t.dtype) != 0) {
    invalid("upload: quantized tensor whose row length is not a multiple of its block");
  }
  Weight w;
  w.rows = t.rows;
  w.cols = t.cols;
  // Norm weights (one row) go up as f32: they scale every activation. Matrices go up as bf16,
  // what the GEMMs read: bf16 as it is, anything else converted (quantized blocks dequantized).
  const bool vector = t.rows == 1;
  w.dtype = vector ? DType::kF32 : DType::kBF16;
  std::vector<float> f32;
  std::vector<uint16_t> b16;
  const void* src = t.data;
  if (w.dtype != t.dtype || scheme) {
    f32 = dequantize_weight(t);
    src = f32.data();
    if (!vector) {
      b16.resize(f32.size());
      for (size_t i = 0; i < f32.size(); ++i) b16[i] = f32_to_bf16(f32[i]);
      src = b16.data();
    }
  }
  const size_t bytes = dtype_row_bytes(w.dtype, t.rows * t.cols);
  void* dev = alloc(bytes);
  w.owner = std::shared_ptr<void>(dev, [](void* p) { cudaFree(p); });
  check_cuda(cudaMemcpy(dev, src, bytes, cudaMemcpyHostToDevice), "upload");
  w.data = dev;
  return w;
}

KvDtype CudaOps::resolve_kv_dtype(KvDtype requested) const {
  switch (requested) {
    case KvDtype::kAuto:
    case KvDtype::kBF16:
      return KvDtype::kBF16;
    case KvDtype::kF16:
    case KvDtype::kFp8:
    case KvDtype::kInt8:
      return requested;
    default:
      throw Error(ErrorKind::kUnsupported, std::string("the CUDA backend has no ") +
                                               kv_dtype_name(requested) +
                                               " KV cache (bf16, fp16, fp8, int8)");
  }
}

std::unique_ptr<KvCache> CudaOps::make_kv_cache(const KvCacheShape& shape) {
  KvCacheShape s = shape;
  s.dtype = resolve_kv_dtype(shape.dtype);
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  return std::make_unique<CudaKvCache>(*this, s, stream_);
}

void CudaOps::forget_kv_cache(const CudaKvCache* kv) {
  if (stream_) cudaStreamSynchronize(stream_);
  clear_graphs();
  if (kv_ == kv) {
    kv_ = nullptr;
    plan_uploaded_ = false;
  }
}

CudaKvCache& CudaOps::mine(const KvCache& kv) const {
  if (&kv.owner() != this) invalid("KV cache was made by another backend");
  return const_cast<CudaKvCache&>(static_cast<const CudaKvCache&>(kv));
}

void CudaOps::check_step_kv(const KvCache& kv, const char* op) const {
  if (&kv != kv_) invalid(std::string(op) + ": KV cache differs from the one given to begin_step");
}

// The type attention computes in (8-bit caches are decoded to bf16), and the 8-bit code.
static DType storage_dtype(KvDtype t) {
  return t == KvDtype::kF16 ? DType::kF16 : DType::kBF16;
}
static int kv_quant_code(KvDtype t) {
  return t == KvDtype::kFp8 ? 1 : t == KvDtype::kInt8 ? 2 : 0;
}

void CudaOps::copy_kv_blocks(KvCache& kv_base,
                             std::span<const std::pair<int32_t, int32_t>> src_dst) {
  if (src_dst.empty()) return;
  CudaKvCache& kv = mine(kv_base);
  const KvCacheShape& shape = kv.shape();
  std::vector<int2> pairs;
  for (auto [s, d] : src_dst) {
    if (s < 0 || d < 0 || s >= shape.num_blocks || d >= shape.num_blocks) {
      invalid("copy_kv_blocks: block id out of range");
    }
    pairs.push_back(make_int2(s, d));
  }
  if (pairs_dev_.reserve(pairs.size() * sizeof(int2))) clear_graphs();
  check_cuda(cudaMemcpyAsync(pairs_dev_.ptr, pairs.data(), pairs.size() * sizeof(int2),
                             cudaMemcpyHostToDevice, stream_),
             "copy_kv_blocks upload");
  check_launch(launch_copy_kv_blocks(kv.base(), shape.num_layers, shape.num_blocks,
                                     kv.pool_bytes() / shape.num_blocks,
                                     static_cast<const int2*>(pairs_dev_.ptr),
                                     static_cast<int>(pairs.size()), stream_),
               "copy_kv_blocks");
  if (kv.scale_bytes() > 0) {  // the scales region has the same [layers][2][blocks] layout
    check_launch(launch_copy_kv_blocks(kv.k_scales(0), shape.num_layers, shape.num_blocks,
                                       kv.scale_bytes() / shape.num_blocks,
                                       static_cast<const int2*>(pairs_dev_.ptr),
                                       static_cast<int>(pairs.size()), stream_),
                 "copy_kv_blocks(scales)");
  }
  // The pairs buffer is pageable-sourced: finish before the vector goes away.
  synchronize();
}

void CudaOps::begin_step(const StepLayout& layout, KvCache& kv_base) {
  if (capturing()) invalid("begin_step inside graph capture");
  CudaKvCache& kv = mine(kv_base);
  validate_layout(layout, kv.shape());
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  if (kv_ != &kv && kv.shape().num_heads > 0) plan_num_heads_ = kv.shape().num_heads;
  kv_ = &kv;
  kv_shape_ = kv.shape();
  kv_dtype_ = storage_dtype(kv.dtype());
  layout_ = layout;
  for (const auto& [row, index] : layout.tokens_from_sample) {
    if (row < 0 || row >= layout.num_tokens() || index < 0 || index >= sample_out_rows_)
      invalid("begin_step: a fed token's row or sampler index is out of range");
    layout_.tokens[static_cast<size_t>(row)] = 0;  // the host's copy; the device gets the token
  }
  update_device_tables();
  if (step_start_ == nullptr) {
    step_start_ = take_event();
    check_cuda(cudaEventRecord(step_start_, stream_), "cudaEventRecord(step start)");
  }
  plan_uploaded_ = false;
  reserve_fp8_activations(layout.num_tokens());
  if (plan_num_heads_ > 0) {
    ensure_plan(plan_num_heads_, plan_window_ < 0 ? 0 : plan_window_);
  } else {
    plan_ = AttentionPlan{};
    upload_metadata();  // layout only; the plan follows at the first paged_attention
  }
}

void CudaOps::ensure_plan(int num_heads, int sliding_window) {
  if (plan_uploaded_ && num_heads == plan_num_heads_ && sliding_window == plan_window_) return;
  if (capturing()) {
    throw Error(ErrorKind::kInternal,
                "attention plan changed inside graph capture (num_heads or window)");
  }
  AttentionPlanOptions o;
  o.group_size = num_heads / kv_shape_.num_kv_heads;
  o.num_kv_heads = kv_shape_.num_kv_heads;
  o.num_sms = num_sms_;
  o.sliding_window = sliding_window;
  if (deterministic_) {
    const int longest = kv_shape_.max_seq_len > 0 ? kv_shape_.max_seq_len
                                                  : kv_shape_.num_blocks * kv_shape_.block_size;
    o.fixed_kv_chunk = deterministic_kv_chunk(longest);
  }
  plan_ = plan_attention(layout_, o);
  plan_num_heads_ = num_heads;
  plan_window_ = sliding_window;
  upload_metadata();
  plan_uploaded_ = true;
}

void CudaOps::upload_metadata() {
  const StepLayout& l = layout_;
  size_t n = 0;
  auto place = [&n](size_t count) {
    const size_t at = n;
    n += (count + 3) & ~size_t(3);  // 16-byte aligned sections
    return at;
  };
  constexpr size_t kItem = sizeof(AttentionWorkItem) / 4, kMerge = sizeof(AttentionMerge) / 4;
  off_.tokens = place(l.tokens.size());
  off_.positions = place(l.positions.size());
  off_.slots = place(l.slot_mapping.size());
  off_.query_start = place(l.query_start.size());
  off_.context_len = place(l.context_len.size());
  off_.bt_start = place(l.block_table_start.size());  // device tables: row starts instead
  off_.logit_rows = place(l.logit_rows.size());
  off_.decode_items = place(plan_.decode.items.size() * kItem);
  off_.decode_merges = place(plan_.decode.merges.size() * kMerge);
  off_.prefill_items = place(plan_.prefill.items.size() * kItem);
  off_.prefill_merges = place(plan_.prefill.merges.size() * kMerge);
  off_.block_tables = place(device_tables() ? 0 : l.block_tables.size());  // varies in decode
  off_.token_feed = place(l.tokens_from_sample.size() * 2);
  off_.table_updates = place(bt_updates_.size() * 2);

  // The staging buffer may still feed the previous step's copy.
  check_cuda(cudaEventSynchronize(upload_done_), "cudaEventSynchronize");
  meta_host_.reserve(n * 4);
  if (meta_dev_.reserve(n * 4)) clear_graphs();
  int32_t* h = static_cast<int32_t*>(meta_host_.ptr);
  auto put = [h](size_t at, const void* src, size_t ints) {
    if (ints) std::memcpy(h + at, src, ints * 4);
  };
  put(off_.tokens, l.tokens.data(), l.tokens.size());
  put(off_.positions, l.positions.data(), l.positions.size());
  put(off_.slots, l.slot_mapping.data(), l.slot_mapping.size());
  put(off_.query_start, l.query_start.data(), l.query_start.size());
  put(off_.context_len, l.context_len.data(), l.context_len.size());
  put(off_.bt_start, device_tables() ? bt_row_start_.data() : l.block_table_start.data(),
      l.block_table_start.size());
  put(off_.logit_rows, l.logit_rows.data(), l.logit_rows.size());
  put(off_.decode_items, plan_.decode.items.data(), plan_.decode.items.size() * kItem);
  put(off_.decode_merges, plan_.decode.merges.data(), plan_.decode.merges.size() * kMerge);
  put(off_.prefill_items, plan_.prefill.items.data(), plan_.prefill.items.size() * kItem);
  put(off_.prefill_merges, plan_.prefill.merges.data(), plan_.prefill.merges.size() * kMerge);
  if (!device_tables()) put(off_.block_tables, l.block_tables.data(), l.block_tables.size());
  put(off_.token_feed, l.tokens_from_sample.data(), l.tokens_from_sample.size() * 2);
  put(off_.table_updates, bt_updates_.data(), bt_updates_.size() * 2);
  check_cuda(cudaMemcpyAsync(meta_dev_.ptr, h, n * 4, cudaMemcpyHostToDevice, stream_),
             "metadata upload");
  check_cuda(cudaEventRecord(upload_done_, stream_), "cudaEventRecord");
  check_launch(launch_feed_tokens(static_cast<int32_t*>(meta_dev_.ptr) + off_.tokens,
                                  reinterpret_cast<const int2*>(meta(off_.token_feed)),
                                  static_cast<int>(l.tokens_from_sample.size()),
                                  static_cast<const int32_t*>(sample_out_dev_.ptr), stream_),
               "feed_tokens");
  check_launch(launch_scatter_i32(static_cast<int32_t*>(bt_dev_.ptr),
                                  reinterpret_cast<const int2*>(meta(off_.table_updates)),
                                  static_cast<int>(bt_updates_.size()), stream_),
               "block table updates");
  bt_updates_.clear();  // applied; a second upload this step (ensure_plan) has none

  // Split-K partials: decode then prefill outputs, then all log-sum-exps.
  const size_t hd = size_t(kv_shape_.num_kv_heads) * kv_shape_.head_dim;
  decode_partial_floats_ = size_t(plan_.decode.num_partials) * hd * kDecodeRows;
  const size_t prefill_floats = size_t(plan_.prefill.num_partials) * hd * kPrefillRows;
  const size_t lse =
      size_t(kv_shape_.num_kv_heads) * (size_t(plan_.decode.num_partials) * kDecodeRows +
                                        size_t(plan_.prefill.num_partials) * kPrefillRows);
  if (partials_.reserve((decode_partial_floats_ + prefill_floats + lse) * 4)) clear_graphs();
}

const int32_t* CudaOps::block_tables_ptr() const {
  return device_tables() ? static_cast<const int32_t*>(bt_dev_.ptr) : meta(off_.block_tables);
}

void CudaOps::update_device_tables() {
  bt_updates_.clear();
  if (!device_tables()) return;
  BlockTableMirror::Result r =
      bt_mirror_.apply(layout_.seq_keys, layout_.block_table_start, layout_.block_tables);
  if (r.resized && bt_dev_.reserve(size_t(bt_mirror_.size()) * 4)) clear_graphs();
  r.row_start.back() = 0;  // [num_seqs + 1] like the host layout's; the kernels read [s]
  bt_row_start_ = std::move(r.row_start);
  bt_updates_ = std::move(r.updates);
}

const int32_t* CudaOps::meta(size_t offset) const {
  return static_cast<const int32_t*>(meta_dev_.ptr) + offset;
}

void CudaOps::embedding(const Weight& table, void* out) {
  inject_capture_fault();  // the first op of a step: the capture-failure test hook
  const bool blocks = table.scheme.kind == QuantKind::kGguf;
  if ((table.dtype != DType::kBF16 || table.scheme.quantized()) && !blocks) {
    invalid("embedding: table must be an uploaded bf16 matrix or GGUF blocks");
  }
  for (int32_t t : layout_.tokens) {
    if (t < 0 || t >= table.rows) {
      invalid("embedding: token id " + std::to_string(t) + " outside the vocabulary of " +
              std::to_string(table.rows));
    }
  }
  if (blocks) {
    check_launch(launch_gguf_embedding(table.data, table.dtype, table.rows,
                                       static_cast<int>(table.cols), meta(off_.tokens),
                                       layout_.num_tokens(), static_cast<float*>(out), stream_),
                 "gguf_embedding");
    return;
  }
  check_launch(launch_embedding(static_cast<const bf16*>(table.data), table.rows,
                                static_cast<int>(table.cols), meta(off_.tokens),
                                layout_.num_tokens(), static_cast<float*>(out), stream_),
               "embedding");
}

void CudaOps::add_rms_norm(void* residual, const void* x, const Weight& gamma, float eps,
                           void* out) {
  if (gamma.dtype != DType::kF32) invalid("add_rms_norm: gamma must be a 1-D f32 weight");
  check_launch(
      launch_add_rms_norm(static_cast<float*>(residual), static_cast<const bf16*>(x),
                          static_cast<const float*>(gamma.data), layout_.num_tokens(),
                          static_cast<int>(gamma.cols), eps, static_cast<bf16*>(out), stream_),
      "add_rms_norm");
}

void CudaOps::matmul(const void* x, int rows, const Weight& w, void* out) {
  if (deterministic_) return matmul_invariant(x, rows, w, out, false);
  if (is_scheme(w)) return matmul_scheme(x, rows, w, out, false);
  if (w.dtype != DType::kBF16) invalid("matmul: weight must be an uploaded bf16 matrix");
  if (rows <= gemv_row_cutoff(kGemvRowsPlain, w.rows, w.cols) &&
      w.cols % 8 == 0) {  // decode: bandwidth-bound weight stream
    check_launch(launch_gemv(x, rows, w.data, static_cast<int>(w.rows), static_cast<int>(w.cols),
                             out, false, stream_),
                 "gemv");
    return;
  }
  gemm_->run(x, rows, w.data, static_cast<int>(w.rows), static_cast<int>(w.cols), out, false,
             stream_);
}

// True when the GEMV kernels take this weight at this many rows (max_rows: the measured
// cutoff against cuBLASLt for the op, see gemv.h).
static bool gemv_fits(int rows, int max_rows, const Weight& w) {
  return rows >= 1 && rows <= gemv_row_cutoff(max_rows, w.rows, w.cols) &&
         w.dtype == DType::kBF16 && !w.scheme.quantized() && w.cols % 8 == 0 &&
         w.rows <= INT32_MAX && w.cols <= INT32_MAX;
}

void CudaOps::matmul_multi(const void* x, int rows, std::span<const Weight* const> ws,
                           std::span<void* const> outs) {
  if (ws.size() != outs.size()) invalid("matmul_multi: weights and outputs differ in count");
  if (matmul_multi_scheme(x, rows, ws, outs)) return;
  bool fused = !ws.empty() && !deterministic_;  // the fused GEMVs order sums by batch size
  for (const Weight* w : ws) {
    fused = fused && gemv_fits(rows, kGemvRowsGrouped, *w) && w->cols == ws[0]->cols;
  }
  if (!fused) {
    Ops::matmul_multi(x, rows, ws, outs);
    return;
  }
  // Groups of up to kMaxGemvGroup weights, one launch each (Q/K/V is one group).
  for (size_t first = 0; first < ws.size(); first += kMaxGemvGroup) {
    GemvGroup g;
    g.count = static_cast<int>(std::min<size_t>(kMaxGemvGroup, ws.size() - first));
    for (int i = 0; i < g.count; ++i) {
      g.w[i] = ws[first + i]->data;
      g.out[i] = outs[first + i];
      g.n[i] = static_cast<int>(ws[first + i]->rows);
    }
    check_launch(launch_gemv_group(x, rows, g, static_cast<int>(ws[0]->cols), stream_),
                 "gemv_group");
  }
}

void CudaOps::gate_up_silu(const void* x, int rows, const Weight& gate, const Weight& up,
                           void* scratch, void* out) {
  if (gate.rows != up.rows || gate.cols != up.cols) {
    invalid("gate_up_silu: gate and up differ in shape");
  }
  if (gate_up_silu_scheme(x, rows, gate, up, out)) return;
  if (deterministic_ || !gemv_fits(rows, kGemvRowsGateUp, gate) ||
      !gemv_fits(rows, kGemvRowsGateUp, up)) {
    Ops::gate_up_silu(x, rows, gate, up, scratch, out);
    return;
  }
  check_launch(launch_gemv_gate_up_silu(x, rows, gate.data, up.data, static_cast<int>(gate.rows),
                                        static_cast<int>(gate.cols), out, stream_),
               "gemv_gate_up_silu");
}

void CudaOps::lm_head(const void* x, int rows, const Weight& w, float* logits) {
  if (deterministic_) return matmul_invariant(x, rows, w, logits, true);
  if (is_scheme(w)) return matmul_scheme(x, rows, w, logits, true);
  if (w.dtype != DType::kBF16) invalid("lm_head: weight must be an uploaded bf16 matrix");
  if (rows <= gemv_row_cutoff(kGemvRowsLmHead, w.rows, w.cols) && w.cols % 8 == 0) {
    check_launch(launch_gemv(x, rows, w.data, static_cast<int>(w.rows), static_cast<int>(w.cols),
                             logits, true, stream_),
                 "gemv");
    return;
  }
  gemm_->run(x, rows, w.data, static_cast<int>(w.rows), static_cast<int>(w.cols), logits, true,
             stream_);
}

const float* CudaOps::inv_freq_for(const RopeConfig& rope, int rotary_dim) {
  const auto key =
      std::make_tuple(rope.theta, rotary_dim, rope.scaling_factor, rope.low_freq_factor,
                      rope.high_freq_factor, rope.original_max_position, rope.neox, 0);
  auto it = inv_freq_.find(key);
  if (it != inv_freq_.end()) return it->second;
  if (capturing()) throw Error(ErrorKind::kInternal, "new RoPE table inside graph capture");
  const std::vector<float> f = rope_inv_freq(rope, rotary_dim);
  float* dev = static_cast<float*>(alloc(std::max<size_t>(f.size(), 1) * 4));
  check_cuda(cudaMemcpy(dev, f.data(), f.size() * 4, cudaMemcpyHostToDevice), "rope table");
  inv_freq_.emplace(key, dev);
  return dev;
}

void CudaOps::rope_store_kv(KvCache& kv, void* q, void* k, const void* v, int layer,
                            const AttentionParams& attn, const RopeConfig& rope) {
  check_step_kv(kv, "rope_store_kv");
  if (layer < 0 || layer >= kv_shape_.num_layers) invalid("rope_store_kv: bad layer");
  if (attn.num_kv_heads != kv_shape_.num_kv_heads || attn.head_dim != kv_shape_.head_dim) {
    invalid("rope_store_kv: attention shape differs from the KV cache");
  }
  RopeStoreArgs a;
  a.q = static_cast<bf16*>(q);
  a.k = static_cast<bf16*>(k);
  a.v = static_cast<const bf16*>(v);
  a.positions = meta(off_.positions);
  a.slot_mapping = meta(off_.slots);
  a.rotary_dim = rope.rotary_dim > 0 ? rope.rotary_dim : attn.head_dim;
  a.inv_freq = inv_freq_for(rope, a.rotary_dim);
  a.k_pool = kv_->k_pool(layer);
  a.v_pool = kv_->v_pool(layer);
  a.kv_dtype = kv_dtype_;
  a.kv_quant = kv_quant_code(kv_->dtype());
  a.k_scales = kv_->k_scales(layer);
  a.v_scales = kv_->v_scales(layer);
  a.num_tokens = layout_.num_tokens();
  a.num_heads = attn.num_heads;
  a.num_kv_heads = attn.num_kv_heads;
  a.head_dim = attn.head_dim;
  a.neox = rope.neox;
  check_launch(launch_rope_store_kv(a, stream_), "rope_store_kv");
}

void CudaOps::paged_attention(const KvCache& kv, const void* q, int layer,
                              const AttentionParams& attn, void* out) {
  check_step_kv(kv, "paged_attention");
  if (layer < 0 || layer >= kv_shape_.num_layers) invalid("paged_attention: bad layer");
  if (attn.num_kv_heads != kv_shape_.num_kv_heads || attn.head_dim != kv_shape_.head_dim ||
      attn.num_heads % attn.num_kv_heads != 0) {
    invalid("paged_attention: attention shape differs from the KV cache");
  }
  ensure_plan(attn.num_heads, attn.sliding_window);
  PagedAttentionArgs a;
  a.q = q;
  a.out = out;
  a.k_pool = kv_->k_pool(layer);
  a.v_pool = kv_->v_pool(layer);
  a.kv_quant = kv_quant_code(kv_->dtype());
  a.k_scales = kv_->k_scales(layer);
  a.v_scales = kv_->v_scales(layer);
  a.query_start = meta(off_.query_start);
  a.context_len = meta(off_.context_len);
  a.block_table_start = meta(off_.bt_start);
  a.block_tables = block_tables_ptr();
  a.num_heads = attn.num_heads;
  a.num_kv_heads = attn.num_kv_heads;
  a.head_dim = attn.head_dim;
  a.block_size = kv_shape_.block_size;
  a.scale = attn.scale;
  a.sliding_window = attn.sliding_window;
  float* partial = static_cast<float*>(partials_.ptr);
  const size_t hd = size_t(kv_shape_.num_kv_heads) * kv_shape_.head_dim;
  const size_t prefill_floats = size_t(plan_.prefill.num_partials) * hd * kPrefillRows;
  float* lse = partial + decode_partial_floats_ + prefill_floats;

  const struct {
    AttentionMode mode;
    const AttentionModePlan& plan;
    size_t items, merges;
    float* o;
    float* lse;
  } runs[2] = {
      {AttentionMode::kDecode, plan_.decode, off_.decode_items, off_.decode_merges, partial, lse},
      {AttentionMode::kPrefill, plan_.prefill, off_.prefill_items, off_.prefill_merges,
       partial + decode_partial_floats_,
       lse + size_t(plan_.decode.num_partials) * kv_shape_.num_kv_heads * kDecodeRows},
  };
  for (const auto& r : runs) {
    if (r.plan.items.empty()) continue;
    a.items = reinterpret_cast<const AttentionWorkItem*>(meta(r.items));
    a.num_items = static_cast<int>(r.plan.items.size());
    a.partial_o = r.o;
    a.partial_lse = r.lse;
    check_launch(launch_paged_attention(a, r.mode, kv_dtype_, stream_), "paged_attention");
    check_launch(
        launch_attention_merge(a, r.mode, reinterpret_cast<const AttentionMerge*>(meta(r.merges)),
                               static_cast<int>(r.plan.merges.size()), stream_),
        "attention_merge");
  }
}

void CudaOps::silu_mul(const void* gate, const void* up, int64_t count, void* out) {
  check_launch(launch_silu_mul(static_cast<const bf16*>(gate), static_cast<const bf16*>(up), count,
                               static_cast<bf16*>(out), stream_),
               "silu_mul");
}

void CudaOps::gather_logit_rows(const void* x, int dim, void* out) {
  check_launch(launch_gather_rows(static_cast<const bf16*>(x), dim, meta(off_.logit_rows),
                                  static_cast<int>(layout_.logit_rows.size()),
                                  static_cast<bf16*>(out), stream_),
               "gather_logit_rows");
}

CudaOps::Signature CudaOps::signature() const {
  return {layout_.num_tokens(),
          layout_.num_seqs(),
          static_cast<int>(layout_.logit_rows.size()),
          static_cast<int>(plan_.decode.items.size()),
          static_cast<int>(plan_.decode.merges.size()),
          static_cast<int>(plan_.prefill.items.size()),
          static_cast<int>(plan_.prefill.merges.size()),
          plan_.decode.num_partials,
          plan_.prefill.num_partials,
          plan_num_heads_,
          device_tables()};
}

}  // namespace tessera::cuda
