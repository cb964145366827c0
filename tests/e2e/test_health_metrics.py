"""/health and /ready semantics, /metrics accepted by promtool, and a real Prometheus server
scraping the endpoint and answering queries for tessera: series."""
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from e2e_util import free_port, post


def test_health_and_ready(server):
    h = requests.get(server.url + "/health", timeout=10)
    assert h.status_code == 200
    assert h.json()["status"] == "ok"
    r = requests.get(server.url + "/ready", timeout=10)
    assert r.status_code == 200
    assert r.json()["ready"] is True


def test_health_reports_stall_threshold(start_server):
    # A stall timeout below the idle tick makes every probe see a "stalled" loop: /health
    # must then say 503 while the rest of the server (and /ready) keeps answering.
    s = start_server("--health-stall-timeout-ms", "1", "--grpc-port", "0")
    codes = {requests.get(s.url + "/health", timeout=10).status_code for _ in range(20)}
    assert 503 in codes
    assert requests.get(s.url + "/ready", timeout=10).status_code == 200


def test_metrics_content(server):
    post(server, "/v1/completions", {"prompt": "Hi", "max_tokens": 3})
    text = requests.get(server.url + "/metrics", timeout=10).text
    for name in ["tessera:request_success_total", "tessera:num_requests_waiting",
                 "tessera:num_requests_running", "tessera:kv_cache_used_blocks",
                 "tessera:kv_cache_total_blocks", "tessera:kv_cache_usage_ratio",
                 "tessera:prompt_tokens_total", "tessera:generation_tokens_total",
                 "tessera:time_to_first_token_seconds_bucket",
                 "tessera:e2e_request_latency_seconds_count",
                 "tessera:http_requests_total", "tessera:kv_cache_capacity_tokens"]:
        assert name in text, f"{name} missing from /metrics"
    values = {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
              if l.startswith("tessera:kv_cache_")}
    # Capacity in tokens: usable blocks x the block size (16 by default).
    assert values["tessera:kv_cache_capacity_tokens"] == 16 * values["tessera:kv_cache_total_blocks"]
    assert values["tessera:kv_cache_capacity_tokens"] > 0


def test_promtool_check_metrics(server):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool not installed (scripts/setup.sh installs prometheus)")
    post(server, "/v1/completions", {"prompt": "Hi", "max_tokens": 3})
    text = requests.get(server.url + "/metrics", timeout=10).text
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    # Exit 1 is a parse error; 3 means lint findings. The only finding allowed is the colon
    # in the mandated "tessera:" prefix (the same convention as vLLM's "vllm:").
    assert p.returncode in (0, 3), p.stdout + p.stderr
    findings = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
    other = [l for l in findings if "metric names should not contain ':'" not in l]
    assert not other, other


def test_prometheus_scrapes_tessera(server, tmp_path):
    prometheus = shutil.which("prometheus")
    if not prometheus:
        pytest.fail("prometheus not installed (scripts/setup.sh installs it)")
    port = free_port()
    target = server.url.removeprefix("http://")
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: tessera
    static_configs:
      - targets: ["{target}"]
""")
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([prometheus, f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        post(server, "/v1/completions", {"prompt": "Hi", "max_tokens": 3})
        api = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.time() + 90
        series = []
        while time.time() < deadline and not series:
            time.sleep(1)
            try:
                r = requests.get(api + "/query",
                                 params={"query": '{__name__=~"tessera:.+"}'}, timeout=5)
                if r.status_code == 200:
                    series = r.json()["data"]["result"]
            except requests.RequestException:
                continue
        names = {s["metric"]["__name__"] for s in series}
        assert "tessera:generation_tokens_total" in names, \
            (tmp_path / "prometheus.log").read_text()[-2000:]
        up = requests.get(api + "/query", params={"query": 'up{job="tessera"}'}, timeout=5)
        assert up.json()["data"]["result"][0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
