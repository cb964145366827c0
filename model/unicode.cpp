#include "model/unicode.h"

#include <unordered_map>

namespace tessera {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t decode_utf8(std::string_view s, size_t pos, uint32_t* cp, size_t* bad) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t need = 0;
  uint32_t value = 0;
  // Bounds of the second byte per Unicode Table 3-7 (rejects overlongs and surrogates).
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    value = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    value = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    value = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t k = 1; k <= need; ++k) {
    const size_t i = pos + k;
    const uint8_t lower = (k == 1) ? lo : 0x80;
    const uint8_t upper = (k == 1) ? hi : 0xBF;
    if (i >= s.size() || byte(i) < lower || byte(i) > upper) {
      *bad = k;  // the lead plus the valid continuation bytes seen so far
      return 0;
    }
    value = (value << 6) | (byte(i) & 0x3F);
  }
  *cp = value;
  return need + 1;
}

bool is_valid_utf8(std::string_view s) {
  size_t pos = 0;
  uint32_t cp = 0;
  size_t bad = 0;
  while (pos < s.size()) {
    const size_t n = decode_utf8(s, pos, &cp, &bad);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  uint32_t cp = 0;
  size_t bad = 0;
  while (pos < s.size()) {
    const size_t n = decode_utf8(s, pos, &cp, &bad);
    if (n == 0) {
      append_utf8(out, kReplacementChar);
      pos += bad;
    } else {
      out.append(s.substr(pos, n));
      pos += n;
    }
  }
  return out;
}

size_t utf8_complete_prefix(std::string_view s) {
  // Walks from the front so the grouping of ill-formed bytes is identical to sanitize_utf8:
  // streamed and whole decodes then agree byte for byte.
  size_t pos = 0;
  uint32_t cp = 0;
  size_t bad = 0;
  while (pos < s.size()) {
    const size_t n = decode_utf8(s, pos, &cp, &bad);
    if (n != 0) {
      pos += n;
      continue;
    }
    // Ill-formed only because the input ended (a valid lead byte whose sequence runs to the
    // end): more bytes may still complete it.
    const auto lead = static_cast<uint8_t>(s[pos]);
    if (lead >= 0xC2 && lead <= 0xF4 && pos + bad == s.size()) return pos;
    pos += bad;
  }
  return s.size();
}

namespace {

std::array<uint32_t, 256> make_byte_table() {
  std::array<uint32_t, 256> table{};
  std::array<bool, 256> printable{};
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) table[b] = printable[b] ? static_cast<uint32_t>(b) : next++;
  return table;
}

}  // namespace

const std::array<uint32_t, 256>& byte_to_unicode() {
  static const std::array<uint32_t, 256> table = make_byte_table();
  return table;
}

int unicode_to_byte(uint32_t cp) {
  static const std::unordered_map<uint32_t, int> inverse = [] {
    std::unordered_map<uint32_t, int> m;
    const auto& table = byte_to_unicode();
    for (int b = 0; b < 256; ++b) m[table[b]] = b;
    return m;
  }();
  const auto it = inverse.find(cp);
  return it == inverse.end() ? -1 : it->second;
}

bool byte_level_decode(std::string_view token, std::string* out) {
  out->clear();
  size_t pos = 0;
  uint32_t cp = 0;
  size_t bad = 0;
  while (pos < token.size()) {
    const size_t n = decode_utf8(token, pos, &cp, &bad);
    if (n == 0) return false;
    const int b = unicode_to_byte(cp);
    if (b < 0) return false;
    out->push_back(static_cast<char>(b));
    pos += n;
  }
  return true;
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  const auto& table = byte_to_unicode();
  for (const char c : bytes) append_utf8(out, table[static_cast<uint8_t>(c)]);
  return out;
}

}  // namespace tessera
