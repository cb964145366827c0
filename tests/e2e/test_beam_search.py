"""Beam search (use_beam_search / best_of / length_penalty / early_stopping) against
transformers' beam search on the same weights (tests/golden/beam_smollm2.json, written by
scripts/make_beam_golden.py), its 400s, and KV blocks returning to 0 (also on cancel)."""
import json
import math
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "beam_smollm2.json"
# fp32 CPU kernels on the Q4_1 weights vs torch on the same weights dequantized.
SCORE_TOL = 2e-3


def golden():
    assert GOLDEN.exists(), f"{GOLDEN} missing: run scripts/make_beam_golden.py"
    return json.loads(GOLDEN.read_text())


def beam_body(case, g, **extra):
    body = {"prompt": case["prompt_ids"], "max_tokens": g["max_new_tokens"],
            "use_beam_search": True, "n": g["num_beams"], "best_of": g["num_beams"],
            "length_penalty": case["length_penalty"], "early_stopping": case["early_stopping"],
            "temperature": 0, "logprobs": 0}
    body.update(extra)
    return body


@pytest.mark.parametrize("index", range(len(golden()["cases"])))
def test_beams_match_transformers(server, index):
    g = golden()
    case = g["cases"][index]
    r = requests.post(server.url + "/v1/completions", json=beam_body(case, g), timeout=120)
    assert r.status_code == 200, r.text
    out = r.json()
    choices = sorted(out["choices"], key=lambda c: c["index"])
    assert len(choices) == len(case["beams"])
    for want, got in zip(case["beams"], choices):
        tokens = got["logprobs"]["tokens"]
        assert len(tokens) == len(want["tokens"]), (want, got)
        ends_with_eos = want["tokens"][-1] in g["eos_token_ids"]
        assert got["finish_reason"] == ("stop" if ends_with_eos else "length")
        assert got["text"] == want["text"]
        # Compared as sums of logprobs (a negative length penalty multiplies the score).
        penalty = len(tokens) ** case["length_penalty"]
        assert got["beam_score"] * penalty == pytest.approx(want["score"] * penalty, abs=SCORE_TOL)
        # The score is the chosen tokens' logprobs over the length penalty, EOS included.
        total = sum(got["logprobs"]["token_logprobs"])
        assert total == pytest.approx(got["beam_score"] * penalty, abs=1e-3)
    scores = [c["beam_score"] for c in choices]
    assert scores == sorted(scores, reverse=True)
    assert out["usage"]["completion_tokens"] == sum(len(b["tokens"]) for b in case["beams"])
    assert server.wait_metric("tessera:kv_cache_used_blocks", 0) == 0


def test_n_below_beam_width_returns_the_best(server):
    g = golden()
    case = g["cases"][2]  # chat prompt whose beams end with EOS at different lengths
    r = requests.post(server.url + "/v1/completions", json=beam_body(case, g, n=2), timeout=120)
    assert r.status_code == 200, r.text
    choices = sorted(r.json()["choices"], key=lambda c: c["index"])
    assert [c["text"] for c in choices] == [b["text"] for b in case["beams"][:2]]


def test_chat_completions_beam_search(server):
    r = requests.post(server.url + "/v1/chat/completions", timeout=120, json={
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 16, "use_beam_search": True, "n": 3, "best_of": 4})
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert len(choices) == 3
    assert all(c["message"]["content"] for c in choices)
    scores = [c["beam_score"] for c in choices]
    assert scores == sorted(scores, reverse=True) and len(set(
        c["message"]["content"] for c in choices)) == 3
    assert server.wait_metric("tessera:kv_cache_used_blocks", 0) == 0


@pytest.mark.parametrize("extra,param", [
    ({"stream": True}, "stream"),
    ({"n": 4, "best_of": 2}, "best_of"),
    ({"best_of": 65}, "best_of"),  # the server runs --max-num-seqs 64
    ({"top_p": 0.5}, "top_p"),
    ({"stop": ["."]}, "stop"),
    ({"logprobs": 3}, "logprobs"),
    ({"early_stopping": "sometimes"}, "early_stopping"),
])
def test_invalid_beam_requests_are_400(server, extra, param):
    body = {"prompt": "Hello", "max_tokens": 4, "use_beam_search": True, "n": 2}
    body.update(extra)
    r = requests.post(server.url + "/v1/completions", json=body, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert param in err["message"] or err.get("param") == param, err


def test_beam_fields_need_use_beam_search(server):
    r = requests.post(server.url + "/v1/completions", timeout=30, json={
        "prompt": "Hello", "max_tokens": 4, "length_penalty": 2.0})
    assert r.status_code == 400, r.text


def test_cancelled_beam_request_frees_kv(server):
    body = json.dumps({"prompt": "Tell me a very long story.", "max_tokens": 400,
                       "ignore_eos": True, "use_beam_search": True, "n": 4}).encode()
    url = urlparse(server.url)
    c = socket.create_connection((url.hostname, url.port))
    c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    deadline = time.time() + 30
    while (server.metric("tessera:num_requests_running") or 0) == 0 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a few steps in: the beams have forked
    assert (server.metric("tessera:kv_cache_used_blocks") or 0) > 0
    c.close()
    assert server.wait_metric("tessera:kv_cache_used_blocks", 0, timeout=10) == 0
    assert server.wait_metric("tessera:num_requests_running", 0) == 0
    # The server still serves beam requests afterwards.
    g = golden()
    r = requests.post(server.url + "/v1/completions", json=beam_body(g["cases"][0], g), timeout=120)
    assert r.status_code == 200 and math.isfinite(r.json()["choices"][0]["beam_score"])
