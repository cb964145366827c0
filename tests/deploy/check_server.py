#!/usr/bin/env python3
"""Checks a running Tessera server as a user of its image would (docker/test-image.sh).

Waits for /ready, then: /health, the model list, a completion, a chat completion and a
streamed chat completion with the official openai client, /metrics parsed by promtool, and
(with --prometheus) a Prometheus server that scrapes it: the target is up and the queue
metric the autoscaler reads is in its database. Exits non-zero on the first failure.
"""
import argparse
import os
import subprocess
import sys
import time

import openai
import requests


def wait_for(what, fn, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - report the last failure
            last = e
        time.sleep(0.5)
    sys.exit(f"FAIL: {what} within {timeout} s (last error: {last})")


def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")
    print(f"ok: {what}")


def pid_on_port(port):
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    for part in out.replace(",", " ").split():
        if part.startswith("pid="):
            return int(part[4:])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000")
    ap.add_argument("--prometheus", help="Prometheus server scraping the server")
    ap.add_argument("--expect-user", help="user the server process must run as")
    ap.add_argument("--pid-port", type=int, help="port to find the server process by")
    ap.add_argument("--ready-timeout", type=float, default=180)
    args = ap.parse_args()
    url = args.url.rstrip("/")

    t0 = time.time()
    wait_for("/ready answers 200", lambda: requests.get(f"{url}/ready", timeout=2).status_code == 200,
             args.ready_timeout)
    print(f"ok: /ready 200 after {time.time() - t0:.1f} s")
    check(requests.get(f"{url}/health", timeout=5).status_code == 200, "/health 200")

    if args.expect_user and args.pid_port:
        pid = pid_on_port(args.pid_port)
        uid = os.stat(f"/proc/{pid}").st_uid if pid else None
        import pwd
        name = None
        # The image's user exists in the image, not necessarily on the host: compare by uid
        # to root (the image must not run as root).
        try:
            name = pwd.getpwuid(uid).pw_name
        except (KeyError, TypeError):
            pass
        check(pid is not None and uid != 0,
              f"server (pid {pid}) runs as a non-root user (uid {uid} {name or ''}), "
              f"image user {args.expect_user}")

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=os.environ.get("TESSERA_API_KEY", "none"))
    models = [m.id for m in client.models.list().data]
    check(len(models) >= 1, f"/v1/models lists {models}")
    model = models[0]

    c = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8,
                                  temperature=0)
    check(c.choices[0].text.strip() != "" and c.usage.completion_tokens > 0,
          f"completion: {c.choices[0].text!r} ({c.usage.completion_tokens} tokens)")

    chat = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16, temperature=0)
    check(chat.choices[0].message.content.strip() != "",
          f"chat completion: {chat.choices[0].message.content!r}")

    pieces = []
    for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=16, temperature=0, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    check(len(pieces) > 1, f"streamed chat completion: {len(pieces)} chunks, {''.join(pieces)!r}")

    r = requests.get(f"{url}/metrics", timeout=5)
    check(r.status_code == 200 and "tessera:num_requests_waiting" in r.text,
          "/metrics 200 with tessera:num_requests_waiting")
    p = subprocess.run(["promtool", "check", "metrics"], input=r.text, capture_output=True,
                       text=True)
    # promtool exits 1 on lint findings (e.g. counter naming) as well as on parse errors;
    # only a parse error fails here.
    check("error while linting" not in (p.stdout + p.stderr) and "parse" not in p.stderr.lower(),
          f"promtool check metrics parses /metrics {(p.stdout + p.stderr).strip()[:200]!r}")

    if args.prometheus:
        prom = args.prometheus.rstrip("/")

        def query(q):
            res = requests.get(f"{prom}/api/v1/query", params={"query": q}, timeout=5).json()
            return res["data"]["result"] if res.get("status") == "success" else []

        wait_for("Prometheus scrapes the server (up == 1)",
                 lambda: any(s["value"][1] == "1" for s in query('up{job="tessera"}')), 60)
        print("ok: Prometheus target up")
        ok = wait_for("Prometheus has tessera:request_success_total >= 3",
                      lambda: [s for s in query('sum(tessera:request_success_total)')
                               if float(s["value"][1]) >= 3], 30)
        print(f"ok: Prometheus query sum(tessera:request_success_total) = {ok[0]['value'][1]}")
        wait_for("Prometheus has the autoscaler's metric tessera:num_requests_waiting",
                 lambda: query("tessera:num_requests_waiting"), 30)
        print("ok: Prometheus has tessera:num_requests_waiting")
    print("all checks passed")


if __name__ == "__main__":
    main()
