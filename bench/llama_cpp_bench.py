#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) on the same GGUF and thread count as bench/cpu_bench.cpp:
prefill tok/s for 128- and 512-token prompts and batch-1 decode tok/s over 128 tokens after
a 16-token prompt. Prints the median (and best) of --reps runs after one warm-up.

  python3 bench/llama_cpp_bench.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                   [--threads 2] [--prefill 128,512] [--decode 128] [--reps 5]
"""
import argparse
import os
import random
import statistics
import time

import llama_cpp


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(root, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prefill", default="128,512")
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    prefill = [int(x) for x in args.prefill.split(",") if x]
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=1024, n_batch=512, n_ubatch=512,
                          n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    vocab = llm.n_vocab()
    rng = random.Random(7)
    print(f"llama-cpp-python {llama_cpp.__version__}, model {os.path.basename(args.model)}, "
          f"{args.threads} threads")
    for n in prefill:
        prompt = [rng.randrange(vocab) for _ in range(n)]
        secs = []
        for r in range(args.reps + 1):
            llm.reset()
            llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
            t0 = time.perf_counter()
            llm.eval(prompt)
            if r > 0:
                secs.append(time.perf_counter() - t0)
        print(f"prefill {n:4d} tokens: {n / statistics.median(secs):8.1f} tok/s "
              f"(median of {args.reps}; best {n / min(secs):.1f})")
    if args.decode > 0:
        prompt = [rng.randrange(vocab) for _ in range(16)]
        secs = []
        for r in range(args.reps + 1):
            llm.reset()
            llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
            llm.eval(prompt)
            t0 = time.perf_counter()
            for _ in range(args.decode):
                logits = llm.scores[llm.n_tokens - 1]
                llm.eval([int(logits.argmax())])
            if r > 0:
                secs.append(time.perf_counter() - t0)
        print(f"decode  {args.decode:4d} tokens: {args.decode / statistics.median(secs):8.1f} tok/s "
              f"(batch 1, after a 16-token prompt, median of {args.reps}; best "
              f"{args.decode / min(secs):.1f})")


if __name__ == "__main__":
    main()
