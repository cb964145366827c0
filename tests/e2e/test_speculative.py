"""Speculative decoding is exact: with any proposer, outputs equal the server's without
speculation, token for token (greedy and seeded sampling), alone, 64 at a time and under
forced preemption; KV returns to empty; the metrics and usage report the drafts."""
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from e2e_util import MODEL, post

LICENSE = Path("/usr/share/common-licenses/GPL-3").read_text()
# Input-copying prompts (the n-gram proposer's strength) and open ones, 100 in all.
COPY = [f"Copy this text exactly.\n\n{LICENSE[i * 300:i * 300 + 120]}\n\nCopy:\n"
        f"{LICENSE[i * 300:i * 300 + 20]}" for i in range(50)]
OPEN = [f"Question {i}: what is a good name for a {w}? Answer:" for i, w in
        enumerate(["cat", "boat", "planet", "song", "river"] * 10)]
PROMPTS = COPY + OPEN
# Draft at any batch size and every step, so the tests exercise verification everywhere.
FORCE = ["--num-speculative-tokens", "4", "--speculative-fixed",
         "--speculative-max-step-tokens", "100000", "--grpc-port", "0"]


def body(prompt, **kw):
    return {"prompt": prompt, "max_tokens": 12, "temperature": 0, "ignore_eos": True, **kw}


def run_all(server, prompts, workers, **kw):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        responses = list(pool.map(
            lambda p: post(server, "/v1/completions", body(p, **kw), timeout=900), prompts))
    assert [r.status_code for r in responses] == [200] * len(prompts), \
        [r.text[:200] for r in responses if r.status_code != 200]
    return [r.json() for r in responses]


def texts(results):
    return [r["choices"][0]["text"] for r in results]


@pytest.fixture(scope="module")
def reference(server):
    """Outputs without speculation (the shared default server), 8 requests at a time."""
    return {
        "greedy": texts(run_all(server, PROMPTS, 8)),
        "seeded": texts(run_all(server, PROMPTS[::5], 8, temperature=0.8, top_p=0.9, seed=7)),
    }


@pytest.mark.parametrize("method", ["ngram", "early-exit", "draft"])
def test_speculation_matches_plain_decoding(reference, start_server, method):
    extra = ["--draft-model", str(MODEL)] if method == "draft" else []
    if method == "early-exit":
        extra = ["--speculative-early-exit-layers", "10"]
    s = start_server("--speculative", method, *FORCE, *extra)
    # n-gram: all 100 prompts, 64 at a time; the model proposers (slower on the CPU) a third.
    prompts = PROMPTS if method == "ngram" else PROMPTS[::3]
    results = run_all(s, prompts, 64)
    want = reference["greedy"] if method == "ngram" else reference["greedy"][::3]
    assert texts(results) == want
    drafted = sum(r["usage"].get("speculative", {}).get("draft_tokens", 0) for r in results)
    accepted = sum(r["usage"].get("speculative", {}).get("accepted_tokens", 0) for r in results)
    assert drafted > 0 and 0 <= accepted <= drafted
    assert s.metric("tessera:spec_decode_num_draft_tokens_total") == drafted
    assert s.metric("tessera:spec_decode_num_accepted_tokens_total") == accepted
    assert s.metric("tessera:spec_decode_acceptance_length_count") > 0
    if method == "draft":
        # The draft is the served model itself: greedy drafts must be accepted (almost)
        # always, which only holds if the draft's own KV cache is kept exactly in step.
        assert accepted / drafted > 0.95, (accepted, drafted)
    if method == "ngram":
        copy_results = results[:len(COPY)]  # prompts start with the copying half
        copy_acc = sum(r["usage"].get("speculative", {}).get("accepted_tokens", 0)
                       for r in copy_results)
        assert copy_acc > 0
    # Seeded sampling replays exactly: the target's own draw decides every token.
    seeded = run_all(s, PROMPTS[::5], 8, temperature=0.8, top_p=0.9, seed=7)
    assert texts(seeded) == reference["seeded"]
    assert s.wait_metric("tessera:kv_cache_used_blocks", 0) == 0


def test_speculation_under_preemption(server, start_server):
    # Short repetitive prompts (n-gram drafts find matches) that grow to ~55 tokens each:
    # 4 MiB of fp32 KV holds ~90 tokens, so eight of them force preemption (recompute).
    prompts = [f"Count: {i} {i + 1} {i + 2} {i} {i + 1} {i + 2} {i} {i + 1}" for i in range(8)]
    reference = texts(run_all(server, prompts, 8, max_tokens=40))
    s = start_server("--speculative", "ngram", *FORCE, "--kv-cache-mb", "4", "--max-num-seqs",
                     "8", "--no-prefix-caching")
    results = run_all(s, prompts, 8, max_tokens=40)
    assert (s.metric("tessera:num_preemptions_total") or 0) > 0, "no preemption happened"
    assert (s.metric("tessera:spec_decode_num_draft_tokens_total") or 0) > 0
    assert texts(results) == reference
    assert s.wait_metric("tessera:kv_cache_used_blocks", 0) == 0


def test_draft_model_under_preemption(server, start_server):
    # The draft model's own cache follows the target's block tables; a preempted sequence's
    # blocks are freed, so the draft must compute it again (the served model as its own
    # draft: any stale draft KV shows as rejected drafts).
    prompts = [f"Count: {i} {i + 1} {i + 2} {i} {i + 1} {i + 2} {i} {i + 1}" for i in range(8)]
    reference = texts(run_all(server, prompts, 8, max_tokens=40))
    s = start_server("--speculative", "draft", "--draft-model", str(MODEL), *FORCE,
                     "--kv-cache-mb", "8", "--max-num-seqs", "8", "--no-prefix-caching")
    results = run_all(s, prompts, 8, max_tokens=40)
    assert (s.metric("tessera:num_preemptions_total") or 0) > 0, "no preemption happened"
    assert texts(results) == reference
    drafted = s.metric("tessera:spec_decode_num_draft_tokens_total")
    accepted = s.metric("tessera:spec_decode_num_accepted_tokens_total")
    assert drafted > 0 and accepted / drafted > 0.95, (accepted, drafted)
    assert s.wait_metric("tessera:kv_cache_used_blocks", 0) == 0


def test_speculation_with_stops_logprobs_n_and_cancellation(server, start_server):
    s = start_server("--speculative", "ngram", *FORCE)
    prompt = COPY[3]
    for extra in ({"stop": [" the", "\n"]}, {"logprobs": 2}, {"n": 3, "temperature": 0.7,
                                                              "seed": 3},
                  {"max_tokens": 5}, {"presence_penalty": 0.5, "frequency_penalty": 0.3}):
        a = post(s, "/v1/completions", body(prompt, **extra)).json()
        b = post(server, "/v1/completions", body(prompt, **extra)).json()
        assert [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]], extra
        if "logprobs" in extra:
            la, lb = a["choices"][0]["logprobs"], b["choices"][0]["logprobs"]
            assert la["tokens"] == lb["tokens"]
            assert la["token_logprobs"] == pytest.approx(lb["token_logprobs"], abs=1e-3)
        assert a["usage"]["completion_tokens"] == b["usage"]["completion_tokens"]

    # Streaming: accepted tokens arrive as they are accepted; the deltas add up.
    streamed = ""
    with requests.post(s.url + "/v1/completions", json=body(prompt, stream=True),
                       stream=True, timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                import json
                streamed += json.loads(line[6:])["choices"][0]["text"]
    assert streamed == post(server, "/v1/completions", body(prompt)).json()["choices"][0]["text"]

    # Cancelled streams (the client goes away mid-generation) return their KV.
    def cancel_one(p):
        with requests.post(s.url + "/v1/completions",
                           json=body(p, stream=True, max_tokens=400), stream=True,
                           timeout=120) as r:
            for i, _ in enumerate(r.iter_lines()):
                if i > 6:
                    break

    threads = [threading.Thread(target=cancel_one, args=(p,)) for p in COPY[:6]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.wait_metric("tessera:kv_cache_used_blocks", 0, timeout=30) == 0
