#pragma once
// Prefix-cache keys. A full block is keyed by a hash chained over every block before it:
//
//   key(block i) = hash(key(block i-1), tokens[i*B .. (i+1)*B))     key(-1) = kRootBlockHash
//
// so equal keys mean equal token prefixes, not just equal blocks. The hash is a fixed
// 64-bit mix (stable across runs and platforms); on a lookup hit the pool also compares the
// parent key and the block's tokens, so a collision can only alias two prefixes whose
// parents collide as well.
#include <cstdint>
#include <span>

namespace tessera {

using BlockHash = uint64_t;

inline constexpr BlockHash kRootBlockHash = 0x9e3779b97f4a7c15ull;

BlockHash hash_block_tokens(BlockHash parent, std::span<const int32_t> tokens);

}  // namespace tessera
