#!/usr/bin/env bash
# What TLS costs, measured in one script run on one binary: accepted webhooks/s and latency of
# the same `host serve` config over HTTP and over HTTPS (wrk -c64, keep-alive, the dedup path
# and the new-run path), alternating rounds so machine noise hits both; then PostgreSQL intake
# (new runs/s) with the store reached plainly and over verified TLS: one database of the TLS
# cluster of scripts/test-env.sh, runbook_plain, takes both.
# Goal: TLS costs at most 15% of throughput.
#   scripts/bench-tls.sh [ROUNDS]        DURATION=10s CONNECTIONS=64
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
rounds=${1:-3}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
host=$PWD/target/release/host
[ -x "$host" ] || cargo build --release -p runbook-host
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT
scripts/test-certs.sh "$dir/pki" >/dev/null

# serve NAME PORT STORE TLS(0|1): a server in its own directory.
serve() {
    local name=$1 port=$2 store=$3 tls=$4 d="$dir/$1"
    mkdir -p "$d"
    {
        echo "[server]"
        echo "queue-limit = 10000000"
        echo "max-concurrent-runs = 2"
        [ "$tls" = 1 ] && echo "tls = { cert = \"$dir/pki/server.pem\", key = \"$dir/pki/server.key\" }"
        echo "[webhooks.alertmanager]"
        echo 'auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }'
        echo "[webhooks.run]"
        echo 'auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }'
        echo "[[route]]"
        echo "matchers = ['alertname=\"DiskFull\"']"
        echo 'playbook = "disk-full"'
        echo 'params = { paths = "", backups = "", warn-percent = "99", critical-percent = "100" }'
    } > "$d/host.toml"
    (cd "$d" && BENCH_TOKEN=bench RUNBOOK_STORE="$store" RUNBOOK_CACHE_DIR="$dir/cache" \
        exec "$host" serve --config host.toml --listen "127.0.0.1:$port" 2>"$d/serve.log" >/dev/null) &
    pids+=($!)
    local scheme=http
    [ "$tls" = 1 ] && scheme=https
    for _ in $(seq 200); do
        "$host" health --url "$scheme://127.0.0.1:$port/healthz" --ca-file "$dir/pki/ca.pem" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "server $name did not start:" >&2; cat "$d/serve.log" >&2; exit 1
}

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

# load URL SCRIPT: "requests/s p99_ms non2xx"
load() {
    wrk -t2 -c"$connections" -d"$duration" --latency -s "$2" "$1" > "$dir/wrk.out"
    local rps p99 bad
    rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$dir/wrk.out")
    bad=$(awk '/Non-2xx/ {print $NF}' "$dir/wrk.out")
    echo "$rps ${p99:-?} ${bad:-0}"
}

# bench LABEL_A URL_A LABEL_B URL_B PATH SCRIPT: alternating rounds, medians.
compare() {
    local what=$1 a=$2 b=$3 path=$4 script=$5
    local ra=() rb=() pa=() pb=()
    for i in $(seq "$rounds"); do
        read -r r p _ < <(load "$a$path" "$script"); ra+=("$r"); pa+=("$p")
        read -r r p _ < <(load "$b$path" "$script"); rb+=("$r"); pb+=("$p")
    done
    python3 - "$what" "${ra[*]}" "${rb[*]}" "${pa[*]}" "${pb[*]}" <<'PY'
import statistics, sys
what, ra, rb, pa, pb = sys.argv[1], *[list(map(float, a.split())) for a in sys.argv[2:]]
mra, mrb, mpa, mpb = map(statistics.median, (ra, rb, pa, pb))
print(f"| {what} | {mra:,.0f}/s, p99 {mpa:.1f} ms | {mrb:,.0f}/s, p99 {mpb:.1f} ms | {mrb/mra:.2f}× | {mpb/mpa:.2f}× |")
PY
}

echo "| load (wrk -c$connections, $duration × $rounds, medians) | plain | TLS | throughput TLS/plain | p99 TLS/plain |"
echo "|---|---|---|---|---|"
serve plain 19781 "$dir/plain.sqlite3" 0
serve tls 19782 "$dir/tls.sqlite3" 1
for port in 19781 19782; do
    scheme=http; [ $port = 19782 ] && scheme=https
    curl -sf --cacert "$dir/pki/ca.pem" -X POST -H "Authorization: Bearer bench" \
        -d "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$dir/dup.lua")" "$scheme://127.0.0.1:$port/hooks/alertmanager" >/dev/null
done
compare "Alertmanager re-sends (dedup), SQLite" http://127.0.0.1:19781 https://127.0.0.1:19782 /hooks/alertmanager "$dir/dup.lua"
compare "new run per request, SQLite" http://127.0.0.1:19781 https://127.0.0.1:19782 /hooks/run/disk-full "$dir/run.lua"

# The same database on the same server (the TLS cluster's runbook_plain takes both), emptied
# between the two: only the link differs.
if [ -s /tmp/runbook-pg-tls/url ]; then
    base="$(dirname "$(cat /tmp/runbook-pg-tls/url)")/runbook_plain"
    admin=(psql -h /tmp/runbook-pg-tls -p 54339 -U postgres -d runbook_plain -q)
    reset() { "${admin[@]}" -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION runbook" >/dev/null 2>&1; }
    reset
    serve pg-plain 19783 "$base?sslmode=disable" 0
    serve pg-tls 19784 "$base?sslmode=verify-full&sslrootcert=/tmp/runbook-pg-tls/certs/ca.pem" 0
    compare "new run per request, PostgreSQL store: plain vs verify-full" http://127.0.0.1:19783 http://127.0.0.1:19784 /hooks/run/disk-full "$dir/run.lua"
    kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=()
    reset
else
    echo "(PostgreSQL row skipped: scripts/test-env.sh starts the TLS cluster)"
fi
