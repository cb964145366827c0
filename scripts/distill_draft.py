#!/usr/bin/env python3
"""Trains a small draft model for `tessera serve --speculative draft --draft-model` from the
served model itself (self-distillation), and exports it as GGUF.

  python3 scripts/distill_draft.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --out draft.gguf [--layers 4] [--device cuda] [--steps 1500] [--prompts 2048]

1. Teacher: the served GGUF, dequantized into a Hugging Face folder
   (scripts/convert_gguf_to_hf.py, through the gguf package) and loaded by transformers.
2. Text: the teacher answers the prompts of scripts/distill_prompts.py (open instructions,
   copying and editing license texts, Python functions; none of bench/spec_bench.py's), once
   greedily and once sampled (temperature 0.8, top-p 0.95), in the served chat template.
3. Student: --layers of the teacher's decoder layers, spread evenly (first and last
   included), with its embeddings, final norm and tied head; trained to match the teacher's
   next-token distribution (KL divergence) at every position of those conversations.
4. Report: the student's top-1 agreement with the teacher on held-out answers (what a greedy
   draft token's acceptance rate is), before and after training, to stdout and --report.
5. Export: scripts/draft_gguf.py; the file is read back by transformers' own GGUF loader and
   its logits checked against the trained student.
Needs torch and transformers (scripts/requirements-golden.txt); a GPU makes it minutes.
"""
import argparse
import json
import math
import os
import random
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from distill_prompts import build_prompts  # noqa: E402
from draft_gguf import write_draft_gguf  # noqa: E402


def log(msg):
    print(f"[distill {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_teacher(gguf_path, hf_dir, device):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if not os.path.exists(os.path.join(hf_dir, "model.safetensors")):
        from convert_gguf_to_hf import check_output, convert_with_gguf_package
        log(f"dequantizing {gguf_path} into {hf_dir}")
        convert_with_gguf_package(gguf_path, hf_dir)
        check_output(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).to(device).eval()
    tok = AutoTokenizer.from_pretrained(hf_dir)
    return model, tok


@torch.no_grad()
def generate(teacher, tok, prompts, args, device):
    """Token sequences (prompt + answer, cut after the first EOS) and their prompt lengths."""
    eos = teacher.config.eos_token_id
    chats = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                     add_generation_prompt=True) for p in prompts]
    encoded = [tok(c, add_special_tokens=False)["input_ids"][:args.max_prompt_tokens]
               for c in chats]
    out = []
    batches = [(i, sample) for sample in (False, True)
               for i in range(0, len(encoded), args.gen_batch)]
    for n, (i, sample) in enumerate(batches):
        chunk = encoded[i:i + args.gen_batch]
        width = max(len(e) for e in chunk)
        ids = torch.full((len(chunk), width), eos, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, e in enumerate(chunk):  # left padding: every answer starts at the same column
            ids[j, width - len(e):] = torch.tensor(e)
            mask[j, width - len(e):] = 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            gen = teacher.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                   max_new_tokens=args.max_new_tokens, do_sample=sample,
                                   temperature=0.8 if sample else None,
                                   top_p=0.95 if sample else None, top_k=None,
                                   pad_token_id=eos, eos_token_id=eos)
        for j, e in enumerate(chunk):
            answer = gen[j, width:].tolist()
            if eos in answer:
                answer = answer[:answer.index(eos) + 1]
            if answer:
                out.append((e + answer, len(e)))
        log(f"generated batch {n + 1}/{len(batches)} ({len(out)} sequences)")
    return out


def make_student(teacher, layers):
    from transformers import LlamaForCausalLM
    cfg = teacher.config.to_dict()
    cfg["num_hidden_layers"] = len(layers)
    cfg.pop("layer_types", None)
    student_cfg = type(teacher.config).from_dict(cfg)
    student = LlamaForCausalLM(student_cfg)
    state = teacher.state_dict()
    picked = {}
    for k, v in state.items():
        if k.startswith("model.layers."):
            idx = int(k.split(".")[2])
            if idx in layers:
                rest = k.split(".", 3)[3]
                picked[f"model.layers.{layers.index(idx)}.{rest}"] = v.clone()
        else:
            picked[k] = v.clone()
    missing, unexpected = student.load_state_dict(picked, strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    if student_cfg.tie_word_embeddings:
        student.tie_weights()
    return student


def pad_batch(seqs, pad, device):
    width = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    answer = torch.zeros_like(ids, dtype=torch.bool)
    for j, (s, plen) in enumerate(seqs):
        ids[j, :len(s)] = torch.tensor(s)
        mask[j, :len(s)] = 1
        answer[j, plen - 1:len(s) - 1] = True  # positions whose next token is the answer's
    return ids.to(device), mask.to(device), answer.to(device)


def logits_of(model, ids, mask, device):
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model(input_ids=ids, attention_mask=mask).logits.float()


@torch.no_grad()
def agreement(student, teacher, seqs, args, device, pad):
    """Fraction of answer positions where the student's top token is the teacher's."""
    student.eval()
    hit = total = 0
    for i in range(0, len(seqs), args.batch):
        ids, mask, answer = pad_batch(seqs[i:i + args.batch], pad, device)
        t = logits_of(teacher, ids, mask, device).argmax(-1)
        s = logits_of(student, ids, mask, device).argmax(-1)
        hit += int(((t == s) & answer).sum())
        total += int(answer.sum())
    student.train()
    return hit / max(total, 1)


def train(student, teacher, train_seqs, eval_seqs, args, device, pad):
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=args.lr,
                            betas=(0.9, 0.98), weight_decay=0.0)
    rng = random.Random(args.seed)
    student.train()
    for step in range(1, args.steps + 1):
        warmup = max(1, min(50, args.steps // 10))
        lr = args.lr * min(1.0, step / warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        ids, mask, _ = pad_batch(rng.sample(train_seqs, min(args.batch, len(train_seqs))), pad,
                                 device)
        with torch.no_grad():
            target = F.log_softmax(logits_of(teacher, ids, mask, device), -1)
        pred = F.log_softmax(logits_of(student, ids, mask, device), -1)
        kl = (target.exp() * (target - pred)).sum(-1)
        loss = (kl * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0 or step == args.steps:
            log(f"step {step}/{args.steps}: KL {loss.item():.4f}, lr {lr:.2e}")
    return agreement(student, teacher, eval_seqs, args, device, pad)


def check_export(path, student, seqs, device, pad, dtype):
    """Logits of the written GGUF (transformers' GGUF loader) against the trained student with
    its weights rounded to the file's dtype (norms stay f32 in the file)."""
    import copy
    from transformers import AutoModelForCausalLM
    ref = copy.deepcopy(student).float().eval()
    if dtype != "f32":
        with torch.no_grad():
            for name, p in ref.named_parameters():
                if p.dim() == 2:
                    p.copy_(p.to(torch.bfloat16 if dtype == "bf16" else torch.float16).float())
    folder, name = os.path.split(os.path.abspath(path))
    back = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    back = back.to(device).eval()
    ids, mask, _ = pad_batch(seqs[:4], pad, device)
    with torch.no_grad():
        a = back(input_ids=ids, attention_mask=mask).logits
        b = ref(input_ids=ids, attention_mask=mask).logits
    same_top = float(((a.argmax(-1) == b.argmax(-1)) | (mask == 0)).float().mean())
    return float((a - b).abs().max()), same_top


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the served model (llama GGUF)")
    ap.add_argument("--out", required=True, help="the draft's GGUF path")
    ap.add_argument("--teacher-hf", default="", help="dequantized teacher folder (made if absent)")
    ap.add_argument("--layers", type=int, default=4, help="draft decoder layers (2-4)")
    ap.add_argument("--prompts", type=int, default=2048)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--max-prompt-tokens", type=int, default=384)
    ap.add_argument("--gen-batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--report", default="", help="write the measurements here as JSON")
    args = ap.parse_args()
    if not 1 <= args.layers:
        sys.exit("--layers must be at least 1")
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    t0 = time.time()

    hf_dir = args.teacher_hf or os.path.join(tempfile.gettempdir(), "tessera-distill-teacher")
    teacher, tok = load_teacher(args.model, hf_dir, device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    total = teacher.config.num_hidden_layers
    if args.layers >= total:
        sys.exit(f"--layers {args.layers}: the served model has only {total}")
    layers = sorted({round(i * (total - 1) / max(args.layers - 1, 1)) for i in range(args.layers)})
    pad = teacher.config.eos_token_id

    prompts = build_prompts(args.prompts, args.seed)
    log(f"{len(prompts)} prompts; teacher answers them greedily and sampled")
    seqs = generate(teacher, tok, prompts, args, device)
    t_gen = time.time() - t0
    random.Random(args.seed).shuffle(seqs)
    n_eval = max(8, len(seqs) // 20)
    eval_seqs, train_seqs = seqs[:n_eval], seqs[n_eval:]
    tokens = sum(len(s) for s, _ in train_seqs)
    log(f"{len(train_seqs)} training sequences ({tokens} tokens), {n_eval} held out")

    student = make_student(teacher, layers).to(device)
    before = agreement(student, teacher, eval_seqs, args, device, pad)
    log(f"draft = layers {layers} of {total}; top-1 agreement before training {before:.3f}")
    t1 = time.time()
    after = train(student, teacher, train_seqs, eval_seqs, args, device, pad)
    t_train = time.time() - t1
    log(f"top-1 agreement after {args.steps} steps: {after:.3f} (training {t_train:.0f} s)")

    state = {k: v.detach().float().cpu().numpy() for k, v in student.state_dict().items()}
    if student.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    cfg = student.config.to_dict()
    write_draft_gguf(args.model, args.out, state, cfg, dtype=args.dtype,
                     name=f"draft-{args.layers}L-distilled")
    max_diff, same_top = check_export(args.out, student, eval_seqs, device, pad, args.dtype)
    log(f"wrote {args.out}: read back by transformers, max |logit diff| {max_diff:.3g}, "
        f"same top token at {same_top:.4f} of positions")
    if same_top < 0.99:
        sys.exit(f"the exported draft does not reproduce the student ({same_top:.3f})")
    report = {"layers": layers, "teacher_layers": total, "sequences": len(train_seqs),
              "tokens": tokens, "steps": args.steps, "batch": args.batch, "lr": args.lr,
              "agreement_before": before, "agreement_after": after,
              "generate_s": t_gen, "train_s": t_train, "export_max_logit_diff": max_diff,
              "export_same_top": same_top, "dtype": args.dtype, "out": args.out}
    print(json.dumps(report))
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
