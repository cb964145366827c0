#!/usr/bin/env python3
"""Speculative decoding on the GPU: for each proposer, 100 greedy prompts (copying and open,
24 tokens) at concurrency 1 and 64 compared with the same server without speculation, plus a
seeded sampled set. Usage: spec_check.py TESSERA_BIN MODEL.gguf [extra serve flags...]

On the GPU a verification step multiplies more rows than a decode step (other GEMM shapes),
so a near-tie between two tokens may round the other way; without --deterministic the check
reports how many outputs differ and where, and passes at >= 95% identical."""
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

import gpu_serve

BIN, MODEL, EXTRA = sys.argv[1], sys.argv[2], sys.argv[3:]
LICENSE = Path("/usr/share/common-licenses/GPL-3")
TEXT = LICENSE.read_text() if LICENSE.exists() else Path("README.md").read_text()
COPY = [f"Copy this text exactly.\n\n{TEXT[i * 300:i * 300 + 240]}\n\nCopy:\n"
        f"{TEXT[i * 300:i * 300 + 20]}" for i in range(50)]
OPEN = [f"Question {i}: what is a good name for a {w}? Answer:" for i, w in
        enumerate(["cat", "boat", "planet", "song", "river"] * 10)]
PROMPTS = COPY + OPEN


def start(*flags):
    p, url, _ = gpu_serve.start(BIN, MODEL, *EXTRA, *flags, name="spec_check")
    return p, url


def run(url, prompts, workers, **kw):
    def one(pr):
        body = {"prompt": pr, "max_tokens": 24, "temperature": 0, "ignore_eos": True, **kw}
        r = requests.post(url + "/v1/completions", json=body, timeout=600)
        r.raise_for_status()
        return r.json()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, prompts))


def texts(rs):
    return [r["choices"][0]["text"] for r in rs]


def main():
    ok = True
    p, url = start()
    ref1 = texts(run(url, PROMPTS, 1))
    ref64 = texts(run(url, PROMPTS, 64))
    seeded = texts(run(url, PROMPTS[::5], 8, temperature=0.8, top_p=0.9, seed=7))
    p.terminate(); p.wait()
    print(f"flags {EXTRA}; baseline: concurrency 1 vs 64 without speculation: "
          f"{sum(a == b for a, b in zip(ref1, ref64))}/100 identical")
    methods = os.environ.get("SPEC_METHODS", "ngram,early-exit,draft").split(",")
    for name, flags in [("ngram", ["--speculative", "ngram"]),
                        ("early-exit", ["--speculative", "early-exit",
                                        "--speculative-early-exit-layers", "10"]),
                        ("draft", ["--speculative", "draft", "--draft-model", MODEL])]:
        if name not in methods:
            continue
        p, url = start(*flags, "--speculative-fixed", "--speculative-max-step-tokens", "100000")
        for conc, ref in ((1, ref1), (64, ref64)):
            rs = run(url, PROMPTS, conc)
            same = sum(a == b for a, b in zip(texts(rs), ref))
            d = sum(r["usage"].get("speculative", {}).get("draft_tokens", 0) for r in rs)
            a = sum(r["usage"].get("speculative", {}).get("accepted_tokens", 0) for r in rs)
            print(f"{name}: concurrency {conc}: {same}/100 identical to no speculation; "
                  f"accepted {a}/{d} drafts")
            for i, (x, y) in enumerate(zip(texts(rs), ref)):
                if x != y:
                    k = next(j for j in range(min(len(x), len(y)) + 1) if x[j:j + 1] != y[j:j + 1])
                    print(f"  prompt {i} differs at char {k}: {x[k:k+30]!r} vs {y[k:k+30]!r}")
            ok = ok and same >= 95 and d > 0
        s = texts(run(url, PROMPTS[::5], 8, temperature=0.8, top_p=0.9, seed=7))
        same = sum(x == y for x, y in zip(s, seeded))
        print(f"{name}: seeded sampling: {same}/20 identical")
        ok = ok and same >= 19
        used = [l for l in requests.get(url + "/metrics").text.splitlines()
                if l.startswith("tessera:kv_cache_used_blocks ")]
        print(f"{name}: after all requests: {used}")
        p.terminate(); p.wait()
    print("SUMMARY spec_check:", "PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
