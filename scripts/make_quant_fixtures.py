#!/usr/bin/env python3
"""Small quantized models for Tessera's loader tests, each with reference weights decoded by
an implementation independent of Tessera's (numpy, written from each format's published
description, or the gguf package for GGUF blocks).

    python3 scripts/make_quant_fixtures.py [--out build/quant_fixtures]

Writes, under --out:
  kquant.gguf            a 2-layer Llama whose weights are Q4_K / Q5_K / Q6_K (layer 0, the
                         embedding, the LM head) and Q4_0 / Q4_1 / Q8_0 (layer 1), random
                         blocks decoded by gguf.quants.dequantize
  fp8_ct_tensor/ ...     Hugging Face folders (config.json with quantization_config +
                         model.safetensors): FP8 compressed-tensors and "fp8" kinds, AWQ
                         (GEMM), GPTQ (sym, asym with act order, v1 and v2 zero formats)
and beside every model reference.safetensors: each projection as f32 [out, in] under its
canonical (GGUF) name, plus a JSON file expect.json with the scheme each should load as.
Deterministic (fixed seeds); takes a few seconds.
"""
import argparse
import json
import os

import numpy as np

from quant_fixtures_hf import HF_CASES, write_hf_case
from quant_fixtures_util import write_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# GGUF test model: every K-quant needs cols % 256 == 0.
GGUF_SHAPE = dict(hidden=256, ffn=512, heads=4, kv_heads=2, vocab=320, layers=2)


def kquant_blocks(rng, qtype, rows, cols):
    """Random bytes of a [rows, cols] tensor of qtype, with its fp16 super-block scales
    replaced by small finite values so weights stay near N(0, 0.02) in size."""
    from gguf import GGML_QUANT_SIZES
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    nblocks = rows * cols // block_elems
    raw = rng.integers(0, 256, size=(nblocks, block_bytes), dtype=np.uint8)
    from gguf import GGMLQuantizationType as T

    def put_half(offset, values):
        raw[:, offset:offset + 2] = values.astype(np.float16).view(np.uint8).reshape(-1, 2)

    if qtype in (T.Q4_K, T.Q5_K):
        put_half(0, rng.uniform(0.5e-4, 2e-4, nblocks))  # d
        put_half(2, rng.uniform(0.5e-4, 2e-4, nblocks))  # dmin
    elif qtype == T.Q6_K:
        put_half(208, rng.uniform(0.5e-5, 2e-5, nblocks))
    elif qtype in (T.Q8_0, T.Q4_0):
        put_half(0, rng.uniform(1e-3, 5e-3, nblocks))
    elif qtype == T.Q4_1:
        put_half(0, rng.uniform(1e-3, 5e-3, nblocks))
        put_half(2, rng.uniform(-0.04, -0.01, nblocks))
    return raw.reshape(rows, -1)


def write_gguf_case(out_dir):
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize

    s = GGUF_SHAPE
    rng = np.random.default_rng(9001)
    h, ffn, hd = s["hidden"], s["ffn"], s["hidden"] // s["heads"]
    kv = s["kv_heads"] * hd
    path = os.path.join(out_dir, "kquant.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("kquant-test")
    w.add_block_count(s["layers"])
    w.add_embedding_length(h)
    w.add_feed_forward_length(ffn)
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_context_length(512)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    refs, types = {}, {}

    def add(name, qtype, rows, cols):
        raw = kquant_blocks(rng, qtype, rows, cols)
        w.add_tensor(name, raw, raw_dtype=qtype)
        refs[name] = dequantize(raw, qtype).reshape(rows, cols).astype(np.float32)
        types[name] = qtype.name.lower().replace("_k", "_K")

    def add_norm(name):
        g = (1.0 + rng.normal(0, 0.02, h)).astype(np.float32)
        w.add_tensor(name, g)
        refs[name] = g.reshape(1, h)
        types[name] = "f32"

    add("token_embd.weight", T.Q6_K, s["vocab"], h)
    add_norm("output_norm.weight")
    add("output.weight", T.Q4_K, s["vocab"], h)
    layer_types = [
        dict(q=T.Q4_K, k=T.Q5_K, v=T.Q6_K, o=T.Q4_K, gate=T.Q5_K, up=T.Q4_K, down=T.Q6_K),
        dict(q=T.Q4_0, k=T.Q4_1, v=T.Q8_0, o=T.Q5_K, gate=T.Q4_0, up=T.Q4_1, down=T.Q8_0),
    ]
    for layer, lt in enumerate(layer_types):
        p = f"blk.{layer}."
        add_norm(p + "attn_norm.weight")
        add(p + "attn_q.weight", lt["q"], h, h)
        add(p + "attn_k.weight", lt["k"], kv, h)
        add(p + "attn_v.weight", lt["v"], kv, h)
        add(p + "attn_output.weight", lt["o"], h, h)
        add_norm(p + "ffn_norm.weight")
        add(p + "ffn_gate.weight", lt["gate"], ffn, h)
        add(p + "ffn_up.weight", lt["up"], ffn, h)
        add(p + "ffn_down.weight", lt["down"], h, ffn)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    write_safetensors(os.path.join(out_dir, "kquant.reference.safetensors"),
                      {k: ("F32", v) for k, v in refs.items()})
    with open(os.path.join(out_dir, "kquant.expect.json"), "w") as f:
        json.dump({"types": types}, f, indent=1, sort_keys=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "quant_fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_gguf_case(args.out)
    for name in HF_CASES:
        write_hf_case(os.path.join(args.out, name), name)
    # Written last: a complete set is marked by this file (the tests regenerate without it).
    with open(os.path.join(args.out, "VERSION"), "w") as f:
        f.write("1\n")
    print(f"make_quant_fixtures: wrote {args.out}")


if __name__ == "__main__":
    main()
