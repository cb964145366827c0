"""A draft model written by scripts/draft_gguf.py (the exporter of scripts/distill_draft.py)
loads in Tessera with the served model's tokenizer, computes what its tensors say (against a
numpy forward pass in the Hugging Face layout, written here from the llama architecture), and
drafts for the served model without changing its outputs.

The draft is cut from the default model (layers 0 and 29 of models/smollm2-hf, the
dequantized weights scripts/setup.sh writes): no torch in CI, so no training here."""
import json
import sys

import numpy as np
import pytest
import requests

from e2e_util import MODEL, REPO, post

sys.path.insert(0, str(REPO / "scripts"))
from draft_gguf import write_draft_gguf  # noqa: E402

HF = REPO / "models" / "smollm2-hf"
LAYERS = [0, 29]
PROMPT_IDS = [1, 504, 3458, 282, 4649, 314, 7042, 30, 378, 3458, 282]


def cut_layers(full, layers):
    out = {k: v for k, v in full.items() if not k.startswith("model.layers.")}
    for new, old in enumerate(layers):
        prefix = f"model.layers.{old}."
        out.update({f"model.layers.{new}.{k[len(prefix):]}": v
                    for k, v in full.items() if k.startswith(prefix)})
    return out


@pytest.fixture(scope="module")
def draft(tmp_path_factory):
    from safetensors.numpy import load_file
    if not (HF / "model.safetensors").exists():
        pytest.fail(f"{HF} missing (scripts/setup.sh writes it)")
    cfg = {**json.load(open(HF / "config.json")), "num_hidden_layers": len(LAYERS)}
    tensors = cut_layers(load_file(HF / "model.safetensors"), LAYERS)
    path = tmp_path_factory.mktemp("draft") / "draft.gguf"
    assert write_draft_gguf(MODEL, path, tensors, cfg, dtype="f32") == len(tensors)
    return path, tensors, cfg


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rotate_half_rope(x, theta):
    """x: [heads, n, d]; the Hugging Face layout rotates the halves of each head."""
    n, d = x.shape[1], x.shape[2]
    inv = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.arange(n)[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rot * sin


def reference_logprobs(t, cfg, ids):
    """Log-probabilities after the last of ids, in float64."""
    g = {k: v.astype(np.float64) for k, v in t.items()}
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    # transformers >= 5 nests rope_theta in rope_parameters (setup.sh writes either form).
    theta = cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]
    eps = cfg["rms_norm_eps"]
    h = g["model.embed_tokens.weight"][ids]
    n, hd = len(ids), cfg["hidden_size"] // heads
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, g[p + "input_layernorm.weight"], eps)
        q = (x @ g[p + "self_attn.q_proj.weight"].T).reshape(n, heads, hd).transpose(1, 0, 2)
        k = (x @ g[p + "self_attn.k_proj.weight"].T).reshape(n, kv, hd).transpose(1, 0, 2)
        v = (x @ g[p + "self_attn.v_proj.weight"].T).reshape(n, kv, hd).transpose(1, 0, 2)
        q, k = rotate_half_rope(q, theta), rotate_half_rope(k, theta)
        k, v = np.repeat(k, heads // kv, 0), np.repeat(v, heads // kv, 0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = (a @ v).transpose(1, 0, 2).reshape(n, heads * hd)
        h = h + o @ g[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, g[p + "post_attention_layernorm.weight"], eps)
        gate, up = x @ g[p + "mlp.gate_proj.weight"].T, x @ g[p + "mlp.up_proj.weight"].T
        h = h + (gate / (1 + np.exp(-gate)) * up) @ g[p + "mlp.down_proj.weight"].T
    last = rms_norm(h[-1], g["model.norm.weight"], eps)
    head = g.get("lm_head.weight", g["model.embed_tokens.weight"])
    logits = head @ last
    return logits - (np.log(np.exp(logits - logits.max()).sum()) + logits.max())


def test_exported_draft_computes_its_tensors(draft, start_server):
    path, tensors, cfg = draft
    s = start_server("--max-num-seqs", "4", "--kv-cache-mb", "32", model=path)
    models = requests.get(s.url + "/v1/models", timeout=10).json()["data"]
    assert len(models) == 1
    r = post(s, "/v1/completions", {"prompt": PROMPT_IDS, "max_tokens": 1, "temperature": 0,
                                     "logprobs": 5})
    assert r.status_code == 200, r.text
    lp = r.json()["choices"][0]["logprobs"]
    ref = reference_logprobs(tensors, cfg, PROMPT_IDS)
    want = np.sort(ref)[::-1][:5]
    got = np.sort(np.array(list(lp["top_logprobs"][0].values())))[::-1]
    # A Q/K layout error or a wrong tensor name moves these by whole units, not thousandths.
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert abs(lp["token_logprobs"][0] - want[0]) < 2e-3
    # The tokenizer came along: the chat endpoint renders the served model's template.
    chat = post(s, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}],
                                            "max_tokens": 2, "temperature": 0})
    assert chat.status_code == 200, chat.text
    assert chat.json()["usage"]["prompt_tokens"] > 5


def test_exported_draft_drafts_without_changing_outputs(draft, server, start_server):
    path, _, _ = draft
    prompts = [f"Copy this sentence: the {w} sat on the mat near the {w}.\nCopy:" for w in
               ["cat", "dog", "bird", "fox", "owl", "cow"]]
    body = {"max_tokens": 16, "temperature": 0, "ignore_eos": True}
    want = [post(server, "/v1/completions", {**body, "prompt": p}).json()["choices"][0]["text"]
            for p in prompts]
    s = start_server("--speculative", "draft", "--draft-model", str(path),
                     "--num-speculative-tokens", "3", "--speculative-fixed",
                     "--speculative-max-step-tokens", "100000")
    drafted = 0
    for p, w in zip(prompts, want):
        r = post(s, "/v1/completions", {**body, "prompt": p})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["text"] == w
        drafted += r.json()["usage"].get("speculative", {}).get("draft_tokens", 0)
    assert drafted > 0
    assert s.metric("tessera:spec_decode_num_draft_tokens_total") == drafted
    assert s.wait_metric("tessera:kv_cache_used_blocks", 0) == 0
