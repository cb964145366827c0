#pragma once
// Per-request state the engine thread keeps: one RequestState per submitted request, one
// ChoiceState per choice (n > 1 gives several). Also the per-token output rule
// (append_token): detokenize, check stops, decide the finish reason.
//
// Not thread-safe: only the engine thread touches these (the stream has its own lock).
#include <memory>
#include <optional>
#include <vector>

#include "engine/beam_search.h"
#include "engine/request.h"
#include "engine/result_stream_impl.h"
#include "engine/stop_matcher.h"
#include "model/tokenizer.h"
#include "scheduler/step_plan.h"

namespace tessera {

// When a choice ends, resolved once per request.
struct StopRules {
  std::vector<int32_t> eos_ids;         // EOS and end-of-turn ids; empty with ignore_eos
  std::vector<int32_t> stop_token_ids;  // the request's extra stop ids (always apply)
  int max_tokens = 16;                  // generated tokens per choice
  int max_model_len = 0;                // prompt + generated cap; 0 = none

  static StopRules make(const SamplingParams& params, const Tokenizer& tok, int model_eos_id,
                        int max_model_len);
};

struct ChoiceState {
  ChoiceState(int index, const Tokenizer& tok, const SamplingParams& params, uint64_t seed);

  int index;
  uint64_t seed;                // request seed + index, as vLLM seeds n > 1 children
  std::optional<SeqId> seq;     // the scheduler sequence; none before fork / after end
  std::vector<int32_t> output;  // generated ids
  IncrementalDecoder decoder;
  StopMatcher stops;
  bool finished = false;
  Clock::time_point last_token_time{};
  int spec_draft_tokens = 0;  // speculative tokens verified / accepted
  int spec_accepted_tokens = 0;
};

// A beam-search request's live beams: seqs[i] is the scheduler sequence of
// search.beams()[i]. Its choices get their tokens only when the search ends.
struct BeamGroup {
  explicit BeamGroup(BeamSearchConfig config) : search(std::move(config)) {}
  BeamSearch search;
  std::vector<SeqId> seqs;
};

struct RequestState {
  GenerationRequest request;
  std::shared_ptr<StreamState> stream;
  StopRules rules;
  std::vector<std::unique_ptr<ChoiceState>> choices;
  bool forked = false;               // n > 1: siblings created after the first sample
  std::unique_ptr<BeamGroup> beams;  // use_beam_search only (engine/engine_beam.cpp)
  std::optional<Clock::time_point> first_scheduled;
  std::optional<Clock::time_point> first_token;
  int cached_prompt_tokens = 0;
  int num_finished = 0;
  std::optional<FinishReason> status;  // the request's final status (see engine_impl.cpp)

  int prompt_len() const { return static_cast<int>(request.prompt.size()); }
  int num_choices() const { return static_cast<int>(choices.size()); }
};

// Appends one sampled token to a choice and returns the event to stream. The event's
// `finish` is set when this token ends the choice:
//   EOS / end-of-turn (unless ignore_eos) or a stop token id -> kStop; the token's own text
//     is not emitted, held-back text is released;
//   a stop string completed                                   -> kStop; the stop string
//     and anything after it are never emitted;
//   max_tokens or max_model_len reached                       -> kLength; pending text is
//     flushed (a dangling partial UTF-8 character becomes U+FFFD).
GenerationEvent append_token(ChoiceState& choice, int prompt_len, int32_t token,
                             std::optional<TokenLogprob> logprob, const StopRules& rules);

// Text still held back (by the decoder or the stop matcher) when a choice ends for a reason
// other than a token (cancel, deadline, error): released so deltas add up.
std::string drain_pending_text(ChoiceState& choice);

}  // namespace tessera
