#include "engine/tp_frame.h"

#include <cstring>

#include "common/error.h"

namespace tessera {
namespace {

struct Writer {
  std::string out;
  void u32(uint32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void ints(const std::vector<int32_t>& v) {
    u32(static_cast<uint32_t>(v.size()));
    out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(int32_t));
  }
};

struct Reader {
  const std::string& in;
  size_t pos = 0;
  [[noreturn]] void bad() const {
    throw Error(ErrorKind::kInternal, "tensor-parallel frame is truncated or corrupt");
  }
  uint32_t u32() {
    uint32_t v;
    if (in.size() - pos < sizeof v) bad();
    std::memcpy(&v, in.data() + pos, sizeof v);
    pos += sizeof v;
    return v;
  }
  std::vector<int32_t> ints() {
    const uint32_t n = u32();
    if ((in.size() - pos) / sizeof(int32_t) < n) bad();
    std::vector<int32_t> v(n);
    // An empty vector's data() may be null, which memcpy must not get even for 0 bytes.
    if (n > 0) std::memcpy(v.data(), in.data() + pos, n * sizeof(int32_t));
    pos += n * sizeof(int32_t);
    return v;
  }
};

}  // namespace

std::string encode_frame(const TpStepFrame& f) {
  Writer w;
  w.u32(static_cast<uint32_t>(f.kind));
  std::vector<int32_t> copies;
  for (const auto& [s, d] : f.copies) copies.insert(copies.end(), {s, d});
  w.ints(copies);
  const StepLayout& l = f.layout;
  for (const auto* v : {&l.tokens, &l.positions, &l.slot_mapping, &l.query_start, &l.context_len,
                        &l.block_table_start, &l.block_tables, &l.logit_rows})
    w.ints(*v);
  w.u32(static_cast<uint32_t>(l.block_size));
  return std::move(w.out);
}

TpStepFrame decode_frame(const std::string& bytes) {
  Reader r{bytes};
  TpStepFrame f;
  const uint32_t kind = r.u32();
  if (kind != 1 && kind != 2) r.bad();
  f.kind = static_cast<TpStepFrame::Kind>(kind);
  const std::vector<int32_t> copies = r.ints();
  if (copies.size() % 2 != 0) r.bad();
  for (size_t i = 0; i < copies.size(); i += 2) f.copies.emplace_back(copies[i], copies[i + 1]);
  StepLayout& l = f.layout;
  for (auto* v : {&l.tokens, &l.positions, &l.slot_mapping, &l.query_start, &l.context_len,
                  &l.block_table_start, &l.block_tables, &l.logit_rows})
    *v = r.ints();
  l.block_size = static_cast<int>(r.u32());
  if (r.pos != bytes.size()) r.bad();
  // The shapes the ops rely on, so a corrupt frame fails here and not inside a kernel.
  const size_t t = l.tokens.size(), s = l.context_len.size();
  if (l.positions.size() != t || l.slot_mapping.size() != t ||
      (s > 0 && (l.query_start.size() != s + 1 || l.block_table_start.size() != s + 1)) ||
      (s > 0 && (l.query_start.back() != static_cast<int32_t>(t) ||
                 l.block_table_start.back() != static_cast<int32_t>(l.block_tables.size()))))
    r.bad();
  for (int32_t row : l.logit_rows)
    if (row < 0 || static_cast<size_t>(row) >= t) r.bad();
  return f;
}

}  // namespace tessera
