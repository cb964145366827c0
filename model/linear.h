#pragma once
// A projection y = x W^T whose weight carries its storage scheme (kernels/weight_scheme.h:
// dense bf16/f16/f32, GGUF blocks, FP8, INT8/INT4 group-wise). The layer itself knows no
// scheme: the backend picks the kernel for (scheme, batch rows) when it runs matmul,
// matmul_multi, gate_up_silu or lm_head on the uploaded Weight.
#include <cstdint>
#include <span>

#include "kernels/ops.h"

namespace tessera {

class Linear {
 public:
  Linear() = default;
  // Uploads the weight [out_features, in_features] (the backend may repack it).
  Linear(Ops& ops, const HostTensor& weight) : w_(ops.upload(weight)) {}
  explicit Linear(Weight uploaded) : w_(std::move(uploaded)) {}

  const Weight& weight() const { return w_; }
  const QuantScheme& scheme() const { return w_.scheme; }
  int64_t in_features() const { return w_.cols; }
  int64_t out_features() const { return w_.rows; }

  // out: [rows, out_features] = x [rows, in_features] W^T, in activation_dtype().
  void forward(Ops& ops, const void* x, int rows, void* out) const { ops.matmul(x, rows, w_, out); }
  // The same into f32 logits (the LM head).
  void forward_logits(Ops& ops, const void* x, int rows, float* logits) const {
    ops.lm_head(x, rows, w_, logits);
  }

 private:
  Weight w_;
};

// Several projections of the same input (Q, K, V): one fused launch where the backend has it.
void linear_multi(Ops& ops, const void* x, int rows, std::span<const Linear* const> ls,
                  std::span<void* const> outs);

}  // namespace tessera
