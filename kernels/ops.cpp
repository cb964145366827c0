#include "kernels/ops.h"
#include "kernels/model_needs_check.h"

#include "common/error.h"

namespace tessera {

size_t Ops::activation_bytes(int64_t elems) const {
  return dtype_row_bytes(activation_dtype(), elems);
}

size_t Ops::residual_bytes(int64_t elems) const {
  return dtype_row_bytes(residual_dtype(), elems);
}

void Ops::matmul_multi(const void* x, int rows, std::span<const Weight* const> ws,
                       std::span<void* const> outs) {
  if (ws.size() != outs.size()) {
    throw Error(ErrorKind::kInvalidArgument, "matmul_multi: weights and outputs differ in count");
  }
  for (size_t i = 0; i < ws.size(); ++i) matmul(x, rows, *ws[i], outs[i]);
}

void Ops::gate_up_silu(const void* x, int rows, const Weight& gate, const Weight& up, void* scratch,
                       void* out) {
  if (gate.rows != up.rows || gate.cols != up.cols) {
    throw Error(ErrorKind::kInvalidArgument, "gate_up_silu: gate and up differ in shape");
  }
  matmul(x, rows, gate, out);
  matmul(x, rows, up, scratch);
  silu_mul(out, scratch, int64_t{rows} * gate.rows, out);
}

void Ops::check_supported(const ModelNeeds& needs) const {
  const std::string why = unsupported_reason(needs);
  if (!why.empty()) {
    throw Error(ErrorKind::kUnsupported,
                "the " + name() + " backend cannot run model " + needs.model + ": " + why);
  }
}

std::string Ops::make_collective_id() {
  throw Error(ErrorKind::kUnsupported,
              "tensor parallelism needs the CUDA backend (" + name() + " has no collectives)");
}

void Ops::join_collectives(const std::string&, int, int world) {
  if (world != 1) make_collective_id();  // throws the same clear line
}

void Ops::all_reduce_sum(void*, int64_t) {
  make_collective_id();
}

std::string common_unsupported_reason(const ModelNeeds& m) {
  const auto n = [](int64_t v) { return std::to_string(v); };
  const int rotary = m.rotary_dim > 0 ? m.rotary_dim : m.head_dim;
  if (rotary % 2 != 0 || rotary > m.head_dim) {
    return "rotary_dim " + n(rotary) + " (must be even and at most head_dim " + n(m.head_dim) + ")";
  }
  if (m.num_kv_heads <= 0 || m.num_heads % m.num_kv_heads != 0) {
    return "num_heads " + n(m.num_heads) + " is not a multiple of num_kv_heads " +
           n(m.num_kv_heads);
  }
  for (const ModelNeeds::WeightFormat& f : m.weight_formats) {
    if (f.scheme.kind == QuantKind::kInt4 && f.cols % 2 != 0) {
      return "int4 weight " + f.example + " with an odd row length " + n(f.cols);
    }
  }
  return {};
}

}  // namespace tessera

namespace tessera {

void Ops::collect_sampled(std::span<int32_t> out_tokens, std::span<SampledLogprobs> out_logprobs) {
  (void)out_tokens, (void)out_logprobs;
  throw Error(ErrorKind::kInternal, "collect_sampled: this backend has no sample_async");
}

}  // namespace tessera
