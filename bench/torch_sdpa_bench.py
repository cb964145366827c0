"""PyTorch scaled_dot_product_attention on the shapes of bench/cuda/attention_bench.cpp.

Contiguous (not paged) KV, GQA through enable_gqa=True (no K/V expansion), bf16. Decode:
achieved K+V bandwidth; prefill: causal TFLOP/s. Times are CUDA-event medians over graph
replays of 20 calls, rotating through several KV copies so the cache is not served from L2.
"""
import math
import statistics
import sys

import torch
import torch.nn.functional as F

H, HKV, D, CALLS = 32, 8, 128, 20


def time_calls(fn, reps=15):
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        fn()
    times = []
    for _ in range(3):
        g.replay()
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times) / CALLS


def decode(batch, ctx):
    kv_bytes = batch * ctx * HKV * D * 2 * 2
    copies = max(1, min(16, math.ceil(512e6 / kv_bytes), int(40e9 // kv_bytes)))
    q = torch.randn(batch, H, 1, D, device="cuda", dtype=torch.bfloat16)
    ks = [torch.randn(batch, HKV, ctx, D, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    vs = [torch.randn(batch, HKV, ctx, D, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]

    def fn():
        for i in range(CALLS):
            F.scaled_dot_product_attention(q, ks[i % copies], vs[i % copies], enable_gqa=True)

    ms = time_calls(fn)
    del ks, vs
    torch.cuda.empty_cache()
    return ms, kv_bytes


def prefill(batch, length):
    q = torch.randn(batch, H, length, D, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(batch, HKV, length, D, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(batch, HKV, length, D, device="cuda", dtype=torch.bfloat16)

    def fn():
        for _ in range(CALLS):
            F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    ms = time_calls(fn)
    return ms, 4.0 * H * D * length * length / 2 * batch


def main():
    quick = "--quick" in sys.argv
    print(f"## PyTorch {torch.__version__} SDPA decode (H={H} Hkv={HKV} D={D} bf16, contiguous KV)")
    print("| batch | context | us/call | TB/s |\n|---|---|---|---|")
    for b in ([1, 64] if quick else [1, 4, 16, 64, 256]):
        for c in ([4096] if quick else [512, 2048, 8192, 32768]):
            try:
                ms, by = decode(b, c)
                print(f"| {b} | {c} | {ms * 1e3:.1f} | {by / (ms * 1e-3) / 1e12:.2f} |", flush=True)
            except Exception as e:  # noqa: BLE001 - report and continue (e.g. out of memory)
                print(f"| {b} | {c} | error: {type(e).__name__} | |", flush=True)
                torch.cuda.empty_cache()
    print(f"\n## PyTorch SDPA causal prefill")
    print("| batch x L | ms | TFLOP/s |\n|---|---|---|")
    for b, l in ([(1, 2048)] if quick else [(1, 2048), (1, 8192), (4, 2048), (1, 16384)]):
        ms, flops = prefill(b, l)
        print(f"| {b} x {l} | {ms:.3f} | {flops / (ms * 1e-3) / 1e12:.0f} |", flush=True)


if __name__ == "__main__":
    main()
