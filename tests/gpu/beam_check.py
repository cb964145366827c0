#!/usr/bin/env python3
"""Beam search on the GPU: the golden cases of tests/golden/beam_smollm2.json (transformers,
fp32 on the dequantized weights) against `tessera serve --device cuda` (bf16 activations).
Usage: beam_check.py TESSERA_BIN MODEL.gguf. Reports, per case, how many beams have the same
text and the largest score difference; KV blocks must return to 0."""
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

BIN, MODEL = sys.argv[1], sys.argv[2]
G = json.loads((Path(__file__).resolve().parents[1] / "golden" / "beam_smollm2.json").read_text())


def main():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open("/tmp/beam_check.log", "w")
    p = subprocess.Popen([BIN, "serve", "--model", MODEL, "--device", "cuda", "--port", str(port),
                          "--grpc-port", "0"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(url + "/ready", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.5)
    same_cases, worst = 0, 0.0
    for i, case in enumerate(G["cases"]):
        body = {"prompt": case["prompt_ids"], "max_tokens": G["max_new_tokens"],
                "use_beam_search": True, "n": G["num_beams"], "best_of": G["num_beams"],
                "length_penalty": case["length_penalty"],
                "early_stopping": case["early_stopping"], "temperature": 0}
        out = requests.post(url + "/v1/completions", json=body, timeout=120).json()
        got = sorted(out["choices"], key=lambda c: c["index"])
        same = sum(a["text"] == b["text"] for a, b in zip(case["beams"], got))
        diff = max(abs(a["score"] - b["beam_score"]) for a, b in zip(case["beams"], got))
        worst = max(worst, diff)
        same_cases += same == len(case["beams"])
        print(f"case {i} (length_penalty {case['length_penalty']}, early_stopping "
              f"{case['early_stopping']}): {same}/{len(case['beams'])} beams identical, "
              f"max score diff {diff:.4f}")
    used = [l for l in requests.get(url + "/metrics").text.splitlines()
            if l.startswith("tessera:kv_cache_used_blocks ")]
    p.terminate()
    p.wait()
    ok = used == ["tessera:kv_cache_used_blocks 0"] and same_cases >= len(G["cases"]) - 1
    print(f"{same_cases}/{len(G['cases'])} cases with every beam identical; worst score diff "
          f"{worst:.4f}; {used}")
    print("SUMMARY beam_check:", "PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
