"""Quantized Hugging Face folders for scripts/make_quant_fixtures.py. Packing and decoding
follow the formats' published descriptions:
  * FP8 (compressed-tensors "float-quantized", and vLLM's "fp8" quant_method): weight is
    F8_E4M3 [out, in]; w = fp8 * weight_scale (per tensor, or per output channel [out, 1]);
    input_scale is the static activation scale (absent when dynamic).
  * AWQ GEMM (AutoAWQ): qweight int32 [in, out / 8], eight 4-bit values per int32 in the
    interleaved order 0, 2, 4, 6, 1, 3, 5, 7 (nibble i holds column 8c + order[i]); qzeros
    int32 [in / g, out / 8] packed alike; scales fp16 [in / g, out]; w = (q - z) * s.
  * GPTQ (AutoGPTQ): qweight int32 [in / 8, out], nibble k of row r holds input 8r + k;
    qzeros int32 [groups, out / 8], nibble k holds column 8c + k, stored minus one in the
    v1 format ("gptq") and as is in "gptq_v2"; scales fp16 [groups, out]; g_idx int32 [in]
    gives each input's group (a permutation of groups with act order / desc_act);
    w[o, i] = (q[i, o] - z[g_idx[i], o]) * s[g_idx[i], o].
"""
import json
import os

import numpy as np

from quant_fixtures_util import (bf16_decode, bf16_encode, e4m3_decode, e4m3_encode,
                                 write_safetensors)

SHAPE = dict(hidden=256, ffn=512, heads=4, kv_heads=2, vocab=320, layers=1)
GROUP = 128
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]

HF_CASES = {
    "fp8_ct_tensor_static": dict(method="ct", strategy="tensor", static=True),
    "fp8_ct_channel_dynamic": dict(method="ct", strategy="channel", static=False),
    "fp8_kind_static": dict(method="fp8", strategy="tensor", static=True),
    "fp8_kind_dynamic": dict(method="fp8", strategy="tensor", static=False),
    "awq_gemm": dict(method="awq"),
    "gptq_sym": dict(method="gptq", sym=True, act_order=False, v2=False),
    "gptq_asym_actorder": dict(method="gptq", sym=False, act_order=True, v2=False),
    "gptq_v2_asym": dict(method="gptq", sym=False, act_order=False, v2=True),
}

PROJ = [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"),
        ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down")]


def proj_shapes():
    h, ffn, hd = SHAPE["hidden"], SHAPE["ffn"], SHAPE["hidden"] // SHAPE["heads"]
    kv = SHAPE["kv_heads"] * hd
    return {"attn_q": (h, h), "attn_k": (kv, h), "attn_v": (kv, h), "attn_output": (h, h),
            "ffn_gate": (ffn, h), "ffn_up": (ffn, h), "ffn_down": (h, ffn)}


def pack_nibbles(q, order=None):
    """q: uint [..., 8n] -> int32 [..., n]; nibble i of word c = q[..., 8c + order[i]]."""
    order = order or list(range(8))
    q = q.astype(np.uint32).reshape(*q.shape[:-1], -1, 8)
    word = np.zeros(q.shape[:-1], dtype=np.uint32)
    for i, src in enumerate(order):
        word |= (q[..., src] & 0xF) << np.uint32(4 * i)
    return word.view(np.int32)


def unpack_nibbles(words, order=None):
    """Inverse of pack_nibbles: int32 [..., n] -> int [..., 8n]."""
    order = order or list(range(8))
    w = words.view(np.uint32)
    out = np.zeros((*w.shape, 8), dtype=np.int64)
    for i, dst in enumerate(order):
        out[..., dst] = (w >> np.uint32(4 * i)) & 0xF
    return out.reshape(*w.shape[:-1], -1)


def fp8_tensors(rng, base, W, case):
    """Quantized tensors of one Linear and its reference [out, in]."""
    out = {}
    if case["strategy"] == "channel":
        scale = bf16_decode(bf16_encode(np.abs(W).max(axis=1) / 448.0))  # bf16 [out]
        out[base + ".weight_scale"] = ("BF16", bf16_encode(scale).reshape(-1, 1))
        per_row = scale[:, None]
    else:
        scale = np.float32(np.abs(W).max() / 448.0)
        shape = (1,) if case["method"] == "ct" else ()
        out[base + ".weight_scale"] = ("F32", np.full(shape, scale, dtype=np.float32))
        per_row = np.full((W.shape[0], 1), scale, dtype=np.float32)
    q = e4m3_encode(W / per_row)
    out[base + ".weight"] = ("F8_E4M3", q)
    act = np.float32(rng.uniform(0.01, 0.05))
    if case["static"]:
        shape = (1,) if case["method"] == "ct" else ()
        out[base + ".input_scale"] = ("F32", np.full(shape, act, dtype=np.float32))
    ref = e4m3_decode(q) * per_row
    expect = dict(kind="fp8", per_channel=case["strategy"] == "channel",
                  act_scale=float(act) if case["static"] else 0.0)
    return out, ref.astype(np.float32), expect


def asym_params(Wg):
    """Per-column 4-bit min/max scale and zero (1..15) of a group Wg [n, cols]."""
    lo, hi = np.minimum(Wg.min(axis=0), 0), np.maximum(Wg.max(axis=0), 0)
    s = np.float16((hi - lo) / 15.0).astype(np.float32)
    z = np.clip(np.round(-lo / s), 1, 15).astype(np.int64)
    return s, z


def awq_tensors(rng, base, W, case):
    Wt = W.T  # AWQ stores [in, out]
    n_in, n_out = Wt.shape
    groups = n_in // GROUP
    q = np.zeros(Wt.shape, dtype=np.int64)
    S = np.zeros((groups, n_out), dtype=np.float32)
    Z = np.zeros((groups, n_out), dtype=np.int64)
    for g in range(groups):
        rows = slice(g * GROUP, (g + 1) * GROUP)
        S[g], Z[g] = asym_params(Wt[rows])
        q[rows] = np.clip(np.round(Wt[rows] / S[g]) + Z[g], 0, 15)
    out = {base + ".qweight": ("I32", pack_nibbles(q, AWQ_ORDER)),
           base + ".qzeros": ("I32", pack_nibbles(Z, AWQ_ORDER)),
           base + ".scales": ("F16", S.astype(np.float16))}
    # Reference: decoded from the packed words as AutoAWQ does (shift out nibbles 0..7, then
    # put them back in column order with the reverse order 0, 4, 1, 5, 2, 6, 3, 7).
    def awq_unpack(words):
        w = words.view(np.uint32)
        nib = (w[..., None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF
        return nib[..., [0, 4, 1, 5, 2, 6, 3, 7]].reshape(*w.shape[:-1], -1).astype(np.int64)

    qd = awq_unpack(out[base + ".qweight"][1])
    zd = awq_unpack(out[base + ".qzeros"][1])
    sd = out[base + ".scales"][1].astype(np.float32)
    gi = np.arange(n_in) // GROUP
    ref = ((qd - zd[gi]).astype(np.float32) * sd[gi]).T
    expect = dict(kind="int4", group_size=GROUP, has_zeros=True, act_order=False)
    return out, ref.astype(np.float32), expect


def gptq_tensors(rng, base, W, case):
    Wt = W.T  # [in, out]
    n_in, n_out = Wt.shape
    groups = n_in // GROUP
    if case["act_order"]:
        perm = rng.permutation(n_in)  # desc_act: columns quantized in this order
        g_idx = np.empty(n_in, dtype=np.int32)
        g_idx[perm] = np.arange(n_in) // GROUP
    else:
        g_idx = (np.arange(n_in) // GROUP).astype(np.int32)
    S = np.zeros((groups, n_out), dtype=np.float32)
    Z = np.zeros((groups, n_out), dtype=np.int64)
    for g in range(groups):
        Wg = Wt[g_idx == g]
        if case["sym"]:
            S[g] = np.float16(np.abs(Wg).max(axis=0) / 7.0).astype(np.float32)
            Z[g] = 8
        else:
            S[g], Z[g] = asym_params(Wg)
    q = np.clip(np.round(Wt / S[g_idx]) + Z[g_idx], 0, 15).astype(np.int64)
    stored_z = Z if case["v2"] else Z - 1
    qweight = pack_nibbles(q.T).T  # pack along in: [in / 8, out]
    out = {base + ".qweight": ("I32", np.ascontiguousarray(qweight)),
           base + ".qzeros": ("I32", pack_nibbles(stored_z)),
           base + ".scales": ("F16", S.astype(np.float16)),
           base + ".g_idx": ("I32", g_idx)}
    qd = unpack_nibbles(np.ascontiguousarray(qweight.T)).T  # [in, out]
    zd = unpack_nibbles(out[base + ".qzeros"][1]) + (0 if case["v2"] else 1)
    sd = out[base + ".scales"][1].astype(np.float32)
    ref = ((qd - zd[g_idx]).astype(np.float32) * sd[g_idx]).T
    expect = dict(kind="int4", group_size=GROUP, has_zeros=not case["sym"],
                  act_order=case["act_order"])
    return out, ref.astype(np.float32), expect


def quant_config(case):
    if case["method"] == "ct":
        weights = dict(num_bits=8, type="float", symmetric=True, dynamic=False,
                       strategy=case["strategy"])
        acts = dict(num_bits=8, type="float", symmetric=True, dynamic=not case["static"],
                    strategy="tensor" if case["static"] else "token")
        return dict(quant_method="compressed-tensors", format="float-quantized",
                    quantization_status="compressed", ignore=["lm_head"],
                    config_groups=dict(group_0=dict(targets=["Linear"], weights=weights,
                                                    input_activations=acts)))
    if case["method"] == "fp8":
        return dict(quant_method="fp8", activation_scheme="static" if case["static"] else
                    "dynamic")
    if case["method"] == "awq":
        return dict(quant_method="awq", bits=4, group_size=GROUP, zero_point=True,
                    version="gemm")
    return dict(quant_method="gptq", bits=4, group_size=GROUP, desc_act=case["act_order"],
                sym=case["sym"], checkpoint_format="gptq_v2" if case["v2"] else "gptq")


def write_hf_case(out_dir, name):
    case = HF_CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)) * 7919)
    os.makedirs(out_dir, exist_ok=True)
    s = SHAPE
    config = dict(architectures=["LlamaForCausalLM"], model_type="llama",
                  hidden_size=s["hidden"], intermediate_size=s["ffn"],
                  num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
                  num_hidden_layers=s["layers"], vocab_size=s["vocab"], rms_norm_eps=1e-5,
                  rope_theta=10000.0, max_position_embeddings=512, tie_word_embeddings=False,
                  torch_dtype="bfloat16", quantization_config=quant_config(case))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    make = {"ct": fp8_tensors, "fp8": fp8_tensors, "awq": awq_tensors,
            "gptq": gptq_tensors}[case["method"]]

    def bf16(shape, mean=0.0):
        return ("BF16", bf16_encode(mean + rng.normal(0, 0.02, shape).astype(np.float32)))

    tensors = {"model.embed_tokens.weight": bf16((s["vocab"], s["hidden"])),
               "model.norm.weight": bf16((s["hidden"],), 1.0),
               "lm_head.weight": bf16((s["vocab"], s["hidden"]))}
    refs, expect = {}, {}
    for layer in range(s["layers"]):
        p = f"model.layers.{layer}."
        tensors[p + "input_layernorm.weight"] = bf16((s["hidden"],), 1.0)
        tensors[p + "post_attention_layernorm.weight"] = bf16((s["hidden"],), 1.0)
        for hf, ours in PROJ:
            rows, cols = proj_shapes()[ours]
            W = rng.normal(0, 0.02, (rows, cols)).astype(np.float32)
            t, ref, exp = make(rng, p + hf, W, case)
            tensors.update(t)
            canon = f"blk.{layer}.{ours}.weight"
            refs[canon] = ("F32", ref)
            expect[canon] = exp
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    write_safetensors(os.path.join(out_dir, "reference.safetensors"), refs)
    with open(os.path.join(out_dir, "expect.json"), "w") as f:
        json.dump(expect, f, indent=1, sort_keys=True)
