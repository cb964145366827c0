"""A streaming client that disconnects cancels its request; its KV blocks return."""
import json
import time

import requests


def kv_used(server):
    return server.metric("tessera:kv_cache_used_blocks")


def test_disconnect_frees_kv(server):
    body = {"prompt": "Tell me a very long story about a dragon.", "max_tokens": 400,
            "temperature": 0, "ignore_eos": True, "stream": True}
    generated_before = server.metric("tessera:generation_tokens_total") or 0
    r = requests.post(server.url + "/v1/completions", json=body, stream=True, timeout=60)
    assert r.status_code == 200
    chunks = 0
    for line in r.iter_lines():
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            json.loads(line[6:])
            chunks += 1
            if chunks == 3:
                break
    assert kv_used(server) > 0  # the request holds blocks while it runs
    r.close()  # the client goes away mid-stream
    assert server.wait_metric("tessera:kv_cache_used_blocks", 0) == 0
    assert server.wait_metric("tessera:num_requests_running", 0) == 0
    assert server.metric("tessera:kv_cache_usage_ratio") == 0
    # It stopped early: nowhere near its 400 tokens were generated.
    time.sleep(0.5)
    assert (server.metric("tessera:generation_tokens_total") or 0) - generated_before < 200


def test_many_disconnects_leave_nothing_behind(server):
    responses = []
    for i in range(8):
        r = requests.post(server.url + "/v1/chat/completions", stream=True, timeout=60, json={
            "messages": [{"role": "user", "content": f"Story number {i}"}], "max_tokens": 300,
            "ignore_eos": True, "stream": True})
        assert r.status_code == 200
        responses.append(r)
    for r in responses:
        next(r.iter_lines())
        r.close()
    assert server.wait_metric("tessera:kv_cache_used_blocks", 0, timeout=15) == 0
