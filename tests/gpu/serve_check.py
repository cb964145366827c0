#!/usr/bin/env python3
"""`tessera serve` on the GPU, checked over real HTTP (stdlib only: the H200 image has no
openai client). Usage: serve_check.py BASE_URL. Prints PASS/FAIL lines and a SUMMARY;
exit 1 on any FAIL. Batch invariance is reported, not gated: the CUDA backend's GEMV (<= 8
rows) and cuBLASLt (more rows) round bf16 differently, so a greedy continuation may change
with the batch it runs in."""
import json
import sys
import threading
import urllib.error
import urllib.request

BASE = sys.argv[1].rstrip("/")
failures = 0


def report(ok, what):
    global failures
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    failures += 0 if ok else 1


def call(path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(BASE + path, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def complete(prompt, max_tokens=48, **kw):
    body = dict(model=MODEL, prompt=prompt, max_tokens=max_tokens, temperature=0)
    body.update(kw)
    status, text = call("/v1/completions", body)
    return status, (json.loads(text) if status == 200 else text)


PROMPTS = [f"Question {i}: what is {i} plus {i * 3}? Answer:" for i in range(24)] + [
    "The capital of France is", "def fibonacci(n):", "Once upon a time, a small robot",
    "The three primary colors are", "List the planets of the solar system:",
    "Water boils at", "In 1969, Apollo 11", "The quick brown fox"]

s, body = call("/health")
report(s == 200, f"/health {s}")
s, body = call("/v1/models")
model = MODEL = json.loads(body)["data"][0]["id"] if s == 200 else "?"
report(s == 200, f"/v1/models {s} ({model})")

s, r = complete("The capital of France is", 32)
ok = s == 200 and r["choices"][0]["text"] and r["usage"]["completion_tokens"] > 0
report(bool(ok), f"completion 200 with text: {r['choices'][0]['text']!r}" if s == 200 else f"completion {s} {r}")

# Streamed chat equals the same chat unstreamed (greedy).
msgs = [{"role": "user", "content": "Name three fruits."}]
s, text = call("/v1/chat/completions", dict(model=model, messages=msgs, max_tokens=40, temperature=0))
whole = json.loads(text)["choices"][0]["message"]["content"] if s == 200 else None
req = urllib.request.Request(BASE + "/v1/chat/completions", headers={"Content-Type": "application/json"},
                             data=json.dumps(dict(model=model, messages=msgs, max_tokens=40, temperature=0,
                                                  stream=True)).encode())
pieces = []
with urllib.request.urlopen(req, timeout=120) as resp:
    for line in resp:
        line = line.decode().strip()
        if line.startswith("data: ") and line != "data: [DONE]":
            for c in json.loads(line[6:]).get("choices", []):
                pieces.append(c.get("delta", {}).get("content") or "")
report(whole is not None and "".join(pieces) == whole, f"streamed chat == unstreamed chat ({whole!r})")

# Seeded temperature sampling (the device sampler) replays exactly.
a = complete("Once upon a time", 32, **{"temperature": 0.9, "top_p": 0.9, "top_k": 50, "seed": 7})
b = complete("Once upon a time", 32, **{"temperature": 0.9, "top_p": 0.9, "top_k": 50, "seed": 7})
report(a[0] == 200 and b[0] == 200 and a[1]["choices"][0]["text"] == b[1]["choices"][0]["text"],
       "seeded top-k/top-p sampling replays exactly")
c = complete("Once upon a time", 32, **{"temperature": 0.9, "seed": 8})
report(c[0] == 200 and c[1]["choices"][0]["text"] != a[1]["choices"][0]["text"],
       "another seed gives another text")

# Penalties, logprobs and n > 1 (whose first token forks on the host) beside plain rows.
s, r = complete("The quick brown fox", 16, logprobs=2, n=2, presence_penalty=0.5)
ok = s == 200 and len(r["choices"]) == 2 and all(
    ch["logprobs"]["tokens"] and len(ch["logprobs"]["top_logprobs"]) == len(ch["logprobs"]["tokens"])
    for ch in r["choices"])
report(bool(ok), "n=2 with logprobs and a penalty (device sampling; the first token forks on the host)")

# Alone, then all at once.
alone = [complete(p)[1]["choices"][0]["text"] for p in PROMPTS]
together = [None] * len(PROMPTS)


def worker(i):
    s, r = complete(PROMPTS[i])
    together[i] = r["choices"][0]["text"] if s == 200 else f"HTTP {s}"


threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(PROMPTS))]
for t in threads:
    t.start()
for t in threads:
    t.join()
report(all(t is not None and not t.startswith("HTTP") for t in together),
       f"{len(PROMPTS)} concurrent completions all 200")
same = sum(a == b for a, b in zip(alone, together))
print(f"INFO concurrent vs alone: {same}/{len(PROMPTS)} greedy texts identical", flush=True)

# Bad input is a clear 400, and the server keeps serving.
s, body = call("/v1/completions", dict(model=model, prompt="x", max_tokens=-1))
report(s == 400 and "error" in json.loads(body), f"max_tokens=-1 -> {s}")
s, body = call("/v1/completions", raw=b"{not json")
report(s == 400, f"malformed JSON -> {s}")
s, body = call("/v1/completions", dict(model=model, prompt=[10 ** 9], max_tokens=4))
report(s == 400, f"out-of-vocabulary token id -> {s}")
s, r = complete("Water boils at", 8)
report(s == 200, "still serving after bad input")

s, text = call("/metrics")
kv = [l for l in text.splitlines() if l.startswith("tessera:kv_cache_used_blocks")]
report(s == 200 and kv and float(kv[0].split()[-1]) == 0.0, f"/metrics: {kv[0] if kv else 'no kv gauge'}")
print(f"SUMMARY serve_check: {'PASS' if failures == 0 else f'{failures} FAIL'}")
sys.exit(1 if failures else 0)
