"""--gguf-weights bf16|blocks: accepted by serve and generate, logged by the engine, a no-op
on the CPU backend (which always computes on the GGUF blocks; the GPU side is checked by
tests/gpu/quant_check.cpp), and a bad value is refused with the choices named."""
import subprocess

import requests

from e2e_util import BIN, MODEL, REPO


def generate(*extra):
    return subprocess.run([str(BIN), "generate", "-m", str(MODEL), "-p", "The capital of France is",
                           "-n", "6", "--device", "cpu", *extra], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_generate_accepts_both_and_refuses_others():
    plain, blocks = generate(), generate("--gguf-weights", "blocks")
    assert plain.returncode == 0 and blocks.returncode == 0, plain.stderr + blocks.stderr
    assert blocks.stdout == plain.stdout
    bad = generate("--gguf-weights", "int4")
    assert bad.returncode != 0
    assert "--gguf-weights" in bad.stderr and "blocks" in bad.stderr


def test_serve_logs_the_choice_and_refuses_a_bad_one(start_server):
    s = start_server("--gguf-weights", "blocks")
    assert "GGUF weights on the GPU blocks" in s.log_tail(200)
    r = requests.post(s.url + "/v1/completions", timeout=120,
                      json=dict(prompt="Hello", max_tokens=4, temperature=0))
    assert r.status_code == 200, r.text
    bad = subprocess.run([str(BIN), "serve", "--model", str(MODEL), "--device", "cpu", "--port", "0",
                          "--gguf-weights", "int4"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0
    assert "gguf_weights" in bad.stderr + bad.stdout and "bf16 or blocks" in bad.stderr + bad.stdout
