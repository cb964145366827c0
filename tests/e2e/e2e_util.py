"""Helpers for the end-to-end tests: start the built `tessera serve` binary, talk to it.

Nothing is built here. The binary comes from $TESSERA_BIN (default build/server/tessera);
the model from models/. Tests that need either fail when it is missing.
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
BIN = Path(os.environ.get("TESSERA_BIN", REPO / "build" / "server" / "tessera"))
READY_TIMEOUT_S = 180
# Sanitized servers run 5-20x slower: waits and latency bounds stretch by this factor (scripts/sanitize.sh).
TIME_SCALE = float(os.environ.get("TESSERA_TEST_TIMEOUT_SCALE", "1"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `tessera serve` process on free ports; logs go to a temp file."""

    def __init__(self, *args: str, env: dict | None = None, model: Path | None = None):
        if not BIN.exists():
            pytest.fail(f"tessera binary not built: {BIN} (set TESSERA_BIN)")
        if not MODEL.exists():
            pytest.fail(f"default model missing: {MODEL} (run scripts/fetch_model.sh)")
        model = model or MODEL
        self.port = free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="tessera-e2e-", suffix=".log", delete=False)
        cmd = [str(BIN), "serve", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(self.port), "--grpc-port", str(self.grpc_port), *args]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, **(env or {})})
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.time() + READY_TIMEOUT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tessera exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tessera not ready after {READY_TIMEOUT_S}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-n:])

    def metric(self, name: str, labels: str = "") -> float | None:
        """Value of one series on /metrics (exact name, optional '{...}' label text)."""
        text = requests.get(self.url + "/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + labels + " "):
                return float(line.split()[-1])
        return None

    def wait_metric(self, name: str, value: float, timeout: float = 10.0) -> float | None:
        """Polls /metrics until `name` equals `value` (gauges refresh once per engine tick).
        The wait scales with TESSERA_TEST_TIMEOUT_SCALE, as the unit tests' do (sanitizers)."""
        deadline = time.time() + timeout * TIME_SCALE
        v = self.metric(name)
        while v != value and time.time() < deadline:
            time.sleep(0.05)
            v = self.metric(name)
        return v

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def post(server, path, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.url + path, data=data,
                         headers={"Content-Type": "application/json", **kw.pop("headers", {})},
                         timeout=kw.pop("timeout", 120 * TIME_SCALE), **kw)
