#!/usr/bin/env python3
"""Golden values for Tessera's host dequantizers, from the gguf package (llama.cpp's own
Python reference), an implementation independent of ours.

    python3 scripts/make_loader_golden.py   # writes tests/golden/loader_dequant.json

Two parts:
  * "blocks": random bytes of every supported type (Q8_0, Q4_0, Q4_1, F16, BF16; fixed seed),
    scales forced finite, and their dequantized values;
  * "model": for a few tensors of the default GGUF (when present), a few rows' first values
    and float64 sums over the whole tensor.
"""
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf.quants import dequantize, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "tests", "golden", "loader_dequant.json")


def random_blocks(rng, qtype, n):
    """Bytes of n values of qtype: quantized random values plus raw random bytes whose fp16
    scales are replaced with finite ones, so every nibble / int8 pattern appears."""
    values = rng.normal(0.0, 0.05, size=n).astype(np.float32)
    if qtype in (T.F16, T.BF16):
        return quantize(values, qtype).view(np.uint8).tobytes()
    block_bytes = {T.Q8_0: 34, T.Q4_0: 18, T.Q4_1: 20}[qtype]
    raw = rng.integers(0, 256, size=(n // 32, block_bytes), dtype=np.uint8)
    scales = rng.normal(0.0, 0.01, size=(n // 32, 2)).astype(np.float16).view(np.uint8)
    raw[:, 0:2] = scales[:, 0:2]
    if qtype == T.Q4_1:
        raw[:, 2:4] = scales[:, 2:4]
    return raw.tobytes()


def block_cases():
    rng = np.random.default_rng(20241129)
    cases = []
    for name, qtype in [("q8_0", T.Q8_0), ("q4_0", T.Q4_0), ("q4_1", T.Q4_1), ("f16", T.F16),
                        ("bf16", T.BF16)]:
        n = 256
        data = random_blocks(rng, qtype, n)
        deq = dequantize(np.frombuffer(data, dtype=np.uint8), qtype).reshape(-1)
        assert deq.size == n, (name, deq.size)
        cases.append({"dtype": name, "n": n, "bytes_hex": data.hex(),
                      "values": [float(v) for v in deq.astype(np.float32)]})
    return cases


def model_cases():
    if not os.path.exists(MODEL):
        print(f"{MODEL} missing: writing block cases only")
        return []
    reader = GGUFReader(MODEL)
    wanted = ["token_embd.weight", "blk.0.attn_q.weight", "blk.7.ffn_down.weight",
              "blk.29.attn_v.weight", "output_norm.weight"]
    out = []
    for t in reader.tensors:
        if t.name not in wanted:
            continue
        deq = dequantize(t.data, t.tensor_type).astype(np.float32)
        rows, cols = int(t.shape[1]) if len(t.shape) > 1 else 1, int(t.shape[0])
        deq = deq.reshape(rows, cols)
        pick = sorted({0, min(1, rows - 1), rows // 2, rows - 1})
        out.append({
            "name": t.name, "rows": rows, "cols": cols,
            "row_values": {str(r): [float(v) for v in deq[r, :64]] for r in pick},
            "sum": float(deq.astype(np.float64).sum()),
            "abs_sum": float(np.abs(deq.astype(np.float64)).sum()),
        })
    return out


def main():
    golden = {"generator": "scripts/make_loader_golden.py (gguf.quants)",
              "blocks": block_cases(), "model": model_cases()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(golden, f, indent=1)
    print(f"wrote {OUT}: {len(golden['blocks'])} block cases, {len(golden['model'])} tensors")


if __name__ == "__main__":
    main()
