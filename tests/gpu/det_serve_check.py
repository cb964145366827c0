#!/usr/bin/env python3
"""Deterministic mode over real HTTP against a running `tessera serve` (stdlib only).
  det_serve_check.py BASE invariance OUT.json [--gate]  32 greedy prompts alone, then all 32
      at once; prints how many differ, writes the solo texts; --gate: FAIL unless none differs
  det_serve_check.py BASE compare REF.json           solo greedy texts must equal REF's
  det_serve_check.py BASE throughput LABEL           decode tok/s at 1 and 32 concurrent
Prints PASS/FAIL/INFO lines; exit 1 on any FAIL."""
import json
import sys
import threading
import time
import urllib.error
import urllib.request

BASE = sys.argv[1].rstrip("/")
MODE = sys.argv[2]
PROMPTS = [f"Question {i}: what is {i} plus {i * 3}? Answer:" for i in range(20)] + [
    "The capital of France is", "def fibonacci(n):", "Once upon a time, a small robot",
    "The three primary colors are", "List the planets of the solar system:", "Water boils at",
    "In 1969, Apollo 11", "The quick brown fox", "To make a cup of tea, you first",
    "Photosynthesis is the process by which", "A haiku about autumn:", "SELECT * FROM users WHERE"]
failures = 0


def report(ok, what):
    global failures
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    failures += 0 if ok else 1


def complete(prompt, max_tokens=64, ignore_eos=False):
    body = dict(model=MODEL, prompt=prompt, max_tokens=max_tokens, temperature=0,
                ignore_eos=ignore_eos)
    req = urllib.request.Request(BASE + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            out = json.loads(r.read().decode())
            return out["choices"][0]["text"], out["usage"]["completion_tokens"]
    except urllib.error.HTTPError as e:
        return None, e.code


def concurrently(fn, n):
    results = [None] * n
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, fn(i))) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


with urllib.request.urlopen(BASE + "/v1/models", timeout=30) as r:
    MODEL = json.loads(r.read().decode())["data"][0]["id"]

if MODE == "invariance":
    solo = [complete(p)[0] for p in PROMPTS]
    together = [r[0] for r in concurrently(lambda i: complete(PROMPTS[i]), len(PROMPTS))]
    report(all(t is not None for t in solo + together), f"{2 * len(PROMPTS)} completions all 200")
    differ = [i for i in range(len(PROMPTS)) if solo[i] != together[i]]
    print(f"INFO concurrent vs solo: {len(differ)}/{len(PROMPTS)} greedy texts differ "
          f"(prompts {differ})", flush=True)
    if "--gate" in sys.argv:
        report(not differ, f"deterministic: all {len(PROMPTS)} concurrent greedy texts equal solo")
    with open(sys.argv[3], "w") as f:
        json.dump(dict(solo=solo, together=together, differ=differ), f, indent=1)
elif MODE == "compare":
    ref = json.load(open(sys.argv[3]))["solo"]
    got = [complete(p)[0] for p in PROMPTS[:8]]
    same = sum(g == r for g, r in zip(got, ref))
    report(same == len(got), f"graph-capture fallback: {same}/{len(got)} solo greedy texts equal "
           "the normal server's")
    with urllib.request.urlopen(BASE + "/health", timeout=30) as r:
        report(r.status == 200, f"/health {r.status} after failed captures")
elif MODE == "throughput":
    label = sys.argv[3]
    complete("warm up", 16, True)
    for n in (1, 32):
        t0 = time.time()
        res = concurrently(lambda i: complete(PROMPTS[i % len(PROMPTS)], 256, True), n)
        dt = time.time() - t0
        tokens = sum(r[1] for r in res if r[0] is not None)
        print(f"RESULT {label} batch {n}: {tokens} tokens in {dt:.2f} s = {tokens / dt:.1f} tok/s "
              "(256 tokens per request, short prompts)", flush=True)
else:
    report(False, f"unknown mode {MODE}")
sys.exit(1 if failures else 0)
