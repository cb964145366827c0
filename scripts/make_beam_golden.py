#!/usr/bin/env python3
"""Writes tests/golden/beam_smollm2.json: Hugging Face transformers' beam search (an
independent implementation) on the default GGUF, dequantized to float32 by transformers.

Each case: the prompt's token ids (HF tokenizer), generate(num_beams=4,
num_return_sequences=4, do_sample=False, max_new_tokens=16, length_penalty, early_stopping)
with the same end-of-sequence ids Tessera stops on (<|endoftext|> and <|im_end|>), and the
returned beams: generated ids (an EOS-finished beam ends with its EOS) and sequences_scores
(sum of logprobs / generated_len ** length_penalty).

Rerun: python3 scripts/make_beam_golden.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
(needs scripts/requirements-golden.txt).
"""
import argparse
import json
import os

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

CHAT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n")

# (prompt, length_penalty, early_stopping)
CASES = [
    ("The capital of France is", 1.0, False),
    ("Once upon a time, in a small village by the sea,", 1.0, False),
    (CHAT.format("What is the capital of France?"), 1.0, False),
    (CHAT.format("What is the capital of France?"), 2.0, False),
    (CHAT.format("Say hello."), 0.5, True),
    ("def fibonacci(n):\n", -1.0, "never"),
]
NUM_BEAMS = 4
MAX_NEW_TOKENS = 16
EOS_IDS = [0, 2]  # <|endoftext|>, <|im_end|>: Tessera's stop ids for this vocabulary


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(root, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "golden", "beam_smollm2.json"))
    args = ap.parse_args()
    model_dir, gguf_name = os.path.split(os.path.abspath(args.model))
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_name, dtype=torch.float32)
    model.eval()
    for eos in EOS_IDS:
        assert tok.convert_ids_to_tokens(eos) in ("<|endoftext|>", "<|im_end|>"), eos

    cases = []
    for prompt, length_penalty, early_stopping in CASES:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                num_beams=NUM_BEAMS, num_return_sequences=NUM_BEAMS, do_sample=False,
                max_new_tokens=MAX_NEW_TOKENS, length_penalty=length_penalty,
                early_stopping=early_stopping, eos_token_id=EOS_IDS, pad_token_id=EOS_IDS[0],
                output_scores=True, return_dict_in_generate=True,
                # Nothing from the model's generation config may change the scores.
                repetition_penalty=1.0, no_repeat_ngram_size=0, temperature=None, top_p=None,
                top_k=None)
        beams = []
        for seq, score in zip(out.sequences, out.sequences_scores):
            gen = seq[len(ids):].tolist()
            end = next((i + 1 for i, t in enumerate(gen) if t in EOS_IDS), len(gen))
            assert all(t == EOS_IDS[0] for t in gen[end:]), gen  # only padding after the EOS
            beams.append({"tokens": gen[:end], "score": float(score),
                          "text": tok.decode(gen[:end], skip_special_tokens=True)})
        cases.append({"prompt": prompt, "prompt_ids": ids, "length_penalty": length_penalty,
                      "early_stopping": early_stopping, "beams": beams})
        print(f"{prompt[-40:]!r} lp={length_penalty} es={early_stopping}: "
              f"{[(len(b['tokens']), round(b['score'], 4)) for b in beams]}")

    golden = {
        "source": "transformers {} (torch {}) generate() beam search on {}, float32".format(
            transformers.__version__, torch.__version__, gguf_name),
        "model": gguf_name,
        "num_beams": NUM_BEAMS,
        "max_new_tokens": MAX_NEW_TOKENS,
        "eos_token_ids": EOS_IDS,
        "cases": cases,
    }
    with open(args.out, "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
