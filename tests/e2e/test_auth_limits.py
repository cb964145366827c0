"""API key (HTTP and gRPC), queue-full 429 with Retry-After, and graceful SIGTERM."""
import signal
import threading

import grpc
import openai
import pytest
import requests

from e2e_util import post


def test_api_key(start_server):
    s = start_server(env={"TESSERA_API_KEY": "s3cret"})
    bad = openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model="x", prompt="Hi", max_tokens=1)
    r = requests.post(s.url + "/v1/completions", json={"prompt": "Hi", "max_tokens": 1})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    good = openai.OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0)
    model = good.models.list().data[0].id
    assert good.completions.create(model=model, prompt="Hi", max_tokens=1).choices
    # Probes and scrapes need no key.
    assert requests.get(s.url + "/health").status_code == 200
    assert requests.get(s.url + "/metrics").status_code == 200
    channel = grpc.insecure_channel(f"127.0.0.1:{s.grpc_port}")
    from grpc_tools import protoc  # noqa: F401  (ensures grpcio-tools is present)
    method = channel.unary_unary("/tessera.v1.Inference/ModelInfo",
                                 request_serializer=lambda _: b"",
                                 response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        method(None, timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert method(None, timeout=30, metadata=[("authorization", "Bearer s3cret")]) is not None
    channel.close()


def test_queue_full_is_429(start_server):
    s = start_server("--max-num-seqs", "1", "--max-waiting", "1", "--grpc-port", "0")
    body = {"prompt": "Count slowly:", "max_tokens": 48, "ignore_eos": True}
    results = []
    lock = threading.Lock()

    def send():
        r = post(s, "/v1/completions", body)
        with lock:
            results.append((r.status_code, r.headers.get("Retry-After"), r.json()))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(c for c, _, _ in results)
    assert 200 in codes and 429 in codes, codes
    for code, retry, body in results:
        if code == 429:
            assert retry is not None and int(retry) >= 1
            assert body["error"]["message"]


def test_sigterm_is_graceful(start_server):
    s = start_server("--grpc-port", "0")
    r = requests.post(s.url + "/v1/completions", stream=True, timeout=60, json={
        "prompt": "Long story:", "max_tokens": 500, "ignore_eos": True, "stream": True})
    lines = r.iter_lines()
    next(lines)
    s.proc.send_signal(signal.SIGTERM)
    tail = b"".join(lines)  # the stream ends (cancelled, then [DONE]); it does not hang
    assert s.proc.wait(timeout=30) == 0
    assert b"[DONE]" in tail
