#include "kvcache/block_hash.h"

namespace tessera {
namespace {

// Finalizer of MurmurHash3 (public domain): full avalanche, so chained keys stay spread.
uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

}  // namespace

BlockHash hash_block_tokens(BlockHash parent, std::span<const int32_t> tokens) {
  uint64_t h = mix64(parent ^ (0x243f6a8885a308d3ull + tokens.size()));
  for (int32_t t : tokens) {
    h = mix64(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(t)) + 0x13198a2e03707344ull));
  }
  return h;
}

}  // namespace tessera
