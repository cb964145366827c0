#pragma once
// UTF-8 helpers shared by the tokenizers and the streaming detokenizer, plus the GPT-2
// byte <-> unicode table that byte-level BPE vocabularies are written in.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tessera {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

void append_utf8(std::string& out, uint32_t cp);

// Decodes one well-formed UTF-8 character at s[pos]. On success returns its length (1..4)
// and sets *cp; on an ill-formed sequence returns 0 and sets *bad to the length of the
// maximal subpart (the bytes that one U+FFFD replaces, as Python and Rust count them).
size_t decode_utf8(std::string_view s, size_t pos, uint32_t* cp, size_t* bad);

bool is_valid_utf8(std::string_view s);

// Replaces every maximal ill-formed subpart with U+FFFD, exactly like Python's
// bytes.decode("utf-8", "replace") and Rust's String::from_utf8_lossy.
std::string sanitize_utf8(std::string_view s);

// Length of the longest prefix of s that does not end inside a character that could still
// be completed by more bytes. Ill-formed bytes count as complete (they will become U+FFFD).
size_t utf8_complete_prefix(std::string_view s);

// GPT-2's reversible map from the 256 byte values to printable code points.
const std::array<uint32_t, 256>& byte_to_unicode();
// Inverse of byte_to_unicode(); -1 for code points outside the table.
int unicode_to_byte(uint32_t cp);

// Decodes a byte-level BPE token string (e.g. "Ġhello") into the raw bytes it stands for.
// Returns false (and leaves *out unspecified) if some character is not in the table.
bool byte_level_decode(std::string_view token, std::string* out);
std::string byte_level_encode(std::string_view bytes);

}  // namespace tessera
