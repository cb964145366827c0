// The sampling contract (common/sampling_rng.h): draws are a fixed function of (choice seed,
// output index), the same for the host sampler and the CUDA sampler's host-side draw. The
// constants below come from an independent Python transcription of SplitMix64; changing
// them changes every seeded output, so it must be deliberate.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "common/sampling_rng.h"
#include "engine/sampler.h"

using namespace tessera;

TEST_CASE("sampling draws are fixed for (seed, step)", "[sampler][rng]") {
  CHECK(sampling_bits(0, 0) == 0xa706dd2f4d197e6full);
  CHECK(sampling_bits(42, 0) == 0x57e1faba65107204ull);
  CHECK(sampling_bits(42, 1) == 0xf34fe9248c9342e5ull);
  CHECK(sampling_bits(42, 7) == 0x16062d6c1339e500ull);
  CHECK(sampling_bits(~0ull, 123456789) == 0xf101957ca4197c3full);
  // 24 bits, exactly representable: the host's double and the device's float are equal.
  CHECK(sampling_uniform(42, 0) == 5759482.0f / 16777216.0f);
  CHECK(sampling_uniform(42, 1) == 15945705.0f / 16777216.0f);
  CHECK(sample_uniform(42, 7) == static_cast<double>(1443373.0f / 16777216.0f));
  static_assert(sampling_uniform(0, 0) == 10946269.0f / 16777216.0f, "usable at compile time");
}

TEST_CASE("the host sampler draws token floor(u * V) from a uniform row", "[sampler][rng]") {
  // Four equal logits: the inverse CDF over ids in order picks floor(4u) exactly.
  const std::vector<float> row(4, 0.5f);
  SamplingParams p;
  p.temperature = 1.0f;
  for (uint64_t seed : {1ull, 42ull, 977ull}) {
    for (int step = 0; step < 16; ++step) {
      const std::vector<int32_t> output(static_cast<size_t>(step), 0);
      const auto r = sample_token(row, p, {{}, output}, seed);
      const auto want = static_cast<int32_t>(std::floor(4.0 * sampling_uniform(seed, step)));
      INFO("seed " << seed << " step " << step);
      CHECK(r.token == want);
    }
  }
}

TEST_CASE("choice seeds give independent streams", "[sampler][rng]") {
  // Choice i of a request samples with seed + i: nearby seeds must not repeat each other.
  int equal = 0;
  for (uint64_t step = 0; step < 1000; ++step)
    equal += sampling_uniform(100, step) == sampling_uniform(101, step + 1);
  CHECK(equal < 3);
  double mean = 0.0;
  for (uint64_t step = 0; step < 100000; ++step) mean += sampling_uniform(7, step);
  CHECK(std::abs(mean / 100000 - 0.5) < 0.01);
}
