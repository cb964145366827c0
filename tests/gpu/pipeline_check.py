#!/usr/bin/env python3
"""Pipelined steps (--async-scheduling, on by default on CUDA) over real HTTP on the GPU:
the same server with pipelining off is the reference.
  - 48 greedy prompts one at a time, and 16 seeded sampled ones: identical texts;
  - with --deterministic on both, 48 greedy prompts at concurrency 48: identical texts;
  - stop strings and max_tokens end where the reference ends; KV blocks return to 0;
  - 24 requests with penalties, min_p and logprobs (sampled on the device, pipelined), one at
    a time and, with --deterministic, at concurrency 24: identical texts and logprobs.
Usage: pipeline_check.py TESSERA_BIN MODEL.gguf"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

import gpu_serve

BIN, MODEL = sys.argv[1], sys.argv[2]
PROMPTS = [f"Question {i}: what is {i} plus {i * 7}? Answer:" for i in range(24)] + [
    f"Write one sentence about a {w}." for w in
    ["cat", "boat", "planet", "song", "river", "mountain", "robot", "garden", "train", "storm",
     "library", "violin", "desert", "lighthouse", "bakery", "volcano", "comet", "forest",
     "bridge", "clock", "harbor", "market", "castle", "glacier"]]
PENALIZED = dict(temperature=0.8, seed=5, min_p=0.05, frequency_penalty=0.6,
                 presence_penalty=0.3, repetition_penalty=1.2, logprobs=3)
failures = 0


def report(ok, what):
    global failures
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    failures += 0 if ok else 1


def start(*flags):
    return gpu_serve.start(BIN, MODEL, *flags, name="pipeline_check")


def run(url, prompts, workers, **kw):
    def one(pr):
        body = {"prompt": pr, "max_tokens": 32, "temperature": 0, **kw}
        r = requests.post(url + "/v1/completions", json=body, timeout=600)
        r.raise_for_status()
        c = r.json()["choices"][0]
        return c["text"], c["finish_reason"], c.get("logprobs")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, prompts))


def kv_used(url):
    for line in requests.get(url + "/metrics").text.splitlines():
        if line.startswith("tessera:kv_cache_used_blocks "):
            return float(line.split()[1])
    return -1


def series(url):
    out = {}
    out["greedy1"] = run(url, PROMPTS, 1)
    out["seeded1"] = run(url, PROMPTS[::3], 1, temperature=0.8, top_p=0.9, seed=11)
    out["stops1"] = run(url, PROMPTS[24:36], 1, stop=[" the", "."], max_tokens=20)
    # Penalties, min_p and logprobs are sampled on the device too (and pipelined).
    out["penalized1"] = run(url, PROMPTS[1::2], 1, **PENALIZED)
    return out


def main():
    results = {}
    for name, flags in (("off", ["--async-scheduling", "off"]), ("on", [])):
        p, url, log = start(*flags)
        results[name] = series(url)
        results[name]["det48"] = None
        p.terminate(); p.wait()
        mode = [l for l in Path(log).read_text().splitlines() if "async scheduling" in l]
        print(f"server {name}: {mode[-1].split('] ')[-1] if mode else '?'}")
    for key in ("greedy1", "seeded1", "stops1", "penalized1"):
        a, b = results["off"][key], results["on"][key]
        same = sum(x == y for x, y in zip(a, b))
        report(same == len(a), f"{key}: {same}/{len(a)} identical with pipelining on and off")
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                print(f"  {key} {i}: off {x!r} / on {y!r}")
    with_lp = sum(lp is not None and len(lp["tokens"]) > 0 for _, _, lp in results["on"]["penalized1"])
    report(with_lp == len(PROMPTS[1::2]), f"logprobs returned for {with_lp} penalized requests")
    stopped = sum(f == "stop" for _, f, _ in results["on"]["stops1"])
    report(stopped > 0, f"stop strings ended {stopped}/12 requests early")

    det = {}
    for name, flags in (("off", ["--async-scheduling", "off"]), ("on", [])):
        p, url, _ = start("--deterministic", *flags)
        det[name] = run(url, PROMPTS, 48, max_tokens=48, ignore_eos=True)
        det[name + "_pen"] = run(url, PROMPTS[1::2], 24, **PENALIZED)
        time.sleep(0.5)
        used = kv_used(url)
        report(used == 0, f"deterministic, pipelining {name}: KV used blocks after all: {used}")
        p.terminate(); p.wait()
    same = sum(x == y for x, y in zip(det["off"], det["on"]))
    report(same == len(PROMPTS), f"--deterministic, concurrency 48: {same}/{len(PROMPTS)} "
           "identical with pipelining on and off")
    same = sum(x == y for x, y in zip(det["off_pen"], det["on_pen"]))
    report(same == len(det["off_pen"]), f"--deterministic, penalties + logprobs, concurrency 24: "
           f"{same}/{len(det['off_pen'])} identical (texts and logprobs) with pipelining on and off")
    print("SUMMARY pipeline_check:", "PASS" if failures == 0 else f"FAIL ({failures})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
