// GPU check of the one sampling contract with everything the host sampler does: penalties
// (repetition over prompt + output, presence / frequency over output), min_p, top-k/top-p,
// greedy, and raw logprobs. The reference is the engine's host sampler (engine/sampler.cpp:
// sample_token, raw_logprobs); the device specs come from the engine's own mapping
// (device_sample_spec), so that mapping is checked too.
//   - greedy rows with penalties pick exactly the host token; sampled rows agree on >= 99%
//     (a draw within float rounding of a boundary may differ);
//   - logprobs: the same alternatives in the same order, values within 1e-4;
//   - histories with repeats and out-of-vocabulary ids, penalized rows between plain ones,
//     a draft row's extra output tokens, and a pending token still on the device;
//   - reruns are identical (the count scratch is left zeroed); sample_async + collect_sampled
//     deliver what sample_on_device does.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "engine/sampler.h"
#include "kernels/cuda/cuda_ops.h"
#include "tests/gpu/check_common.h"

using namespace tessera;
using namespace tessera::gpu_check;

namespace {

struct Case {
  SamplingParams params;
  std::vector<int32_t> prompt, output;
  uint64_t seed = 0;
};

std::vector<int32_t> random_tokens(Rng& rng, int n, int vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  // A small pool, so tokens repeat; now and then an id outside the vocabulary (ignored).
  const int pool = std::max(4, n / 3);
  for (auto& x : t)
    x = rng.uniform_int(0, 50) == 0 ? vocab + 3 : rng.uniform_int(0, pool) * 7 % vocab;
  return t;
}

SamplingParams params_for(int r) {
  SamplingParams p;
  p.temperature = r % 3 == 0 ? 0.0f : 0.8f;
  p.repetition_penalty = r % 4 == 1 ? 1.0f : 1.3f;
  p.presence_penalty = r % 5 == 2 ? 0.0f : 0.4f;
  p.frequency_penalty = r % 2 == 0 ? 0.25f : 0.0f;
  p.min_p = r % 6 == 4 ? 0.08f : 0.0f;
  p.top_k = r % 7 == 3 ? 30 : -1;
  p.top_p = r % 5 == 1 ? 0.9f : 1.0f;
  p.logprobs = r % 3 == 1 ? 5 : (r % 9 == 2 ? 20 : (r % 11 == 0 ? 0 : -1));
  if (r % 8 == 7) p.repetition_penalty = 1.0f, p.presence_penalty = 0.0f;  // plain rows
  if (r % 8 == 7) p.frequency_penalty = 0.0f;
  return p;
}

bool same_logprobs(const TokenLogprob& a, const TokenLogprob& b, std::string& why) {
  if (a.token != b.token || std::fabs(a.logprob - b.logprob) > 1e-4f) {
    why = "chosen " + std::to_string(a.logprob) + " vs " + std::to_string(b.logprob);
    return false;
  }
  if (a.top.size() != b.top.size()) {
    why = "top sizes " + std::to_string(a.top.size()) + " vs " + std::to_string(b.top.size());
    return false;
  }
  for (size_t i = 0; i < a.top.size(); ++i) {
    if (a.top[i].first != b.top[i].first || std::fabs(a.top[i].second - b.top[i].second) > 1e-4f) {
      why = "top[" + std::to_string(i) + "] differs";
      return false;
    }
  }
  return true;
}

void check_contract(Ops& ops, Rng& rng, Report& rep, int vocab, int rows) {
  std::vector<float> l(size_t(rows) * vocab);
  for (auto& x : l) x = rng.normal(2.5f);
  // Ties at the top for some rows (logprob alternatives ordered by id).
  for (int r = 0; r < rows; r += 10)
    for (int i = 0; i < 8; ++i) l[size_t(r) * vocab + size_t(i * 13 % vocab)] = 9.0f;
  DevBuf d(ops, l.size() * 4);
  d.upload(l);
  std::vector<Case> cases(static_cast<size_t>(rows));
  std::vector<SampleSpec> specs(static_cast<size_t>(rows));
  std::vector<std::vector<int32_t>> extra(static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    Case& c = cases[size_t(r)];
    c.params = params_for(r);
    c.prompt = random_tokens(rng, rng.uniform_int(1, 300), vocab);
    c.output = random_tokens(rng, rng.uniform_int(0, 200), vocab);
    c.seed = 5000 + uint64_t(r);
    specs[size_t(r)] = device_sample_spec({&c.params, c.prompt, c.output, c.seed});
    if (r % 4 == 3 && specs[size_t(r)].penalized()) {  // a draft row: two drafts before it
      extra[size_t(r)] = {int32_t(r % vocab), int32_t((r * 31) % vocab)};
      specs[size_t(r)].output_extra = extra[size_t(r)];
      specs[size_t(r)].offset += extra[size_t(r)].size();  // the draw index moves past them
    }
  }
  std::vector<int32_t> got(size_t(rows), -1);
  std::vector<SampledLogprobs> lps(static_cast<size_t>(rows));
  ops.sample_on_device(static_cast<const float*>(d.get()), rows, vocab, specs, got, lps);

  int same = 0, greedy = 0, greedy_same = 0, lp_rows = 0, lp_same = 0;
  std::string first_bad;
  for (int r = 0; r < rows; ++r) {
    const Case& c = cases[size_t(r)];
    std::vector<int32_t> output = c.output;
    output.insert(output.end(), extra[size_t(r)].begin(), extra[size_t(r)].end());
    const std::span<const float> row(&l[size_t(r) * vocab], size_t(vocab));
    const SampleResult want = sample_token(row, c.params, {c.prompt, output}, c.seed);
    same += got[size_t(r)] == want.token;
    if (c.params.temperature == 0.0f) ++greedy, greedy_same += got[size_t(r)] == want.token;
    if (c.params.logprobs >= 0) {
      ++lp_rows;
      // Logprobs of the token the device chose (the reference's own token may differ).
      const TokenLogprob ref = raw_logprobs(row, got[size_t(r)], c.params.logprobs);
      std::string why;
      if (same_logprobs(token_logprob(got[size_t(r)], lps[size_t(r)]), ref, why)) {
        ++lp_same;
      } else if (first_bad.empty()) {
        first_bad = "row " + std::to_string(r) + ": " + why;
      }
    }
  }
  const std::string v = "vocab=" + std::to_string(vocab);
  rep.check(greedy_same == greedy, "contract/greedy_penalized_exact",
            v + " " + std::to_string(greedy_same) + "/" + std::to_string(greedy));
  rep.check(same >= rows * 99 / 100, "contract/same_tokens",
            v + " " + std::to_string(same) + "/" + std::to_string(rows));
  rep.check(lp_same == lp_rows, "contract/logprobs",
            v + " " + std::to_string(lp_same) + "/" + std::to_string(lp_rows) + " " + first_bad);

  // Reruns: the count scratch must be back to zero, or the penalties would drift.
  bool replay = true;
  for (int i = 0; i < 3; ++i) {
    std::vector<int32_t> again(static_cast<size_t>(rows));
    std::vector<SampledLogprobs> lp2(static_cast<size_t>(rows));
    ops.sample_on_device(static_cast<const float*>(d.get()), rows, vocab, specs, again, lp2);
    replay = replay && again == got;
  }
  rep.check(replay, "contract/replay", v);

  // The pipelined path: the same through sample_async + collect_sampled.
  std::vector<int32_t> async_tokens(static_cast<size_t>(rows));
  std::vector<SampledLogprobs> async_lps(static_cast<size_t>(rows));
  ops.sample_async(static_cast<const float*>(d.get()), rows, vocab, specs);
  ops.collect_sampled(async_tokens, async_lps);
  bool lp_equal = true;
  for (int r = 0; r < rows; ++r)
    if (specs[size_t(r)].logprobs >= 0)
      lp_equal = lp_equal && async_lps[size_t(r)].chosen == lps[size_t(r)].chosen &&
                 async_lps[size_t(r)].num_top == lps[size_t(r)].num_top;
  rep.check(async_tokens == got && lp_equal, "contract/async_equals_sync", v);
}

// A pending token (sampled by the previous sampling, still on the device) counts as output.
void check_pending(Ops& ops, Rng& rng, Report& rep, int vocab) {
  const int rows = 16;
  std::vector<float> first(size_t(rows) * vocab);
  for (auto& x : first) x = rng.normal(1.0f);
  // Row r's first token is forced: 100 + r.
  for (int r = 0; r < rows; ++r) first[size_t(r) * vocab + size_t(100 + r)] = 50.0f;
  DevBuf d1(ops, first.size() * 4);
  d1.upload(first);
  std::vector<SampleSpec> greedy(static_cast<size_t>(rows));
  for (auto& s : greedy) s.temperature = 0.0f;
  std::vector<int32_t> t1(static_cast<size_t>(rows));
  ops.sample_async(static_cast<const float*>(d1.get()), rows, vocab, greedy);

  // Second sampling: each row's best logit is its pending token, barely ahead of token 7;
  // a frequency penalty on the pending token must flip the choice to 7.
  std::vector<float> second(size_t(rows) * vocab);
  for (auto& x : second) x = rng.normal(0.5f);
  SamplingParams p;
  p.temperature = 0.0f;
  p.frequency_penalty = 1.0f;
  const std::vector<int32_t> prompt = {1, 2}, output = {3};
  std::vector<SampleSpec> specs(static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    second[size_t(r) * vocab + size_t(100 + r)] = 10.0f;
    second[size_t(r) * vocab + 7] = 9.5f;
    specs[size_t(r)] = device_sample_spec({&p, prompt, output, 1});
    specs[size_t(r)].pending_row = r;
  }
  DevBuf d2(ops, second.size() * 4);
  d2.upload(second);
  std::vector<int32_t> t2(static_cast<size_t>(rows));
  ops.sample_async(static_cast<const float*>(d2.get()), rows, vocab, specs);
  ops.collect_sampled(t1, {});
  ops.collect_sampled(t2, {});
  int ok = 0;
  for (int r = 0; r < rows; ++r) ok += t1[size_t(r)] == 100 + r && t2[size_t(r)] == 7;
  rep.check(ok == rows, "contract/pending_token_penalized",
            std::to_string(ok) + "/" + std::to_string(rows));
}

// Time per sampling call (no verdict): what each feature costs on one row and on 64.
void time_features(Ops& ops, Rng& rng, int vocab, int rows) {
  std::vector<float> l(size_t(rows) * vocab);
  for (auto& x : l) x = rng.normal(2.5f);
  DevBuf d(ops, l.size() * 4);
  d.upload(l);
  const std::vector<int32_t> prompt = random_tokens(rng, 128, vocab);
  const std::vector<int32_t> output = random_tokens(rng, 128, vocab);
  struct Variant {
    const char* name;
    void (*set)(SamplingParams&);
  };
  const Variant variants[] = {
      {"greedy", [](SamplingParams& p) { p.temperature = 0.0f; }},
      {"T=0.8", [](SamplingParams& p) { p.temperature = 0.8f; }},
      {"T=0.8 top_k=50", [](SamplingParams& p) { p.temperature = 0.8f, p.top_k = 50; }},
      {"T=0.8 top_p=0.9", [](SamplingParams& p) { p.temperature = 0.8f, p.top_p = 0.9f; }},
      {"T=0.8 min_p", [](SamplingParams& p) { p.temperature = 0.8f, p.min_p = 0.05f; }},
      {"T=0.8 penalties", [](SamplingParams& p) {
         p.temperature = 0.8f, p.presence_penalty = 0.3f, p.repetition_penalty = 1.2f;
       }},
      {"greedy logprobs=5", [](SamplingParams& p) { p.temperature = 0.0f, p.logprobs = 5; }},
      {"greedy logprobs=0", [](SamplingParams& p) { p.temperature = 0.0f, p.logprobs = 0; }},
  };
  for (const Variant& v : variants) {
    SamplingParams p;
    v.set(p);
    std::vector<SampleSpec> specs(static_cast<size_t>(rows),
                                  device_sample_spec({&p, prompt, output, 3}));
    std::vector<int32_t> got(static_cast<size_t>(rows));
    std::vector<SampledLogprobs> lps(static_cast<size_t>(rows));
    ops.sample_on_device(static_cast<const float*>(d.get()), rows, vocab, specs, got, lps);
    const int iters = 20;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i)
      ops.sample_on_device(static_cast<const float*>(d.get()), rows, vocab, specs, got, lps);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
        iters;
    std::printf("TIME sample vocab=%d rows=%d %-20s %.3f ms per call\n", vocab, rows, v.name, ms);
  }
}

}  // namespace

int main() {
  Report rep;
  try {
    auto ops = make_cuda_ops(0);
    Rng rng(4242);
    check_contract(*ops, rng, rep, 1000, 256);
    check_contract(*ops, rng, rep, 49152, 96);
    check_contract(*ops, rng, rep, 128256, 24);
    check_pending(*ops, rng, rep, 49152);
    if (std::getenv("TESSERA_SAMPLING_TIMES")) {
      time_features(*ops, rng, 128256, 1);
      time_features(*ops, rng, 128256, 64);
      time_features(*ops, rng, 49152, 1);
    }
    bool threw = false;
    try {
      DevBuf d(*ops, 16 * 4);
      std::vector<SampleSpec> specs(1);
      specs[0].logprobs = 3;
      std::vector<int32_t> out(1);
      ops->sample_on_device(static_cast<const float*>(d.get()), 1, 16, specs, out, {});
    } catch (const Error& e) {
      threw = e.kind() == ErrorKind::kInvalidArgument;
    }
    rep.check(threw, "contract/logprobs_need_an_output", "");
  } catch (const std::exception& e) {
    rep.check(false, "exception", e.what());
  }
  return rep.finish("sampling_contract_check");
}
