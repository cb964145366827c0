"""500 malformed requests, each answered 4xx with an OpenAI error body, while the server
keeps serving well-formed requests sent between them."""
import collections
import json
from concurrent.futures import ThreadPoolExecutor

import requests

from e2e_util import post

GOOD = {"prompt": "Hello", "max_tokens": 2, "temperature": 0}


def malformed_cases(model):
    """(path, raw body bytes, expected status) for every kind of bad input, 500 in total."""
    base = {"model": model, "prompt": "Hi", "max_tokens": 2}
    chat = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    kinds = []
    j = lambda d: json.dumps(d).encode()
    # Not JSON at all / broken JSON.
    for raw in [b"", b"{", b"{\"prompt\": }", b"{'prompt': 'x'}", b"[1, 2,", b"nul", b"{,}",
                b"{\"prompt\": \"x\",}", b"\x00\x01", b"{\"a\":1}{\"b\":2}"]:
        kinds.append(("/v1/completions", raw, 400))
    # Not an object.
    for raw in [b"[]", b"\"text\"", b"42", b"null", b"true"]:
        kinds.append(("/v1/completions", raw, 400))
        kinds.append(("/v1/chat/completions", raw, 400))
    # Wrong types.
    wrong = {"temperature": "hot", "max_tokens": "5", "n": [1], "stream": "yes", "stop": 5,
             "logprobs": True, "top_p": {}, "seed": 1.5, "priority": "high", "top_k": 2.5,
             "ignore_eos": 1, "presence_penalty": "0", "stop_token_ids": "1",
             "prompt": 5, "model": 7, "stream_options": [1]}
    for k, v in wrong.items():
        kinds.append(("/v1/completions", j({**base, k: v}), 400))
    for k, v in {"messages": "hi", "max_completion_tokens": "3", "logprobs": 1,
                 "top_logprobs": "2", "temperature": [0]}.items():
        kinds.append(("/v1/chat/completions", j({**chat, k: v}), 400))
    # Out of range.
    ranges = {"temperature": [-1, 2.5, 1e9], "top_p": [0, 1.5, -0.1], "n": [0, 1000, -1],
              "max_tokens": [0, -5, 10 ** 9], "logprobs": [21, -1], "presence_penalty": [3, -3],
              "frequency_penalty": [2.5], "min_p": [2, -1], "repetition_penalty": [0, -1, 5],
              "top_k": [-5], "seed": [2 ** 70], "priority": [2 ** 40]}
    for k, vs in ranges.items():
        for v in vs:
            kinds.append(("/v1/completions", j({**base, k: v}), 400))
    # Too-long prompts (the model's context is 8192 tokens).
    kinds.append(("/v1/completions", j({**base, "prompt": "hello " * 9000}), 400))
    kinds.append(("/v1/completions", j({**base, "prompt": [1] * 9000}), 400))
    kinds.append(("/v1/chat/completions",
                  j({**chat, "messages": [{"role": "user", "content": "hi " * 9000}]}), 400))
    kinds.append(("/v1/completions", j({**base, "prompt": "Hi", "max_tokens": 9000}), 400))
    # Invalid UTF-8 inside JSON strings.
    for bad in [b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]:
        kinds.append(("/v1/completions", b"{\"prompt\": \"a" + bad + b"b\"}", 400))
        kinds.append(("/v1/chat/completions",
                      b"{\"messages\": [{\"role\": \"user\", \"content\": \"" + bad + b"\"}]}", 400))
    # Unknown model.
    kinds.append(("/v1/completions", j({**base, "model": "gpt-9"}), 404))
    kinds.append(("/v1/chat/completions", j({**chat, "model": "llama-70b"}), 404))
    # Missing or malformed structure.
    kinds += [("/v1/completions", j({"model": model}), 400),
              ("/v1/completions", j({**base, "prompt": []}), 400),
              ("/v1/completions", j({**base, "prompt": [[]]}), 400),
              ("/v1/completions", j({**base, "prompt": [1, "a"]}), 400),
              ("/v1/completions", j({**base, "prompt": [-1]}), 400),
              ("/v1/completions", j({**base, "prompt": [10 ** 7]}), 400),
              ("/v1/completions", j({**base, "echo": True}), 400),
              ("/v1/completions", j({**base, "logit_bias": {"1": 5}}), 400),
              ("/v1/completions", j({**base, "best_of": 3}), 400),
              ("/v1/completions", j({**base, "stop_token_ids": [-3]}), 400),
              ("/v1/completions", j({**base, "stream_options": {"include_usage": True}}), 400),
              ("/v1/chat/completions", j({"model": model}), 400),
              ("/v1/chat/completions", j({**chat, "messages": []}), 400),
              ("/v1/chat/completions", j({**chat, "messages": [{"content": "x"}]}), 400),
              ("/v1/chat/completions", j({**chat, "messages": [{"role": "x", "content": "y"}]}), 400),
              ("/v1/chat/completions", j({**chat, "messages": [{"role": "user", "content": 5}]}), 400),
              ("/v1/chat/completions", j({**chat, "messages": [{"role": "user", "content": [
                  {"type": "image_url", "image_url": {"url": "x"}}]}]}), 400),
              ("/v1/chat/completions", j({**chat, "tools": [{"type": "function"}]}), 400),
              ("/v1/chat/completions", j({**chat, "top_logprobs": 2}), 400),
              ("/v1/chat/completions", j({**chat, "response_format": {"type": "json_object"}}), 400),
              ("/tokenize", j({"prompt": 5}), 400),
              ("/tokenize", b"{", 400),
              ("/detokenize", j({"tokens": [10 ** 8]}), 400),
              ("/detokenize", j({"tokens": "abc"}), 400)]
    # Body over the size limit (4 MiB by default).
    kinds.append(("/v1/completions", j({**base, "prompt": "x" * (5 << 20)}), 413))
    cases = []
    while len(cases) < 500:
        cases.extend(kinds)
    return cases[:500]


def test_500_malformed_requests(server, model_name):
    cases = malformed_cases(model_name)
    assert len(cases) == 500

    def send(case):
        path, raw, _ = case
        r = requests.post(server.url + path, data=raw,
                          headers={"Content-Type": "application/json"}, timeout=60)
        return r.status_code, r.text

    good_results = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(send, c) for c in cases]
        for _ in range(10):  # well-formed requests keep working in the middle of it
            good_results.append(post(server, "/v1/completions", GOOD))
        results = [f.result() for f in futures]
    tally = collections.Counter()
    failures = []
    for (path, raw, expected), (status, text) in zip(cases, results):
        tally[status] += 1
        try:
            err = json.loads(text)["error"]
            ok = status == expected and isinstance(err["message"], str) and err["message"]
            ok = ok and "type" in err and "param" in err and "code" in err
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            failures.append((path, raw[:80], expected, status, text[:200]))
    print(f"\nmalformed-request tally: {dict(sorted(tally.items()))}")
    assert not failures, f"{len(failures)} bad answers, e.g. {failures[:3]}"
    assert all(r.status_code == 200 for r in good_results)
    assert server.proc.poll() is None
    assert post(server, "/v1/completions", GOOD).status_code == 200
