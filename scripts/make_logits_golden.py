#!/usr/bin/env python3
"""Writes the forward-pass golden files from Hugging Face transformers (an independent
implementation) on the default GGUF, dequantized exactly to float32:

  tests/golden/logits_smollm2.json  prompts, their token ids (HF tokenizer), the greedy
                                    64-token continuation (no EOS stop), top-5 per prompt
  tests/golden/logits_smollm2.bin   last-position logits of every prompt, float32 little
                                    endian, [num_prompts, vocab] (full rows, so that a
                                    relative error < 1e-3 can be checked exactly)

Rerun: python3 scripts/make_logits_golden.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

CHAT = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    CHAT.format("What is the capital of France?"),
    CHAT.format("Write a haiku about the ocean."),
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "1, 2, 3, 4, 5, 6, 7, 8,",
    "The quick brown fox jumps over the lazy dog. " * 12,
    "Translate to French: I would like a cup of coffee, please.\nFrench:",
    "Der schnelle braune Fuchs springt über den faulen Hund, und dann",
    "東京は日本の首都です。大阪は",
    "Q: What is 12 times 12?\nA:",
    "import numpy as np\nx = np.linspace(0, 1, 100)\ny =",
    "   lots   of    spaces\t\tand tabs\n\n\nand newlines",
    "Photosynthesis is the process by which plants",
    CHAT.format("Explain gravity to a five year old in two sentences."),
    "<html>\n<head><title>My page</title></head>\n<body>\n",
    "The meaning of life is",
    "Emoji test 😀🎉🚀 and accents: café, naïve, résumé. Then",
    "In 1969, Neil Armstrong",
    ("Machine learning is a field of study in artificial intelligence concerned with the "
     "development and study of statistical algorithms that can learn from data and generalize "
     "to unseen data, and thus perform tasks without explicit instructions. Within a subdiscipline "
     "in machine learning, advances in the field of deep learning have allowed neural networks to "
     "surpass many previous approaches in performance. ML finds application in many fields, "
     "including natural language processing, computer vision, speech recognition, email "
     "filtering, agriculture, and medicine. The application of ML to business problems is known "
     "as predictive analytics. In summary,"),
]

NEW_TOKENS = 64


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(root, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "golden"))
    args = ap.parse_args()
    model_dir, gguf_name = os.path.split(os.path.abspath(args.model))
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_name, dtype=torch.float32)
    model.eval()

    records, rows = [], []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tok(prompt, add_special_tokens=False).input_ids
            out = model(torch.tensor([ids]), use_cache=True)
            last = out.logits[0, -1].float()
            rows.append(last.numpy().astype("<f4"))
            # Greedy continuation by hand so EOS does not stop it and no logit is altered.
            past = out.past_key_values
            cont, margins = [], []
            logits = last
            for _ in range(NEW_TOKENS):
                top2 = torch.topk(logits, 2)
                nxt = int(top2.indices[0])
                margins.append(float(top2.values[0] - top2.values[1]))
                cont.append(nxt)
                step = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
                past = step.past_key_values
                logits = step.logits[0, -1].float()
            top5 = torch.topk(last, 5)
            records.append({
                "prompt": prompt,
                "ids": ids,
                "greedy": cont,
                "greedy_text": tok.decode(cont),
                "min_greedy_margin": min(margins),
                "top5_ids": [int(i) for i in top5.indices],
                "top5_logits": [float(v) for v in top5.values],
            })
            print(f"{len(ids):4d} ids, min margin {min(margins):.4f}: {prompt[:40]!r} -> {tok.decode(cont)[:60]!r}",
                  file=sys.stderr)

    vocab = int(rows[0].shape[0])
    os.makedirs(args.out, exist_ok=True)
    np.stack(rows).astype("<f4").tofile(os.path.join(args.out, "logits_smollm2.bin"))
    meta = {
        "source": "transformers %s, torch %s, float32, %s" % (__import__("transformers").__version__,
                                                             torch.__version__, gguf_name),
        "model": gguf_name,
        "vocab": vocab,
        "logits_file": "logits_smollm2.bin",
        "logits_layout": "float32 little endian [num_prompts, vocab], last position of each prompt",
        "new_tokens": NEW_TOKENS,
        "prompts": records,
    }
    with open(os.path.join(args.out, "logits_smollm2.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
