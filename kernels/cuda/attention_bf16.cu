// Explicit instantiations of the paged attention kernel for a bf16 KV cache (a separate file
// per cache type keeps builds parallel).
#include "kernels/cuda/attention_kernel.cuh"

namespace tessera::cuda {

cudaError_t launch_paged_attention_bf16(const PagedAttentionArgs& a, AttentionMode mode,
                                        cudaStream_t stream) {
  const bool decode = mode == AttentionMode::kDecode;
  switch (a.head_dim) {
    case 64:
      return decode ? launch_attention_instance<__nv_bfloat16, 64, true>(a, stream)
                    : launch_attention_instance<__nv_bfloat16, 64, false>(a, stream);
    case 128:
      return decode ? launch_attention_instance<__nv_bfloat16, 128, true>(a, stream)
                    : launch_attention_instance<__nv_bfloat16, 128, false>(a, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace tessera::cuda
