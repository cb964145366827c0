#!/usr/bin/env python3
"""Convert a GGUF llama model into a Hugging Face folder Tessera's HF loader reads.

    python3 scripts/convert_gguf_to_hf.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                          [--out models/smollm2-hf]

Writes config.json, model.safetensors (float32: the exact dequantized GGUF values),
tokenizer.json and tokenizer_config.json. Weights come from transformers' own GGUF loader
(it dequantizes with the gguf package and undoes llama.cpp's Q/K row permutation), so the
folder is an independent reference for Tessera's GGUF loader.

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
    args = ap.parse_args()

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

    # Post-conditions the loaders rely on; fail loudly rather than write a subtly wrong folder.
    cfg = json.load(open(os.path.join(args.out, "config.json")))
    assert cfg.get("model_type") == "llama", cfg.get("model_type")
    tj = json.load(open(os.path.join(args.out, "tokenizer.json")))
    kinds = [p["type"] for p in tj["pre_tokenizer"]["pretokenizers"]]
    assert kinds == ["Digits", "ByteLevel"], kinds
    print(f"wrote {args.out} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
