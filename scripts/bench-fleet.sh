#!/usr/bin/env bash
# Alert → run started, on a fleet agent next to the same alert run by `host serve` itself, in
# one script run: one server (SQLite store) and one `host agent` on loopback, the no-op
# playbook on both; ALERTS (default 200) Alertmanager alerts of each kind, interleaved, one at a
# time. "Started" is when the run began executing (its `ended_at` less its measured `total_ms`,
# both taken where it ran; one machine, one clock); the alert's time is taken just before its
# POST. Prints p50/p99 of both and what the agent adds.
#
#   scripts/bench-fleet.sh [HOST_BIN]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench-serve-lib.sh"
host=$(realpath "${1:-$root/target/release/host}")
alerts=${ALERTS:-200}
[ -x "$host" ] || (cd "$root" && cargo build --release --locked -p runbook-host)
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$dir"' EXIT

cat > "$dir/host.toml" <<'TOML'
plugin-dirs = ["@PLUGINS@"]
[server]
queue-limit = 100000
[fleet.nodes.bench-node]
token = { env = "BENCH_NODE_TOKEN" }
[webhooks.alertmanager]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[webhooks.api]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[[route]]
matchers = ['alertname="BenchLocal"']
playbook = "noop"
[[route]]
matchers = ['alertname="BenchNode"']
playbook = "noop"
node = "{{ labels.instance | host }}"
[plugins.noop]
max-concurrent = 4
TOML
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export BENCH_NODE_TOKEN=bench-node-token-0123456789
start_server "$host" server "$port"; pids+=("$pid")

mkdir -p "$dir/node/plugins"
cp "$(noop_wasm)" "$dir/node/plugins/noop.wasm"
echo 'plugin-dirs = ["plugins"]' > "$dir/node/host.toml"
(cd "$dir/node" && RUNBOOK_AGENT_TOKEN=$BENCH_NODE_TOKEN RUNBOOK_STORE="$dir/node/outbox.sqlite3" \
    RUNBOOK_CACHE_DIR="$dir/node/cache" exec "$host" agent --server "http://127.0.0.1:$port" \
    --node bench-node 2>"$dir/node/agent.log" >/dev/null) &
pids+=("$!")

python3 - "$port" "$alerts" <<'PY'
import json, sys, time, urllib.request
from datetime import datetime

port, count = int(sys.argv[1]), int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
auth = {"Authorization": "Bearer bench", "Content-Type": "application/json"}

def call(method, path, body=None):
    req = urllib.request.Request(base + path, data=body, headers=auth, method=method)
    with urllib.request.urlopen(req) as r:
        return json.load(r)

deadline = time.time() + 60
while not any(n["name"] == "bench-node" and n["up"] for n in call("GET", "/nodes")):
    assert time.time() < deadline, "the agent never connected"
    time.sleep(0.05)

def alert(name, i):
    return json.dumps({"version": "4", "status": "firing", "receiver": "bench",
        "groupLabels": {}, "commonLabels": {}, "alerts": [{"status": "firing",
        "labels": {"alertname": name, "instance": "bench-node:9100", "i": str(i)},
        "annotations": {}, "startsAt": "2026-11-26T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f"{name}-{i}"}]}).encode()

def started_after(name, i):
    t0 = time.time()
    run_id = call("POST", "/hooks/alertmanager", alert(name, i))["runs"][0]
    while True:
        run = call("GET", f"/runs/{run_id}")
        if run["status"] not in ("queued", "running"):
            break
        time.sleep(0.002)
    assert run["status"] == "no-action", run
    ended = datetime.fromisoformat(run["ended_at"].replace("Z", "+00:00")).timestamp()
    return (ended - run["timings"]["total_ms"] / 1e3 - t0) * 1e3

# Warm both paths (compile caches, connections) before measuring.
for i in range(5):
    started_after("BenchLocal", -1 - i), started_after("BenchNode", -1 - i)
local, node = [], []
for i in range(count):
    local.append(started_after("BenchLocal", i))
    node.append(started_after("BenchNode", i))

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]

print(f"alert → run started, {count} alerts each (ms)")
print(f"{'':<22}{'p50':>8}{'p99':>8}")
print(f"{'host serve (local)':<22}{pct(local, 50):8.2f}{pct(local, 99):8.2f}")
print(f"{'host agent (fleet)':<22}{pct(node, 50):8.2f}{pct(node, 99):8.2f}")
print(f"{'agent adds':<22}{pct(node, 50) - pct(local, 50):8.2f}{pct(node, 99) - pct(local, 99):8.2f}"
      f"   (target: under 10 ms at p50)")
PY
