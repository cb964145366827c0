#!/usr/bin/env python3
"""Serving benchmark for a running `tessera serve` (any OpenAI-compatible server works), in the
style of `vllm bench serve`: requests arrive at a Poisson rate (or all at once) under an
optional concurrency cap, with fixed or random prompt/output lengths; every request streams,
so time to first token (TTFT), inter-token latency (ITL) and end-to-end latency are measured
per request on the client. Prompts are random token ids (so lengths are exact), sent as the
`prompt` token list of /v1/completions with `ignore_eos` so outputs have the asked length.

A second request class can run at the same time (--long-*): long prompts arriving at their
own rate, while the short requests' TTFT is reported separately. That is the chunked-prefill
experiment: run it against a server with and without --no-chunked-prefill.

  python3 bench/serve_bench.py --base-url http://127.0.0.1:8000 --num-prompts 64 \
      --input-len 128 --output-len 32 --request-rate inf --max-concurrency 16
"""
import argparse
import json
import math
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import requests


@dataclass
class Result:
    kind: str
    ok: bool = False
    error: str = ""
    prompt_len: int = 0
    output_tokens: int = 0
    ttft: float = 0.0
    itls: list = field(default_factory=list)
    latency: float = 0.0


def lengths(mean: int, ratio: float, n: int, rng: random.Random) -> list[int]:
    if ratio <= 0:
        return [mean] * n
    lo, hi = max(1, int(mean * (1 - ratio))), max(1, int(mean * (1 + ratio)))
    return [rng.randint(lo, hi) for _ in range(n)]


def make_prompt(n: int, rng: random.Random) -> list[int]:
    # Ids in a range that is ordinary text tokens in Llama/SmolLM/Qwen vocabularies.
    return [rng.randrange(1000, 20000) for _ in range(n)]


def one_request(session: requests.Session, url: str, headers: dict, model: str,
                prompt: list[int], output_len: int, kind: str) -> Result:
    """One streamed completion; times are taken when each content chunk arrives."""
    res = Result(kind=kind, prompt_len=len(prompt))
    body = {"model": model, "prompt": prompt, "max_tokens": output_len, "temperature": 0,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    last = start
    try:
        with session.post(url, json=body, headers=headers, stream=True, timeout=3600) as r:
            if r.status_code != 200:
                res.error = f"HTTP {r.status_code}: {r.text[:200]}"
                return res
            for line in r.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if chunk.get("usage"):
                    res.output_tokens = chunk["usage"]["completion_tokens"]
                if chunk.get("choices") and chunk["choices"][0].get("text"):
                    now = time.perf_counter()
                    if res.ttft == 0.0:
                        res.ttft = now - start
                    else:
                        res.itls.append(now - last)
                    last = now
        res.latency = time.perf_counter() - start
        res.ok = True
    except (requests.RequestException, json.JSONDecodeError) as e:
        res.error = repr(e)
    return res


def run_class(base_url, headers, model, args, kind, n, in_len, out_len, rate, concurrency,
              rng) -> list[Result]:
    """Launches n requests with Poisson gaps at `rate` (all at once if inf), at most
    `concurrency` in flight (0 = unlimited); returns when all have finished."""
    ins = lengths(in_len, args.random_range_ratio, n, rng)
    outs = lengths(out_len, args.random_range_ratio, n, rng)
    prompts = [make_prompt(k, rng) for k in ins]
    results: list[Result | None] = [None] * n
    sem = threading.Semaphore(concurrency) if concurrency else None
    url = base_url + "/v1/completions"

    def worker(i):
        session = requests.Session()
        try:
            results[i] = one_request(session, url, headers, model, prompts[i], outs[i], kind)
        finally:
            session.close()
            if sem:
                sem.release()

    threads = []
    for i in range(n):
        if sem:
            sem.acquire()
        t = threading.Thread(target=worker, args=(i,), daemon=True)
        t.start()
        threads.append(t)
        if rate != math.inf and i + 1 < n:
            time.sleep(rng.expovariate(rate))
    for t in threads:
        t.join()
    return results


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    f, c = math.floor(k), math.ceil(k)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def summarize(results: list[Result], duration: float) -> dict:
    ok = [r for r in results if r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    in_tokens = sum(r.prompt_len for r in ok)
    ttft = [r.ttft * 1000 for r in ok]
    itl = [x * 1000 for r in ok for x in r.itls]
    e2e = [r.latency * 1000 for r in ok]
    tpot = [(r.latency - r.ttft) / (r.output_tokens - 1) * 1000 for r in ok if r.output_tokens > 1]
    stats = lambda xs: {"mean": statistics.fmean(xs) if xs else float("nan"),
                        "median": pct(xs, 50), "p90": pct(xs, 90), "p99": pct(xs, 99)}
    return {"completed": len(ok), "failed": len(results) - len(ok),
            "errors": sorted({r.error for r in results if not r.ok})[:5],
            "duration_s": duration,
            "request_throughput": len(ok) / duration,
            "output_token_throughput": out_tokens / duration,
            "total_token_throughput": (in_tokens + out_tokens) / duration,
            "input_tokens": in_tokens, "output_tokens": out_tokens,
            "ttft_ms": stats(ttft), "tpot_ms": stats(tpot), "itl_ms": stats(itl),
            "e2e_ms": stats(e2e)}


def print_summary(title: str, s: dict) -> None:
    print(f"============ {title} ============")
    print(f"{'Successful requests:':<36}{s['completed']}")
    print(f"{'Failed requests:':<36}{s['failed']}")
    for e in s["errors"]:
        print(f"  error: {e}")
    print(f"{'Benchmark duration (s):':<36}{s['duration_s']:.2f}")
    print(f"{'Total input tokens:':<36}{s['input_tokens']}")
    print(f"{'Total generated tokens:':<36}{s['output_tokens']}")
    print(f"{'Request throughput (req/s):':<36}{s['request_throughput']:.2f}")
    print(f"{'Output token throughput (tok/s):':<36}{s['output_token_throughput']:.2f}")
    print(f"{'Total token throughput (tok/s):':<36}{s['total_token_throughput']:.2f}")
    for key, name in [("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"),
                      ("e2e_ms", "E2E latency")]:
        v = s[key]
        print(f"{name + ' (ms) mean/median/p90/p99:':<36}"
              f"{v['mean']:.1f} / {v['median']:.1f} / {v['p90']:.1f} / {v['p99']:.1f}")


def run(args) -> dict:
    rng = random.Random(args.seed)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    base = args.base_url.rstrip("/")
    model = args.model or requests.get(base + "/v1/models", headers=headers,
                                       timeout=30).json()["data"][0]["id"]
    if args.warmup:
        one_request(requests.Session(), base + "/v1/completions", headers, model,
                    make_prompt(8, rng), 4, "warmup")
    groups: dict[str, list[Result]] = {}

    def main_class():
        groups["main"] = run_class(base, headers, model, args, "main", args.num_prompts,
                                   args.input_len, args.output_len, args.request_rate,
                                   args.max_concurrency, rng)

    def long_class():
        # Background long prompts: their own arrivals, no concurrency cap.
        groups["long"] = run_class(base, headers, model, args, "long", args.long_num_prompts,
                                   args.long_input_len, args.long_output_len, args.long_rate,
                                   0, random.Random(args.seed + 1))

    start = time.perf_counter()
    jobs = [threading.Thread(target=main_class)]
    if args.long_num_prompts:
        jobs.append(threading.Thread(target=long_class))
    for j in jobs:
        j.start()
    for j in jobs:
        j.join()
    duration = time.perf_counter() - start
    out = {"model": model, "args": vars(args), "main": summarize(groups["main"], duration)}
    print_summary("Serving benchmark (main requests)", out["main"])
    if "long" in groups:
        out["long"] = summarize(groups["long"], duration)
        print_summary("Background long prompts", out["long"])
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--model", default="", help="default: the server's first model")
    p.add_argument("--api-key", default="")
    p.add_argument("--num-prompts", type=int, default=64)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=32)
    p.add_argument("--random-range-ratio", type=float, default=0.0,
                   help="lengths uniform in [len*(1-r), len*(1+r)]; 0 = fixed")
    p.add_argument("--request-rate", type=float, default=math.inf,
                   help="requests/s (Poisson arrivals); inf = all at once")
    p.add_argument("--max-concurrency", type=int, default=0, help="0 = unlimited")
    p.add_argument("--long-num-prompts", type=int, default=0,
                   help="background long prompts (chunked-prefill experiment)")
    p.add_argument("--long-input-len", type=int, default=2048)
    p.add_argument("--long-output-len", type=int, default=4)
    p.add_argument("--long-rate", type=float, default=0.5, help="long prompts per second")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-warmup", dest="warmup", action="store_false")
    p.add_argument("--json-out", default="", help="write the results as JSON here")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = run(args)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=2, default=str)
    return 0 if out["main"]["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
