// KV capacity arithmetic: blocks from a byte budget, the log line, and fail-fast messages.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "engine/kv_sizing.h"

using namespace tessera;

namespace {

// SmolLM2-135M shape with f32 KV: 30 x 2 x 3 x 64 x 4 = 46080 bytes per token.
KvSizingInput smollm(int64_t budget, int requested = 0) {
  KvSizingInput in;
  in.budget_bytes = budget;
  in.num_layers = 30;
  in.num_kv_heads = 3;
  in.head_dim = 64;
  in.elem_bytes = 4;
  in.block_size = 16;
  in.requested_max_model_len = requested;
  in.model_context_len = 8192;
  return in;
}

}  // namespace

TEST_CASE("KV blocks follow from the budget, minus the reserved block", "[engine]") {
  const KvSizing k = size_kv_cache(smollm(256ll << 20, 2048));
  CHECK(k.bytes_per_token == 46080);
  // floor(268435456 / (46080 * 16)) = 364 blocks, one reserved.
  CHECK(k.num_blocks == 364);
  CHECK(k.capacity_tokens == 363 * 16);
  CHECK(k.max_model_len == 2048);
  CHECK_FALSE(k.capped);
  CHECK(k.summary.find("363 blocks x 16 tokens = 5808 tokens") != std::string::npos);
  CHECK(k.summary.find("46080 bytes/token = 30 layers x 2 x 3 kv_heads x 64 head_dim x 4 bytes") !=
        std::string::npos);
  CHECK(k.summary.find("budget 268435456 bytes") != std::string::npos);
}

TEST_CASE("an unset max_model_len is capped to what fits", "[engine]") {
  const KvSizing k = size_kv_cache(smollm(256ll << 20));
  CHECK(k.capped);
  CHECK(k.max_model_len == 5808);
  KvSizingInput in = smollm(1ll << 30);
  const KvSizing big = size_kv_cache(in);
  CHECK_FALSE(big.capped);
  CHECK(big.max_model_len == 8192);
}

TEST_CASE("a user-set max_model_len that cannot fit fails fast with the arithmetic", "[engine]") {
  try {
    size_kv_cache(smollm(256ll << 20, 8192));
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kResourceExhausted);
    const std::string m = e.what();
    CHECK(m.find("5808 tokens") != std::string::npos);
    CHECK(m.find("max_model_len=8192") != std::string::npos);
    CHECK(m.find("46080 bytes/token") != std::string::npos);
    // 8192 / 16 = 512 blocks + block 0, of 737280 bytes each.
    CHECK(m.find(std::to_string(513ll * 737280)) != std::string::npos);
  }
  CHECK_THROWS_AS(size_kv_cache(smollm(1000)), Error);             // not one block
  CHECK_THROWS_AS(size_kv_cache(smollm(1ll << 30, 9000)), Error);  // beyond the context
}

TEST_CASE("the model's own bytes per token wins over the formula", "[engine]") {
  KvSizingInput in = smollm(64ll << 20, 1024);
  in.bytes_per_token = 23040;  // f16 KV
  const KvSizing k = size_kv_cache(in);
  CHECK(k.bytes_per_token == 23040);
  CHECK(k.num_blocks == static_cast<int>((64ll << 20) / (23040 * 16)));
}
