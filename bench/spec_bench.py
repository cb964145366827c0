#!/usr/bin/env python3
"""Speculative-decoding benchmark: starts `tessera serve` once per configuration and measures
output tokens/s and the mean acceptance length on two workloads, at several concurrencies.

  copy  input-copying work: repeat / fix the spelling of / rename a function in a given text
        or code (what an n-gram proposer should speed up);
  chat  open questions (little to copy).

Requests are greedy chat completions without ignore_eos (outputs end where the model ends
them, at most --max-tokens). The acceptance length (tokens per verification, accepted + 1)
comes from the server's tessera:spec_decode_acceptance_length histogram.

  python3 bench/spec_bench.py --bin build/server/tessera --model models/X.gguf --device cpu \
      --config none --config "ngram" --config "early-exit --speculative-early-exit-layers 8" \
      --batches 1,4 --out /tmp/spec.jsonl
Prints one markdown table row per (config, workload, batch); --dummy skips the workloads'
text (random-weight models: cost only, with --ignore-eos).
"""
import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def copy_prompts():
    gpl = Path("/usr/share/common-licenses/GPL-3")
    text = gpl.read_text() if gpl.exists() else (REPO / "README.md").read_text()
    code = (REPO / "bench" / "serve_bench.py").read_text()
    paras = [p.strip() for p in text.split("\n\n") if 200 < len(p.strip()) < 700]
    funcs = [f for f in code.split("\ndef ")[1:] if 150 < len(f) < 900]
    out = []
    for i in range(8):
        p = paras[(i * 7) % len(paras)]
        out.append(f"Repeat the following paragraph word for word.\n\n{p}")
        typo = p.replace("the ", "teh ", 3).replace("software", "sofware")
        out.append(f"Fix the spelling mistakes in this text and return the whole corrected "
                   f"text.\n\n{typo}")
        f = "def " + funcs[i % len(funcs)]
        name = f.split("(")[0][4:]
        out.append(f"Rename the function `{name}` to `run_{name}` in this Python code and "
                   f"return the complete code.\n\n```python\n{f}\n```")
    return out


def chat_prompts():
    topics = ["how rainbows form", "why the sea is salty", "how a bicycle stays upright",
              "what a compiler does", "how bees make honey", "why we have seasons",
              "how vaccines work", "what causes thunder", "how a refrigerator works",
              "why leaves change colour", "how the internet routes a message",
              "what photosynthesis is"]
    return [f"Explain {t} to a curious ten-year-old." for t in topics] + \
           [f"Write a short poem about {t}." for t in ["autumn", "the ocean", "a city at night",
                                                         "a lost key"]] + \
           [f"Give three tips for {t}." for t in ["learning to cook", "sleeping better",
                                                   "writing clearly", "saving money"]]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(url, name):
    for line in requests.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def run_batch(url, model, prompts, concurrency, max_tokens, ignore_eos):
    def one(p):
        body = {"model": model, "messages": [{"role": "user", "content": p}],
                "max_tokens": max_tokens, "temperature": 0}
        if ignore_eos:
            body["ignore_eos"] = True
        r = requests.post(url + "/v1/chat/completions", json=body, timeout=1800)
        r.raise_for_status()
        return r.json()["usage"]["completion_tokens"]

    names = ["tessera:spec_decode_acceptance_length_sum", "tessera:spec_decode_acceptance_length_count",
             "tessera:spec_decode_num_draft_tokens_total",
             "tessera:spec_decode_num_accepted_tokens_total"]
    before = [metric(url, n) for n in names]
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        tokens = sum(pool.map(one, prompts))
    wall = time.time() - t0
    after = [metric(url, n) for n in names]
    d = [a - b for a, b in zip(after, before)]
    return {"tokens": tokens, "seconds": wall, "tok_s": tokens / wall,
            "acceptance_length": d[0] / d[1] if d[1] else None,
            "drafted": d[2], "accepted": d[3]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "build" / "server" / "tessera"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--config", action="append", required=True,
                    help="'none' or speculative flags, e.g. 'ngram --num-speculative-tokens 4'")
    ap.add_argument("--extra", default="", help="flags for every server")
    ap.add_argument("--batches", default="1")
    ap.add_argument("--workloads", default="copy,chat")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--requests-per-batch", type=int, default=2,
                    help="requests sent per concurrency slot")
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    workloads = {"copy": copy_prompts(), "chat": chat_prompts()}
    print("| config | workload | batch | output tok/s | acceptance length | accepted/drafted |")
    print("|---|---|---|---|---|---|")
    rows = []
    for config in args.config:
        flags = [] if config == "none" else ["--speculative", *shlex.split(config)]
        port = free_port()
        log = open(f"/tmp/spec_bench_{port}.log", "w")
        cmd = [args.bin, "serve", "--model", args.model, "--device", args.device, "--port",
               str(port), "--grpc-port", "0", *flags, *shlex.split(args.extra)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(1200):
                if proc.poll() is not None:
                    sys.exit(f"server exited: {' '.join(cmd)}\n" + Path(log.name).read_text()[-3000:])
                try:
                    if requests.get(url + "/ready", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.5)
            model = requests.get(url + "/v1/models").json()["data"][0]["id"]
            run_batch(url, model, workloads["chat"][:2], 2, 16, args.ignore_eos)  # warm-up
            for w in args.workloads.split(","):
                for b in [int(x) for x in args.batches.split(",")]:
                    n = max(b * args.requests_per_batch, 4)
                    prompts = (workloads[w] * (n // len(workloads[w]) + 1))[:n]
                    # Warm-up of this shape (CUDA graphs of its verify steps are captured
                    # on first use): steady-state throughput is what is compared.
                    run_batch(url, model, prompts[:b], b, 48, args.ignore_eos)
                    r = run_batch(url, model, prompts, b, args.max_tokens, args.ignore_eos)
                    r.update(config=config, workload=w, batch=b, device=args.device)
                    rows.append(r)
                    al = f"{r['acceptance_length']:.2f}" if r["acceptance_length"] else "-"
                    ad = f"{int(r['accepted'])}/{int(r['drafted'])}" if r["drafted"] else "-"
                    print(f"| {config} | {w} | {b} | {r['tok_s']:.1f} | {al} | {ad} |", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    if args.out:
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
