#!/usr/bin/env bash
# Soak test: `tessera serve` under mixed traffic for a given time; every minute (SOAK_SAMPLE_S)
# one CSV row with the server's RSS, KV blocks in use and request counters, so leaks show as
# a trend. Ends with the KV check: once traffic stops, used blocks must return to 0.
#   bench/soak.sh [minutes=60] [out.csv=bench/results/soak.csv] [-- extra serve flags]
#   TESSERA_BIN=build/server/tessera  SOAK_CLIENTS=8  SOAK_SAMPLE_S=60
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-60}
csv=${2:-bench/results/soak.csv}
shift $(($# < 2 ? $# : 2))
[ "${1:-}" = "--" ] && shift
bin=${TESSERA_BIN:-build/server/tessera}
clients=${SOAK_CLIENTS:-8}
sample_s=${SOAK_SAMPLE_S:-60}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp /tmp/tessera-soak-XXXX.log)

"$bin" serve --port "$port" --grpc-port 0 --max-num-seqs 16 --kv-cache-mb 128 "$@" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { tail -20 "$log"; exit 1; }
  sleep 0.5
done
echo "soak: server pid $server on port $port for $minutes min, $clients clients; log $log"

status=0
python3 - "$port" "$server" "$minutes" "$csv" "$clients" "$sample_s" <<'PY' || status=$?
import csv, json, random, sys, threading, time
import requests

port, pid, minutes, out, clients, sample_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
url = f"http://127.0.0.1:{port}"
stop = threading.Event()
counts = {"ok": 0, "cancelled": 0, "rejected": 0, "failed": 0}
lock = threading.Lock()

def bump(k, why=""):
    with lock:
        counts[k] += 1
    if k == "failed":
        print(f"soak: failed request: {why}", file=sys.stderr, flush=True)

def one(rng):
    kind = rng.random()
    prompt = " ".join(rng.choice(["alpha", "beta", "gamma", "story", "code", "why"])
                      for _ in range(rng.randint(3, 60)))
    body = {"max_tokens": rng.randint(4, 96), "temperature": rng.choice([0, 0.7, 1.0]),
            "seed": rng.randint(0, 1000)}
    if kind < 0.1:    # invalid input: must be a clean 400
        r = requests.post(url + "/v1/completions", json={"prompt": prompt, "max_tokens": -1},
                          timeout=60)
        bump("rejected" if r.status_code == 400 else "failed", f"invalid input got {r.status_code}")
        return
    if kind < 0.3:    # n > 1
        body["n"] = rng.randint(2, 4)
    path, payload = ("/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}]}) \
        if rng.random() < 0.5 else ("/v1/completions", {"prompt": prompt})
    body.update(payload)
    if rng.random() < 0.5:  # streaming, 30% of them hang up early
        cancel_after = rng.randint(1, 5) if rng.random() < 0.3 else None
        with requests.post(url + path, json={**body, "stream": True}, stream=True,
                           timeout=300) as r:
            if r.status_code != 200:
                bump("rejected" if r.status_code in (429, 503) else "failed",
                     f"stream HTTP {r.status_code}: {r.text[:200]}")
                return
            for i, line in enumerate(r.iter_lines()):
                if cancel_after and i >= cancel_after:
                    bump("cancelled")
                    return
            bump("ok")
    else:
        r = requests.post(url + path, json=body, timeout=300)
        bump("ok" if r.status_code == 200 else
             "rejected" if r.status_code in (429, 503) else "failed",
             f"HTTP {r.status_code}: {r.text[:200]}")

def client(seed):
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            one(rng)
        except requests.RequestException as e:
            bump("failed", f"{type(e).__name__}: {e}")

def metric(name):
    for line in requests.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return float("nan")

def rss_mb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")

threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
for t in threads:
    t.start()
start = time.time()
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["elapsed_min", "rss_mb", "kv_used_blocks", "kv_total_blocks", "running",
                "waiting", "ok", "cancelled", "rejected", "failed"])
    def row():
        with lock:
            c = dict(counts)
        r = [round((time.time() - start) / 60, 2), round(rss_mb(), 1),
             metric("tessera:kv_cache_used_blocks"), metric("tessera:kv_cache_total_blocks"),
             metric("tessera:num_requests_running"), metric("tessera:num_requests_waiting"),
             c["ok"], c["cancelled"], c["rejected"], c["failed"]]
        w.writerow(r)
        f.flush()
        print("soak:", dict(zip(["min", "rss_mb", "kv_used", "kv_total", "running", "waiting",
                                 "ok", "cancelled", "rejected", "failed"], r)), flush=True)
    row()
    while time.time() - start < minutes * 60:
        time.sleep(min(sample_s, max(0.0, minutes * 60 - (time.time() - start))))
        row()
    stop.set()
    for t in threads:
        t.join(timeout=300)
    deadline = time.time() + 60
    while metric("tessera:kv_cache_used_blocks") != 0 and time.time() < deadline:
        time.sleep(0.5)
    row()
kv = metric("tessera:kv_cache_used_blocks")
print(f"soak: done; KV used after traffic: {kv}; counts {counts}")
sys.exit(0 if kv == 0 and counts["failed"] == 0 else 1)
PY
kill -TERM "$server"
if wait "$server"; then echo "soak: server exited 0"; else echo "soak: server exit $?"; status=1; fi
trap - EXIT
exit $status
