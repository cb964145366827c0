// Stop strings across streamed deltas: held-back text, never emitting the stop.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/stop_matcher.h"

using namespace tessera;

namespace {

// Pushes all deltas; returns the concatenated emitted text (plus flush when not stopped).
std::string run(StopMatcher& m, const std::vector<std::string>& deltas) {
  std::string out;
  for (const auto& d : deltas) {
    auto r = m.push(d);
    out += r.emit;
    if (r.stopped) return out;
  }
  return out + m.flush();
}

}  // namespace

TEST_CASE("no stop strings: text passes through immediately", "[stop]") {
  StopMatcher m({});
  auto r = m.push("hello");
  CHECK(r.emit == "hello");
  CHECK_FALSE(r.stopped);
}

TEST_CASE("a stop string split across deltas is never emitted", "[stop]") {
  StopMatcher m({"\n\n"});
  auto r1 = m.push("Hi\n");
  CHECK(r1.emit == "Hi");
  CHECK(m.held() == "\n");
  auto r2 = m.push("\nThere");
  CHECK(r2.stopped);
  CHECK(r2.emit.empty());
  CHECK(r2.matched == "\n\n");
  CHECK(m.push("more").emit.empty());
}

TEST_CASE("held text is released when it can no longer match", "[stop]") {
  StopMatcher m({"END"});
  CHECK(m.push("the E").emit == "the ");
  CHECK(m.push("N").emit.empty());
  auto r = m.push("D!");
  CHECK(r.stopped);
  StopMatcher m2({"END"});
  CHECK(m2.push("the EN").emit == "the ");
  CHECK(m2.push("x").emit == "ENx");
  CHECK(m2.flush().empty());
}

TEST_CASE("stop across three deltas with text before it", "[stop]") {
  StopMatcher m({"stop here"});
  CHECK(run(m, {"abc st", "op he", "re tail"}) == "abc ");
  CHECK(m.stopped());
}

TEST_CASE("earliest of several stop strings wins", "[stop]") {
  StopMatcher m({"world", "lo w"});
  auto r = m.push("hello world");
  CHECK(r.stopped);
  CHECK(r.emit == "hel");
  CHECK(r.matched == "lo w");
}

TEST_CASE("flush releases held text when generation ends otherwise", "[stop]") {
  StopMatcher m({"###"});
  CHECK(m.push("a ##").emit == "a ");
  CHECK(m.flush() == "##");
}

TEST_CASE("multi-byte stop strings hold back whole characters", "[stop]") {
  StopMatcher m({"\xC3\xA9t\xC3\xA9"});  // "été"
  CHECK(m.push("un \xC3\xA9").emit == "un ");
  CHECK(m.push("t").emit.empty());
  CHECK(m.push("\xC3\xA9 chaud").stopped);
}

TEST_CASE("a repeated prefix keeps the overlapping suffix", "[stop]") {
  StopMatcher m({"aab"});
  CHECK(m.push("xaa").emit == "x");
  CHECK(m.push("a").emit == "a");  // "aaa": keep "aa"
  CHECK(m.push("b").stopped);
}
