#pragma once
// Engine-side checks of a GenerationRequest. Frontends validate first (with their own field
// names); Engine::submit re-checks here so no bad request reaches the step loop.
#include "engine/request.h"

namespace tessera {

struct RequestLimits {
  int vocab_size = 0;
  int max_model_len = 0;
  int max_num_seqs = 1;  // n may not exceed what can run at once
};

// Throws Error(kInvalidArgument) naming the offending field and its allowed range.
void validate_request(const GenerationRequest& request, const RequestLimits& limits);

}  // namespace tessera
