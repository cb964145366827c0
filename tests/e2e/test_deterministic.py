"""--deterministic / TESSERA_DETERMINISTIC on the CPU server: the engine runs with it, and a
request's greedy text is the same alone and among concurrent ones."""
import concurrent.futures
import subprocess

import requests

from e2e_util import BIN, MODEL, REPO

PROMPTS = [f"Item {i}: the colour of the sky is" for i in range(7)]


def complete(url, prompt):
    r = requests.post(url + "/v1/completions", timeout=120,
                      json=dict(prompt=prompt, max_tokens=12, temperature=0, ignore_eos=True))
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


def test_deterministic_flag_and_env(start_server):
    s = start_server("--deterministic")
    assert "deterministic on" in s.log_tail(200)
    solo = [complete(s.url, p) for p in PROMPTS]
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(lambda p: complete(s.url, p), PROMPTS))
    assert together == solo
    e = start_server(env={"TESSERA_DETERMINISTIC": "1"})
    assert "deterministic on" in e.log_tail(200)


def test_generate_deterministic():
    out = subprocess.run([str(BIN), "generate", "-m", str(MODEL), "-p", "Hello", "-n", "4",
                          "--device", "cpu", "--deterministic"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Hello")
