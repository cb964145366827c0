// The dummy loader's quantized projections (?dtype=fp8|int8|int4) run through LlamaModel on
// the CPU backend: the schemes arrive as kernels/weight_scheme.h describes them and the
// forward pass gives finite logits.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/llama_model.h"
#include "model/loader.h"

using namespace tessera;

TEST_CASE("dummy models with fp8 / int8 / int4 projections run forward", "[quant][dummy]") {
  const std::string config = std::string(TESSERA_SOURCE_DIR) + "/configs/models/smollm2-135m.json";
  auto ops = make_cpu_ops(2);
  for (const char* dtype : {"fp8", "int8", "int4"}) {
    INFO(dtype);
    const LoadedModel m = load_model("dummy:" + config + "?dtype=" + dtype + "&group=64");
    const HostTensor& q = m.weights.get("blk.0.attn_q.weight");
    CHECK(std::string(quant_kind_name(q.scheme.kind)) == dtype);
    CHECK(q.scales != nullptr);
    CHECK_FALSE(m.weights.get("token_embd.weight").scheme.quantized());
    LlamaModel model(m.config, m.weights, *ops);
    model.init_kv_cache(4, 16);
    StepLayout l;
    l.tokens = {1, 2, 3};
    l.positions = {0, 1, 2};
    l.slot_mapping = {16, 17, 18};
    l.query_start = {0, 3};
    l.context_len = {3};
    l.block_table_start = {0, 1};
    l.block_tables = {1};
    l.logit_rows = {2};
    std::vector<float> logits;
    model.forward(l, logits);
    REQUIRE(logits.size() == static_cast<size_t>(m.config.vocab_size));
    bool finite = true;
    for (float v : logits) finite = finite && std::isfinite(v);
    CHECK(finite);
  }
  CHECK_THROWS(load_model("dummy:" + config + "?dtype=int4&group=48"));
}
