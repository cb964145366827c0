#pragma once
// Shared by the tokenizer golden tests: compares a tokenizer with one ids file of
// tests/golden/ (written by scripts/make_tokenizer_golden.py) and reports the count.
#include <string>

namespace tessera {
class Tokenizer;
namespace test {

void check_golden(const Tokenizer& tok, const std::string& ids_file, const std::string& label);

}  // namespace test
}  // namespace tessera
