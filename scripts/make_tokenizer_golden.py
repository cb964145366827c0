#!/usr/bin/env python3
"""Regenerates the tokenizer golden files in tests/golden/ from independent references.

References (never Tessera's own code):
  * SmolLM2: a Hugging Face `tokenizers` BPE built from the GGUF's own vocab and merges with
    the pre-tokenizer of SmolLM2's original tokenizer.json: Digits(individual_digits=True)
    then ByteLevel(use_regex=True) (the GPT-2 regex). It is cross-checked against
    transformers' GGUF-converted tokenizer; disagreements are counted and explained.
  * Llama-3-style and Qwen2-style byte-level BPE: small vocabularies trained here with HF
    `tokenizers` using those models' split regexes; tokenizer.json and a GGUF vocab of each
    are written so both loaders are checked.
  * SentencePiece-style BPE: a small vocab trained with HF `tokenizers` (Metaspace), with
    <0xXX> byte-fallback pieces; the reference tokenizer.json is built like HF's converter of
    Llama-2 (Prepend+Replace normalizer, every mergeable pair as a merge ranked by the merged
    piece's score), and a GGUF `llama` vocab with those scores is written beside it.

Usage: python3 scripts/make_tokenizer_golden.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse
import json
import os
import sys
import unicodedata

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_corpus import INVALID_UTF8, make_corpus  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")

GPT2_PAT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# GGUF token types (llama.cpp numbering).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def encode_all(tok, strings, parse_special=True, add_special=False):
    tok.encode_special_tokens = not parse_special
    try:
        return [tok.encode(s, add_special_tokens=add_special).ids for s in strings]
    finally:
        tok.encode_special_tokens = False


def golden_record(tok, strings, reference, extra=None):
    """Ids for every string (specials parsed), the no-parse ids where they differ, ids with
    BOS/EOS rules for the first strings, decodes that differ from the input, invalid UTF-8."""
    ids = encode_all(tok, strings, parse_special=True)
    plain = encode_all(tok, strings, parse_special=False)
    with_special = encode_all(tok, strings[:64], parse_special=True, add_special=True)
    decoded_diff = {}
    for i, (s, t) in enumerate(zip(strings, ids)):
        d = tok.decode(t, skip_special_tokens=False)
        if d != s:
            decoded_diff[str(i)] = d
    skip_decoded = {str(i): tok.decode(t, skip_special_tokens=True)
                    for i, t in enumerate(ids[:400]) if tok.decode(t, skip_special_tokens=True) != strings[i]}
    invalid = [tok.encode(b.decode("utf-8", "replace"), add_special_tokens=False).ids for b in INVALID_UTF8]
    rec = {
        "reference": reference,
        "num_strings": len(strings),
        "ids": ids,
        "ids_no_parse_special": {str(i): p for i, (p, q) in enumerate(zip(plain, ids)) if p != q},
        "ids_add_special_first64": with_special,
        "decoded_where_different": decoded_diff,
        "decoded_skip_special_where_different_first400": skip_decoded,
        "invalid_utf8_ids": invalid,
    }
    if extra:
        rec.update(extra)
    return rec


def write_json(name, obj):
    path = os.path.join(GOLDEN, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path) / 1024:.0f} KiB)")


# ---------------------------------------------------------------------------------------------
# SmolLM2 from the GGUF vocabulary.

def smollm2_reference(gguf_path):
    r = gguf.GGUFReader(gguf_path)
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    assert field(r, "tokenizer.ggml.model") == "gpt2" and field(r, "tokenizer.ggml.pre") == "smollm"
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    # SmolLM2's original tokenizer.json: every digit on its own, then the GPT-2 regex.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == USER_DEFINED])
    return tok, field(r, "tokenizer.chat_template")


def compare_with_transformers(gguf_path, ref_ids, strings):
    """transformers' own GGUF conversion as a second opinion; returns a summary dict."""
    try:
        from transformers import AutoTokenizer
    except Exception as e:  # noqa: BLE001
        return {"available": False, "why": f"transformers not importable: {e}"}
    try:
        hf = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf_path)),
                                           gguf_file=os.path.basename(gguf_path))
    except Exception as e:  # noqa: BLE001
        return {"available": False, "why": f"transformers could not convert the GGUF: {e}"}
    disagree = []
    for i, s in enumerate(strings):
        theirs = hf.encode(s, add_special_tokens=False)
        if theirs != ref_ids[i]:
            disagree.append(i)
    # Rust's char::is_numeric (what HF's Digits splits on) is Unicode category N*.
    with_digits = sum(1 for i in disagree if any(unicodedata.category(c)[0] == "N" for c in strings[i]))
    pre = hf.backend_tokenizer.pre_tokenizer
    summary = {
        "available": True,
        "transformers_pre_tokenizer": repr(pre),
        "num_compared": len(strings),
        "num_disagree": len(disagree),
        "num_disagree_with_digits": with_digits,
        "examples": [{"text": strings[i][:80], "reference": ref_ids[i][:24],
                      "transformers": hf.encode(strings[i], add_special_tokens=False)[:24]}
                     for i in disagree[:5]],
    }
    # Is the missing Digits step the whole difference? Add it to transformers' own tokenizer
    # (same vocab, merges and added tokens) and compare again.
    backend = hf.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre])
    still = sum(1 for i in disagree
                if backend.encode(strings[i], add_special_tokens=False).ids != ref_ids[i])
    summary["num_disagree_after_adding_digits_to_transformers"] = still
    if len(disagree) == with_digits and still == 0:
        summary["explanation"] = (
            "transformers' GGUF converter ignores tokenizer.ggml.pre=smollm and builds a plain "
            "ByteLevel(use_regex=True) pre-tokenizer without SmolLM2's Digits(individual_digits=True) "
            "step. Every disagreement contains a numeric (Unicode N*) character, and adding the Digits "
            "step to transformers' own tokenizer removes all of them. SmolLM2's original tokenizer.json "
            "(and llama.cpp's 'smollm' pre-tokenizer) split digits first, so the reference used for the "
            "goldens is right and the converted tokenizer is wrong on numbers.")
    return summary


# Chat templates of the families Tessera detects, as the models publish them (Jinja source).
QWEN2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                  "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
                  "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
                   " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
                   "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
                   "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
                   "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# Llama-3.1's template, reconstructed from the published one (tool-definition branches left
# out: Tessera rejects tools upstream). Tool results become a JSON-encoded "ipython" turn.
LLAMA31_TEMPLATE = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

CHAT_CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And 3+3?"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": " spaced \n"},
     {"role": "assistant", "content": ""}],
    [{"role": "user", "content": "\t tabs and\u00a0nbsp\u3000 "}, {"role": "tool", "content": "{\"x\": 1}"}],
    [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "<|im_start|> literal"}],
    [{"role": "user", "content": "weather?"}, {"role": "tool", "content": "<b>\"22°C\"</b> & sunny\n\u0001"}],
    [],
]


def render_chat_templates(gguf_template, gguf_path):
    """Each template rendered by jinja2 set up as transformers' apply_chat_template sets it up
    (trim_blocks, lstrip_blocks, tojson = json.dumps(ensure_ascii=False)); where transformers is
    installed, its own apply_chat_template must render the same text."""
    import jinja2
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: \
        json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    families = [
        ("smollm2_gguf", gguf_template, "<|im_start|>"),
        ("qwen2", QWEN2_TEMPLATE, "<|endoftext|>"),
        ("chatml", CHATML_TEMPLATE, "<s>"),
        ("llama3", LLAMA3_TEMPLATE, "<|begin_of_text|>"),
        ("llama3.1", LLAMA31_TEMPLATE, "<|begin_of_text|>"),
    ]
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf_path)),
                                           gguf_file=os.path.basename(gguf_path))
    except ImportError:
        hf = None
        print("transformers not available: chat templates rendered with jinja2 only")
    out = []
    compared = 0
    for name, source, bos in families:
        t = env.from_string(source)
        cases = []
        for msgs in CHAT_CONVERSATIONS:
            if not msgs and name == "llama3.1":
                continue  # the template indexes messages[0]; an empty chat is an error there
            for gen in (True, False):
                text = t.render(messages=msgs, add_generation_prompt=gen, bos_token=bos)
                if hf is not None and msgs:
                    theirs = hf.apply_chat_template(msgs, chat_template=source, tokenize=False,
                                                    add_generation_prompt=gen, bos_token=bos)
                    assert theirs == text, (name, msgs, theirs, text)
                    compared += 1
                cases.append({"messages": msgs, "add_generation_prompt": gen, "rendered": text})
        out.append({"name": name, "template": source, "bos_token": bos, "cases": cases})
    if hf is not None:
        print(f"transformers apply_chat_template agrees with jinja2 on {compared} renderings")
    return out


# ---------------------------------------------------------------------------------------------
# Small byte-level vocabularies trained here (Llama-3 and Qwen2 split regexes).

def train_byte_level(corpus, pattern, specials, vocab_size, ignore_merges, bos):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = ignore_merges
    if bos:
        spec["post_processor"] = json.loads(processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))]).__getstate__())
    return Tokenizer.from_str(json.dumps(spec))


def write_byte_level_gguf(tok, path, pre, add_bos, bos, eos):
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    types = [NORMAL] * len(tokens)
    for a in spec["added_tokens"]:
        types[a["id"]] = CONTROL if a["special"] else USER_DEFINED
    merges = [" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]]
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.token_to_id(bos))
    w.add_eos_token_id(tok.token_to_id(eos))
    w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path) / 1024:.0f} KiB)")


# ---------------------------------------------------------------------------------------------
# SentencePiece-style BPE.

def build_spm(corpus, vocab_size):
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  limit_alphabet=400, show_progress=False)
    trainer_tok.train_from_iterator(corpus, trainer)
    learned = json.loads(trainer_tok.to_str())["model"]["vocab"]
    learned = [t for t, _ in sorted(learned.items(), key=lambda kv: kv[1]) if t not in ("<unk>", "<s>", "</s>")]
    # Llama-2 layout: <unk> <s> </s>, the 256 byte pieces, then the learned pieces.
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + learned
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256 + [NORMAL] * len(learned)
    # Score = minus the id: pieces learned earlier merge first (single characters never form
    # by merging, so their scores do not matter).
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(len(learned))]
    mergeable = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == NORMAL}
    # Every split of a piece into two mergeable pieces is a merge, ranked by the piece's score:
    # this makes rank-ordered BPE (HF) behave like score-ordered SentencePiece BPE.
    merges = []
    for piece, pid in sorted(mergeable.items(), key=lambda kv: kv[1]):
        for k in range(1, len(piece)):
            a, b = piece[:k], piece[k:]
            if a in mergeable and b in mergeable:
                merges.append((pid, k, a, b))
    merges.sort()
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for _, _, a, b in merges], unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok, tokens, types, scores


def write_spm_gguf(path, tokens, types, scores):
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path) / 1024:.0f} KiB)")


def metaspace_golden(spm, strings):
    """The same SPM vocab behind HF's Metaspace pre-tokenizer instead of the Prepend+Replace
    normalizer ('always' and 'first' prepend schemes differ from it around special tokens and
    leading spaces). The C++ test makes the same edit to tokenizer_spm.json."""
    base = json.loads(spm.to_str())
    cases = ([i for i, s in enumerate(strings) if any(t in s for t in ("<s>", "</s>", "<unk>"))][:80]
             + list(range(120)) + [i for i, s in enumerate(strings) if s.startswith(" ")][:60])
    cases = sorted(i for i in set(cases) if len(strings[i]) < 500)
    out = {"reference": "HF tokenizers, tokenizer_spm.json with normalizer=null and "
                        "pre_tokenizer=Metaspace(replacement='▁', prepend_scheme=S, split=False)",
           "cases": cases}
    for scheme in ("always", "first"):
        spec = dict(base)
        spec["normalizer"] = None
        spec["pre_tokenizer"] = json.loads(pre_tokenizers.Metaspace(
            replacement="▁", prepend_scheme=scheme, split=False).__getstate__())
        tok = Tokenizer.from_str(json.dumps(spec))
        out[scheme] = [tok.encode(strings[i], add_special_tokens=False).ids for i in cases]
    write_json("tokenizer_spm_metaspace_ids.json", out)


def sentencepiece_golden(strings):
    """A BPE model trained by Google's sentencepiece library itself (when installed): its pieces,
    scores and types go into a GGUF `llama` vocab as llama.cpp's converter writes them, and its
    own encode() gives the ids. sentencepiece does not parse special tokens."""
    try:
        import sentencepiece as sp
    except ImportError:
        print("sentencepiece not installed: skipping tokenizer_sentencepiece.*")
        return
    import io
    model = io.BytesIO()
    sp.SentencePieceTrainer.train(
        sentence_iterator=iter([x for x in strings if x.strip()]), model_writer=model, model_type="bpe",
        vocab_size=3000, byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True,
        allow_whitespace_only_pieces=True, character_coverage=0.99, max_sentence_length=1 << 20,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    proc = sp.SentencePieceProcessor(model_proto=model.getvalue())
    n = proc.get_piece_size()
    tokens = [proc.id_to_piece(i) for i in range(n)]
    scores = [proc.get_score(i) for i in range(n)]
    types = []
    for i in range(n):
        if proc.is_unknown(i):
            types.append(UNKNOWN)
        elif proc.is_control(i):
            types.append(CONTROL)
        elif proc.is_byte(i):
            types.append(BYTE)
        elif proc.is_unused(i):
            types.append(UNUSED)
        else:
            types.append(NORMAL)
    write_spm_gguf(os.path.join(GOLDEN, "tokenizer_sentencepiece.gguf"), tokens, types, scores)
    ids = [proc.encode(x) for x in strings]
    decoded = {str(i): proc.decode(t) for i, t in enumerate(ids) if proc.decode(t) != strings[i]}
    invalid = [proc.encode(b.decode("utf-8", "replace")) for b in INVALID_UTF8]
    write_json("tokenizer_sentencepiece_ids.json", {
        "reference": f"sentencepiece {sp.__version__} BPE (identity normalization, byte_fallback, "
                     "dummy prefix); encode() ids, no special-token parsing",
        "num_strings": len(strings), "ids": ids, "decoded_where_different": decoded,
        "invalid_utf8_ids": invalid})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--skip-transformers", action="store_true", help="skip the second-opinion check")
    ap.add_argument("--reference-only", action="store_true",
                    help="only write the SmolLM2 reference tokenizer.json beside the model (the "
                         "unit tests load it; scripts/setup.sh runs this)")
    args = ap.parse_args()
    if args.reference_only:
        tok, _ = smollm2_reference(args.model)
        ref_path = os.path.join(os.path.dirname(os.path.abspath(args.model)),
                                "smollm2-reference-tokenizer.json")
        tok.save(ref_path)
        print(f"wrote {ref_path}")
        return
    os.makedirs(GOLDEN, exist_ok=True)

    strings = make_corpus()
    write_json("tokenizer_strings.json", {
        "strings": strings,
        "invalid_utf8_hex": [b.hex() for b in INVALID_UTF8],
    })
    print(f"{len(strings)} strings")

    # SmolLM2.
    tok, chat_template = smollm2_reference(args.model)
    rec = golden_record(tok, strings, "HF tokenizers BPE from the GGUF vocab+merges, "
                        "pre_tokenizer Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)]")
    if not args.skip_transformers:
        cmp = compare_with_transformers(args.model, rec["ids"], strings)
        rec["transformers_gguf_comparison"] = cmp
        print("transformers GGUF conversion:", json.dumps(cmp, ensure_ascii=False)[:1500])
    write_json("tokenizer_smollm2_ids.json", rec)
    # The reference itself is ~2 MB, so it goes next to the (git-ignored) model, where the unit
    # test also checks Tokenizer::from_hf_files against it when present.
    ref_path = os.path.join(os.path.dirname(os.path.abspath(args.model)), "smollm2-reference-tokenizer.json")
    tok.save(ref_path)
    print(f"wrote {ref_path}")
    write_json("chat_template_cases.json", render_chat_templates(chat_template, args.model))

    # Llama-3 and Qwen2 style byte-level BPE.
    l3_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|eot_id|>"]
    l3 = train_byte_level(strings, LLAMA3_PAT, l3_specials, 3000, True, "<|begin_of_text|>")
    l3.save(os.path.join(GOLDEN, "tokenizer_llama3_style.json"))
    write_byte_level_gguf(l3, os.path.join(GOLDEN, "tokenizer_llama3_style.gguf"), "llama-bpe", True,
                          "<|begin_of_text|>", "<|end_of_text|>")
    write_json("tokenizer_llama3_style_ids.json",
               golden_record(l3, strings, "HF tokenizers, trained BPE, Split(Llama-3 regex)+ByteLevel, ignore_merges"))

    q2 = train_byte_level(strings, QWEN2_PAT, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 3000, False, None)
    q2.save(os.path.join(GOLDEN, "tokenizer_qwen2_style.json"))
    write_byte_level_gguf(q2, os.path.join(GOLDEN, "tokenizer_qwen2_style.gguf"), "qwen2", False,
                          "<|endoftext|>", "<|im_end|>")
    write_json("tokenizer_qwen2_style_ids.json",
               golden_record(q2, strings, "HF tokenizers, trained BPE, Split(Qwen2 regex)+ByteLevel"))

    # SentencePiece-style BPE.
    spm, tokens, types, scores = build_spm(strings, 3000)
    spm.save(os.path.join(GOLDEN, "tokenizer_spm.json"))
    write_spm_gguf(os.path.join(GOLDEN, "tokenizer_spm.gguf"), tokens, types, scores)
    write_json("tokenizer_spm_ids.json",
               golden_record(spm, strings, "HF tokenizers BPE with byte_fallback, Prepend+Replace('▁'), "
                             "all mergeable pairs ranked by piece score (HF's Llama-2 conversion)"))
    metaspace_golden(spm, strings)
    sentencepiece_golden(strings)


if __name__ == "__main__":
    main()
