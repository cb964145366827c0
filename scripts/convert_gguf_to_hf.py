#!/usr/bin/env python3
"""Convert a GGUF llama model into a Hugging Face folder Tessera's HF loader reads.

    python3 scripts/convert_gguf_to_hf.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                          [--out models/smollm2-hf]

Writes config.json, model.safetensors (float32: the exact dequantized GGUF values),
tokenizer.json and tokenizer_config.json. Weights come from transformers' own GGUF loader
(it dequantizes with the gguf package and undoes llama.cpp's Q/K row permutation), so the
folder is an independent reference for Tessera's GGUF loader.

Without torch (`--weights gguf`, the default when torch is not installed, as in CI), the
weights are dequantized by the `gguf` package (llama.cpp's own Python reference) and the
Q/K row permutation is undone here, from the GGUF layout facts; the tokenizer is the
reference one built by scripts/make_tokenizer_golden.py.

SmolLM2's real tokenizer splits every digit before the GPT-2 byte-level regex
(`tokenizer.ggml.pre = smollm`); a tokenizer rebuilt from GGUF metadata may not, so the
pre-tokenizer is set explicitly to Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)].
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--gguf", default=os.path.join(root, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(root, "models", "smollm2-hf"))
    ap.add_argument("--weights", choices=["transformers", "gguf"], default=None,
                    help="who dequantizes: transformers (needs torch) or the gguf package")
    args = ap.parse_args()
    if args.weights is None:
        try:
            import torch  # noqa: F401
            args.weights = "transformers"
        except ImportError:
            args.weights = "gguf"
    if not os.path.exists(args.gguf):
        sys.exit(f"{args.gguf}: not found (run scripts/setup.sh first)")
    if args.weights == "gguf":
        start = time.time()
        convert_with_gguf_package(args.gguf, args.out)
        check_output(args.out)
        print(f"wrote {args.out} in {time.time() - start:.1f} s (weights via the gguf package)")
        return

    import torch
    from tokenizers import pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.time()
    gguf_dir, gguf_name = os.path.split(os.path.abspath(args.gguf))
    if not os.path.exists(args.gguf):
        sys.exit(f"{args.gguf}: not found (run scripts/setup.sh first)")
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name,
                                                     dtype=torch.float32)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name,
                                                     torch_dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)

    os.makedirs(args.out, exist_ok=True)
    # transformers marks a GGUF-loaded model as quantized and refuses save_pretrained, although
    # its weights are plain float32 now; write the safetensors and config.json directly.
    from safetensors.torch import save_file
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # a view of the embedding; not stored when tied
    save_file(state, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["torch_dtype"] = "float32"
    cfg["architectures"] = ["LlamaForCausalLM"]
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)

    backend = tok.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.save_pretrained(args.out)
    # Readers of the older layout (and Tessera) expect the chat template and the BOS rule in
    # tokenizer_config.json rather than in a separate chat_template.jinja.
    tc_path = os.path.join(args.out, "tokenizer_config.json")
    tc = json.load(open(tc_path))
    tc["chat_template"] = tok.chat_template
    tc["add_bos_token"] = False
    tc["model_max_length"] = model.config.max_position_embeddings
    with open(tc_path, "w") as f:
        json.dump(tc, f, indent=2, sort_keys=True)

    check_output(args.out)
    print(f"wrote {args.out} in {time.time() - start:.1f} s")


def check_output(out):
    """Post-conditions the loaders rely on; fail loudly rather than write a subtly wrong folder."""
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg.get("model_type") == "llama", cfg.get("model_type")
    tj = json.load(open(os.path.join(out, "tokenizer.json")))
    kinds = [p["type"] for p in tj["pre_tokenizer"]["pretokenizers"]]
    assert kinds == ["Digits", "ByteLevel"], kinds


HF_LAYER_NAMES = {
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
HF_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm",
                   "output": "lm_head"}


def undo_rope_permutation(w, heads):
    """llama.cpp stores each head's Q/K rows interleaved (pairs) instead of in two halves."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def convert_with_gguf_package(gguf_path, out):
    import gguf
    import numpy as np
    from gguf.quants import dequantize
    from safetensors.numpy import save_file

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_tokenizer_golden import field, smollm2_reference

    r = gguf.GGUFReader(gguf_path)
    heads = int(field(r, "llama.attention.head_count"))
    kv_heads = int(field(r, "llama.attention.head_count_kv"))
    state = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(d) for d in reversed(t.shape.tolist())])
        base, _, suffix = t.name.rpartition(".")
        parts = base.split(".")
        if parts[0] == "blk":
            kind = parts[2]
            if kind == "attn_q":
                w = undo_rope_permutation(w, heads)
            elif kind == "attn_k":
                w = undo_rope_permutation(w, kv_heads)
            name = f"model.layers.{parts[1]}.{HF_LAYER_NAMES[kind]}.{suffix}"
        else:
            name = f"{HF_GLOBAL_NAMES[base]}.{suffix}"
        state[name] = np.ascontiguousarray(w)
    os.makedirs(out, exist_ok=True)
    save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})

    tokens = field(r, "tokenizer.ggml.tokens")
    bos, eos = int(field(r, "tokenizer.ggml.bos_token_id")), int(field(r, "tokenizer.ggml.eos_token_id"))
    hidden = int(field(r, "llama.embedding_length"))
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32",
        "vocab_size": len(tokens), "hidden_size": hidden,
        "intermediate_size": int(field(r, "llama.feed_forward_length")),
        "num_hidden_layers": int(field(r, "llama.block_count")),
        "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads,
        "max_position_embeddings": int(field(r, "llama.context_length")),
        "rms_norm_eps": float(field(r, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(field(r, "llama.rope.freq_base")),
        "tie_word_embeddings": "lm_head.weight" not in state,
        "bos_token_id": bos, "eos_token_id": eos,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)

    tok, chat_template = smollm2_reference(gguf_path)
    tok.save(os.path.join(out, "tokenizer.json"))
    tc = {"chat_template": chat_template, "add_bos_token": False, "bos_token": tokens[bos],
          "eos_token": tokens[eos], "model_max_length": cfg["max_position_embeddings"]}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
