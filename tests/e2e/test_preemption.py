"""Under KV pressure the scheduler preempts (recompute); a preempted request must return
exactly what it returns unpreempted."""
from concurrent.futures import ThreadPoolExecutor

from e2e_util import post

PROMPTS = [f"Item {i}: a short note about apples and pears" for i in range(8)]


def test_preempted_requests_match_unpreempted(server, start_server):
    body = lambda p: {"prompt": p, "max_tokens": 24, "temperature": 0, "ignore_eos": True}
    reference = [post(server, "/v1/completions", body(p)).json()["choices"][0]["text"]
                 for p in PROMPTS]
    # 4 MiB of fp32 KV for this model is ~90 tokens: 8 sequences of ~35 tokens cannot all fit.
    s = start_server("--kv-cache-mb", "4", "--max-num-seqs", "8", "--grpc-port", "0",
                     "--no-prefix-caching")
    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        responses = list(pool.map(lambda p: post(s, "/v1/completions", body(p)), PROMPTS))
    assert [r.status_code for r in responses] == [200] * len(PROMPTS), \
        [r.text[:200] for r in responses]
    texts = [r.json()["choices"][0]["text"] for r in responses]
    assert (s.metric("tessera:num_preemptions_total") or 0) > 0, "no preemption happened"
    assert texts == reference
    assert s.wait_metric("tessera:kv_cache_used_blocks", 0) == 0
