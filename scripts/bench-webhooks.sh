#!/usr/bin/env bash
# Webhook accept throughput and latency of `host serve` on 127.0.0.1 under wrk, plus the host's
# memory idle and after the load. Two loads in the same server: a generic hook that stores and
# queues a new run per request, and the same Alertmanager alert re-sent (deduplicated: store
# lookup, no new run) as the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
scripts/setup.sh >/dev/null 2>&1 || scripts/setup.sh
host=$PWD/target/release/host
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
port=${PORT:-19777}
duration=${DURATION:-10s}
cat > "$dir/host.toml" <<TOML
[server]
queue-limit = 1000000
max-concurrent-runs = 2
[webhooks.alertmanager]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[webhooks.run]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[[route]]
matchers = ['alertname="DiskFull"']
playbook = "disk-full"
params = { paths = "", backups = "", warn-percent = "99", critical-percent = "100" }
TOML
cd "$dir"
BENCH_TOKEN=bench RUNBOOK_STORE="$dir/runs.sqlite3" RUNBOOK_CACHE_DIR="$dir/cache" \
    "$host" serve --listen "127.0.0.1:$port" 2>"$dir/serve.log" >/dev/null &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$pid/status; }
echo "idle RSS: $(rss)"

cat > "$dir/run.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer bench"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100"}'
LUA
cat > "$dir/dup.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer bench"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"DiskFull"},"annotations":{},"startsAt":"2026-11-25T10:00:00Z","fingerprint":"bench"}]}'
LUA
# First delivery of the alert starts its one run; the load then only re-sends it.
curl -sf -X POST -H "Authorization: Bearer bench" -d @<(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$dir/dup.lua") \
    "http://127.0.0.1:$port/hooks/alertmanager" >/dev/null

echo "== duplicate Alertmanager deliveries (dedup lookup, no new run)"
wrk -t2 -c16 -d"$duration" --latency -s "$dir/dup.lua" "http://127.0.0.1:$port/hooks/alertmanager" | grep -E "Requests/sec|99%|50%|Non-2xx"
echo "== generic hook, a new stored and queued run per request"
wrk -t2 -c16 -d"$duration" --latency -s "$dir/run.lua" "http://127.0.0.1:$port/hooks/run/disk-full" | grep -E "Requests/sec|99%|50%|Non-2xx"
echo "RSS after load: $(rss), peak $(awk '/VmHWM/ {print $2/1024 " MiB"}' /proc/$pid/status)"
echo "runs stored: $(curl -sf "http://127.0.0.1:$port/metrics" | grep -c . >/dev/null; sqlite3 "$dir/runs.sqlite3" 'select count(*) from runs' 2>/dev/null || echo '(sqlite3 CLI not installed)')"
