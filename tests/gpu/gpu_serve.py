"""`tessera serve` on the GPU for the checks in tests/gpu: one server on a free port, waited
for until /ready, its log in /tmp."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def start(binary, model, *flags, name="gpu_check"):
    """Returns (process, base URL, log path); exits the check when the server dies or is
    not ready within 5 minutes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(f"/tmp/{name}_{port}.log", "w")
    p = subprocess.Popen([binary, "serve", "--model", model, "--port", str(port), "--grpc-port",
                          "0", "--device", "cuda", *flags], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if p.poll() is not None:
            sys.exit("server exited:\n" + Path(log.name).read_text()[-2000:])
        try:
            if requests.get(url + "/ready", timeout=1).status_code == 200:
                return p, url, log.name
        except requests.RequestException:
            pass
        time.sleep(0.5)
    sys.exit("server not ready")
