#pragma once
// Beam search bookkeeping for one request, as Hugging Face transformers (5.x, the refactored
// GenerationMixin._beam_search) defines it for generate(num_beams=W, do_sample=False);
// pure, no engine or model types.
//
// Each step, the caller hands in a log-softmax row per live beam (all beams have generated
// g tokens). Then:
//   candidates = the K = max(2, 1 + #eos) * W best (beam sum + row[token]) over all beams;
//   a candidate "hits a stop" when its token is an EOS or g + 1 == max_new_tokens;
//   candidates ranked < W that hit a stop become finished hypotheses scored
//     sum_logprob / (g + 1) ** length_penalty   (g + 1 generated tokens, the EOS included);
//   only the W best hypotheses are kept (with early_stopping kFirst, none join once W exist);
//   the W best candidates that do not hit a stop are the next beams.
// After the step the search is done when no candidate could continue (max_new_tokens), or
// once W hypotheses exist and either early_stopping is kFirst or the best live beam cannot
// beat the worst hypothesis: best_sum / L ** length_penalty <= worst score, where L = g + 1
// (kHeuristic, transformers' early_stopping=False, the default; and kNever with
// length_penalty <= 0) or max_new_tokens (kNever with length_penalty > 0).
// Result: the hypotheses by score, best first.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "engine/request.h"  // EarlyStopping

namespace tessera {

struct BeamSearchConfig {
  int width = 4;                // W, live beams and kept hypotheses
  float length_penalty = 1.0f;  // exponent on the generated length
  EarlyStopping early_stopping = EarlyStopping::kHeuristic;
  int max_new_tokens = 16;       // generated tokens per beam, EOS included
  std::vector<int32_t> eos_ids;  // tokens that finish a hypothesis (empty: ignore_eos)
};

struct Beam {
  std::vector<int32_t> tokens;        // generated so far
  std::vector<float> token_logprobs;  // log-softmax of each token where it was chosen
  double sum_logprob = 0.0;
};

struct BeamHypothesis {
  std::vector<int32_t> tokens;  // generated tokens; ends with the EOS when `eos`
  std::vector<float> token_logprobs;
  double sum_logprob = 0.0;  // EOS's logprob included
  double score = 0.0;        // sum_logprob / generated_len ** length_penalty
  bool eos = false;          // finished by EOS (else by max_new_tokens)
};

// How one step's beams descend from the previous ones: next beam i continues parent beam
// `parent` (an index into beams() before the step) with `token`.
struct BeamStepChoice {
  int parent = 0;
  int32_t token = 0;
  float logprob = 0.0f;
};

class BeamSearch {
 public:
  explicit BeamSearch(BeamSearchConfig config);  // one empty beam

  const BeamSearchConfig& config() const { return config_; }
  const std::vector<Beam>& beams() const { return beams_; }
  const std::vector<BeamHypothesis>& hypotheses() const { return hyps_; }  // best first
  bool done() const { return done_; }

  // One step. rows[i]: log-softmax over the vocabulary after beam i, or nullopt when beam i
  // has no row this step (it is dropped: e.g. its sequence was preempted); at least one row.
  // Returns the new beams' ancestry, best first, in the order of beams() afterwards; empty
  // when the step ended the search.
  std::vector<BeamStepChoice> step(std::span<const std::optional<std::span<const float>>> rows);

  // The n best hypotheses, best first; call once done().
  std::vector<BeamHypothesis> best(int n) const;

 private:
  double score_of(double sum_logprob, int generated_len) const;
  bool full() const { return hyps_.size() >= static_cast<size_t>(config_.width); }

  BeamSearchConfig config_;
  std::vector<Beam> beams_;
  std::vector<BeamHypothesis> hyps_;  // at most width, best first
  bool done_ = false;
};

}  // namespace tessera
