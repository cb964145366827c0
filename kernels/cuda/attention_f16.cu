// Explicit instantiations of the paged attention kernel for a f16 KV cache (a separate file
// per cache type keeps builds parallel).
#include "kernels/cuda/attention_kernel.cuh"

namespace tessera::cuda {

cudaError_t launch_paged_attention_f16(const PagedAttentionArgs& a, AttentionMode mode,
                                       cudaStream_t stream) {
  const bool decode = mode == AttentionMode::kDecode;
  switch (a.head_dim) {
    case 64:
      return decode ? launch_attention_instance<__half, 64, true>(a, stream)
                    : launch_attention_instance<__half, 64, false>(a, stream);
    case 128:
      return decode ? launch_attention_instance<__half, 128, true>(a, stream)
                    : launch_attention_instance<__half, 128, false>(a, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace tessera::cuda
