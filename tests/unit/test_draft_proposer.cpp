// A draft model with its own KV cache runs only in steps that draft: it catches up on the
// tokens its cache lacks first. With the served model itself as the draft, greedy drafts must
// be exactly the served model's greedy continuation, whatever the gap since the last
// drafting step, across partial and full acceptance, after forget() and in passes split by
// the catch-up budget.
#include <catch2/catch.hpp>

#include <memory>
#include <span>
#include <vector>

#include "engine/model_proposer.h"
#include "engine/sampler.h"
#include "engine/simple_generate.h"
#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/weights.h"
#include "tests/unit/default_model.h"

using namespace tessera;

namespace {

constexpr int kBlock = 16;
const std::vector<BlockId> kTable = {4, 7, 2, 9};  // positions [0, 64)

// The default model as the target and as its own draft (a second instance on the same
// weights and backend, with a KV cache of its own).
struct Models {
  std::unique_ptr<test::DefaultModel> target;
  std::unique_ptr<LlamaModel> draft;
};

Models load_models() {
  Models r;
  r.target = test::load_default_model();
  const test::DefaultModel& t = *r.target;
  r.draft = std::make_unique<LlamaModel>(t.loaded.config, t.loaded.weights, *t.ops);
  r.draft->init_kv_cache(12, kBlock);
  return r;
}

// The served model's greedy continuation of prompt, n tokens.
std::vector<int32_t> greedy(LlamaModel& model, std::vector<int32_t> tokens, int n) {
  SequenceRunner r(model, 64);
  std::vector<int32_t> out;
  std::vector<float> logits = r.feed(tokens);
  for (int i = 0; i < n; ++i) {
    out.push_back(argmax_token(logits));
    const int32_t t = out.back();
    logits = r.feed(std::span<const int32_t>(&t, 1));
  }
  return out;
}

// A decode step of `known` tokens with k draft slots, as the scheduler plans it.
StepPlan drafting_step(SeqId id, const std::vector<int32_t>& known, int k) {
  ScheduledSeq s;
  s.id = id;
  s.start = static_cast<int>(known.size()) - 1;
  s.end = static_cast<int>(known.size()) + k;
  s.num_draft = k;
  s.sample = true;
  s.tokens.assign(1, known.back());
  s.tokens.resize(static_cast<size_t>(k) + 1, -1);
  s.block_table = kTable;
  StepPlan plan;
  plan.seqs.push_back(std::move(s));
  return plan;
}

}  // namespace

TEST_CASE("a draft model catches up on what it missed and drafts the greedy continuation",
          "[spec][draft]") {
  Models m = load_models();
  // "def frobnicate_widget(x):\n    y = x * 2\n    return y + 1\n\nresult = frob": the
  // continuation copies the name from the first tokens, so a draft that missed them fails.
  const std::vector<int32_t> prompt = {1604, 5999, 82,  5180, 368,  79,   19301, 24,   104,  727,
                                       472,  329,  446, 1792, 1672, 216,  34,    472,  1003, 329,
                                       1232, 216,  33,  198,  198,  4917, 446,   5999, 82};
  const std::vector<int32_t> cont = greedy(*m.target->model, prompt, 14);
  auto known = [&](int generated) {
    std::vector<int32_t> t = prompt;
    t.insert(t.end(), cont.begin(), cont.begin() + generated);
    return t;
  };
  auto want = [&](int generated, int k) {
    return std::vector<int32_t>(cont.begin() + generated, cont.begin() + generated + k);
  };
  // A catch-up budget of 5 tokens: the first drafting step needs three catch-up passes.
  ModelProposer p(*m.draft, 0, true, kBlock, false, 0.1, 5);
  const int n = static_cast<int>(prompt.size());

  // First drafting step: the draft cache holds nothing of the sequence.
  StepPlan plan = drafting_step(1, known(0), 3);
  REQUIRE(p.draft_len(1, known(0), 3) == 3);
  std::vector<std::vector<int32_t>> drafts = p.propose(plan, StepLayout{}, {});
  CHECK(drafts[0] == want(0, 3));
  CHECK(p.draft_computed(1) == n + 2);
  const int accepted_one[] = {1};
  p.verified(plan, accepted_one);
  CHECK(p.draft_computed(1) == n + 1);

  // Four tokens later (steps without drafts never reach the proposer), two drafts.
  plan = drafting_step(1, known(6), 2);
  REQUIRE(p.draft_len(1, known(6), 2) == 2);
  drafts = p.propose(plan, StepLayout{}, {});
  CHECK(drafts[0] == want(6, 2));
  const int accepted_all[] = {2};
  p.verified(plan, accepted_all);  // the last draft was never fed
  CHECK(p.draft_computed(1) == n + 7);

  // Right after full acceptance (the target's bonus token follows the two drafts).
  plan = drafting_step(1, known(9), 3);
  REQUIRE(p.draft_len(1, known(9), 3) == 3);
  drafts = p.propose(plan, StepLayout{}, {});
  CHECK(drafts[0] == want(9, 3));

  // Preempted: the cache content is stale; everything is computed again.
  const SeqId forgotten[] = {1};
  p.forget(forgotten);
  CHECK(p.draft_computed(1) == 0);
  plan = drafting_step(1, known(10), 4);
  REQUIRE(p.draft_len(1, known(10), 4) == 4);
  drafts = p.propose(plan, StepLayout{}, {});
  CHECK(drafts[0] == want(10, 4));

  // A sequence draft_len() never announced gets placeholders (verification rejects them).
  plan = drafting_step(2, known(3), 2);
  drafts = p.propose(plan, StepLayout{}, {});
  REQUIRE(drafts[0].size() == 2);
  CHECK(p.draft_computed(2) == 0);
}
