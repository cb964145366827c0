#!/usr/bin/env python3
"""Writes a small llama model given as Hugging Face tensors (numpy arrays) into a GGUF file
that carries the served model's tokenizer and chat template, so Tessera can load it as a
`--draft-model` for that model. Needs numpy and the `gguf` package only (no torch), so CI
exercises it; `scripts/distill_draft.py` trains the tensors it writes.

Layout facts it applies (from the GGUF llama convention): a [out, in] weight is stored with
shape (in, out) in GGUF's fastest-first order, which is numpy's [out, in] unchanged; each
head's Q and K rows are interleaved in pairs (llama.cpp's RoPE rotates adjacent pairs, the
Hugging Face layout rotates halves); norms stay f32.
"""
import numpy as np

import gguf

GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight",
                "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
LAYER_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# Keys of the served model's GGUF that describe its shape or its file, not its tokenizer;
# the draft sets its own.
SHAPE_KEYS = ("llama.block_count", "llama.embedding_length", "llama.feed_forward_length",
              "llama.attention.head_count", "llama.attention.head_count_kv", "general.file_type",
              "general.name", "general.size_label", "general.quantization_version")
FILE_TYPES = {"f32": (gguf.LlamaFileType.ALL_F32, np.float32),
              "f16": (gguf.LlamaFileType.MOSTLY_F16, np.float16),
              "bf16": (gguf.LlamaFileType.MOSTLY_BF16, None)}


def rope_interleave(w, heads):
    """Hugging Face Q/K rows (each head's two halves) -> llama.cpp's (adjacent pairs)."""
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf_name):
    if hf_name in GLOBAL_NAMES:
        return GLOBAL_NAMES[hf_name]
    parts = hf_name.split(".")
    if parts[:2] != ["model", "layers"]:
        raise ValueError(f"unexpected tensor {hf_name}")
    module = ".".join(parts[3:-1])
    if module not in LAYER_NAMES:
        raise ValueError(f"unexpected tensor {hf_name}")
    return f"blk.{parts[2]}.{LAYER_NAMES[module]}.{parts[-1]}"


def copy_fields(reader, writer):
    """Every key-value of the served model's file except the shape and GGUF's own."""
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in SHAPE_KEYS:
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, f.contents(), vtype, sub_type=sub)


def to_bf16_bits(w):
    """f32 -> bf16 bit patterns, rounded to nearest even (numpy has no bf16)."""
    bits = np.ascontiguousarray(w, dtype=np.float32).view(np.uint32)
    rounded = bits + (0x7FFF + ((bits >> 16) & 1))
    return (rounded >> 16).astype(np.uint16)


def write_draft_gguf(teacher_gguf, out_path, tensors, config, dtype="bf16", name="draft"):
    """tensors: Hugging Face name -> float array; config: num_hidden_layers, hidden_size,
    intermediate_size, num_attention_heads, num_key_value_heads (a transformers config dict).
    Returns the number of tensors written."""
    if dtype not in FILE_TYPES:
        raise ValueError(f"dtype must be one of {sorted(FILE_TYPES)}")
    reader = gguf.GGUFReader(teacher_gguf)
    arch = reader.fields["general.architecture"].contents()
    if arch != "llama":
        raise ValueError(f"{teacher_gguf}: architecture {arch}, only llama is supported")
    vocab = len(reader.fields["tokenizer.ggml.tokens"].contents())
    emb = tensors["model.embed_tokens.weight"]
    if emb.shape[0] != vocab:
        raise ValueError(f"draft vocabulary {emb.shape[0]} != the served model's {vocab}")
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    file_type, np_dtype = FILE_TYPES[dtype]

    writer = gguf.GGUFWriter(out_path, arch)
    writer.add_name(name)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_file_type(file_type)
    copy_fields(reader, writer)

    for hf_name in sorted(tensors):
        w = np.asarray(tensors[hf_name], dtype=np.float32)
        if hf_name.endswith("q_proj.weight"):
            w = rope_interleave(w, heads)
        elif hf_name.endswith("k_proj.weight"):
            w = rope_interleave(w, kv_heads)
        name_out = gguf_name(hf_name)
        w = np.ascontiguousarray(w)
        if w.ndim == 1 or dtype == "f32":
            writer.add_tensor(name_out, w)
        elif dtype == "bf16":
            writer.add_tensor(name_out, to_bf16_bits(w), raw_shape=w.shape,
                              raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            writer.add_tensor(name_out, w.astype(np_dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return len(tensors)
