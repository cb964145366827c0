// Chat templates against jinja2 renderings of the models' own templates
// (tests/golden/chat_template_cases.json, from scripts/make_tokenizer_golden.py).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/chat_template.h"

namespace {

nlohmann::json load_cases() {
  std::ifstream in(std::string(TESSERA_SOURCE_DIR) + "/tests/golden/chat_template_cases.json");
  REQUIRE(in.good());
  std::stringstream buf;
  buf << in.rdbuf();
  return nlohmann::json::parse(buf.str());
}

}  // namespace

TEST_CASE("chat templates render exactly what jinja2 renders", "[chat_template]") {
  const auto families = load_cases();
  REQUIRE(families.size() >= 5);
  size_t checked = 0;
  for (const auto& fam : families) {
    const auto name = fam.at("name").get<std::string>();
    const auto tmpl = tessera::ChatTemplate::from_source(fam.at("template").get<std::string>(),
                                                         fam.at("bos_token").get<std::string>());
    INFO("family " << name);
    CHECK(tmpl.recognized());
    for (const auto& c : fam.at("cases")) {
      std::vector<tessera::ChatMessage> msgs;
      for (const auto& m : c.at("messages")) {
        msgs.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
      }
      const bool gen = c.at("add_generation_prompt").get<bool>();
      INFO("messages " << c.at("messages").dump() << " add_generation_prompt " << gen);
      CHECK(tmpl.apply(msgs, gen) == c.at("rendered").get<std::string>());
      ++checked;
    }
  }
  WARN(checked << " chat template renderings compared with jinja2");
}

TEST_CASE("chat template family and default system prompt are detected", "[chat_template]") {
  const auto families = load_cases();
  for (const auto& fam : families) {
    const auto name = fam.at("name").get<std::string>();
    const auto t = tessera::ChatTemplate::from_source(fam.at("template").get<std::string>(), "");
    if (name == "llama3") {
      CHECK(t.format() == tessera::ChatFormat::kLlama3);
    } else if (name == "llama3.1") {
      CHECK(t.format() == tessera::ChatFormat::kLlama31);
    } else {
      CHECK(t.format() == tessera::ChatFormat::kChatML);
    }
    if (name == "smollm2_gguf") {
      CHECK(t.default_system() ==
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
    }
    if (name == "qwen2") CHECK(t.default_system() == "You are a helpful assistant.");
    if (name == "chatml") CHECK(t.default_system().empty());
  }
  const auto unknown = tessera::ChatTemplate::from_source("{{ messages }}", "");
  CHECK_FALSE(unknown.recognized());
  CHECK(unknown.format() == tessera::ChatFormat::kChatML);
  const std::vector<tessera::ChatMessage> msgs = {{"user", "hi"}};
  CHECK(unknown.apply(msgs, true) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}
