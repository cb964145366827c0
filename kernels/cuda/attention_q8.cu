// Explicit instantiations of the paged attention kernel for 8-bit KV caches (e4m3 and int8
// with per-(slot, head) scales), computed in bf16 like the bf16 cache.
#include "kernels/cuda/attention_kernel.cuh"

namespace tessera::cuda {
namespace {

template <int kQ>
cudaError_t launch_q(const PagedAttentionArgs& a, bool decode, cudaStream_t stream) {
  using T = __nv_bfloat16;
  switch (a.head_dim) {
    case 64:
      return decode ? launch_attention_instance<T, 64, true, kQ>(a, stream)
                    : launch_attention_instance<T, 64, false, kQ>(a, stream);
    case 128:
      return decode ? launch_attention_instance<T, 128, true, kQ>(a, stream)
                    : launch_attention_instance<T, 128, false, kQ>(a, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t launch_paged_attention_q8(const PagedAttentionArgs& a, AttentionMode mode,
                                      cudaStream_t stream) {
  const bool decode = mode == AttentionMode::kDecode;
  if (a.kv_quant == 1) return launch_q<1>(a, decode, stream);
  if (a.kv_quant == 2) return launch_q<2>(a, decode, stream);
  return cudaErrorInvalidValue;
}

}  // namespace tessera::cuda
