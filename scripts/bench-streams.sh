#!/usr/bin/env bash
# What live timelines cost the server: GET /healthz p50/p99 over REQUESTS sequential requests
# with no stream open (the baseline) and with STREAMS console streams (`/ui/runs/{id}/events`,
# from the event the page shows, as a browser opens them) following one running run whose
# timeline is 4 MiB, while the run writes nothing new. The run is written straight into the
# SQLite store (running, its lease far away), so nothing but the streams loads the server.
# Give a second binary (main's, say) to measure it in the same run as the "before".
#
#   scripts/bench-streams.sh [HOST_BIN] [BEFORE_HOST_BIN]     REQUESTS (300) STREAMS (64)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
host=$(realpath "${1:-${CARGO_TARGET_DIR:-$root/target}/release/host}")
before=${2:-}
requests=${REQUESTS:-300}
streams=${STREAMS:-64}
[ -x "$host" ] || (cd "$root" && cargo build --release --locked -p runbook-host)
command -v sqlite3 >/dev/null || { apt-get install -y -q sqlite3 >/dev/null; }
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; jobs -p | xargs -r kill 2>/dev/null; rm -rf "$dir"' EXIT
printf '[webhooks.api]\nauth = { kind = "none" }\n' > "$dir/host.toml"

# One running run with 9 500 log events of ~440 bytes: 4 MiB of timeline.
events=9500
fill() {
    local bin=$1 store=$2
    (cd "$dir" && RUNBOOK_STORE="$store" "$bin" runs >/dev/null)
    sqlite3 "$store" <<SQL
INSERT INTO runs (id, playbook, origin, trigger, params, alert, dry_run, status, summary,
                  actions, started_at, severity, runner, lease_until_ms)
VALUES ('r-live', 'hostile', 'plugin-dir', 'webhook', '{}', NULL, 0, 'running', '', '[]',
        '2026-12-06T21:00:00.000Z', 'P3', 'bench/elsewhere', 4102444800000);
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $events - 1)
INSERT INTO events (run_id, seq, event)
SELECT 'r-live', i, json_object('at', '2026-12-06T21:00:01.000Z', 'offset_ms', i * 1.0,
       'event', 'log', 'level', 'info', 'message', printf('line %d ', i) || replace(hex(zeroblob(180)), '0', 'x'))
FROM n;
SQL
}

# Sets $port and $pid (not in a subshell: the server must outlive the call).
start() {
    local bin=$1 store=$2
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (cd "$dir" && RUNBOOK_STORE="$store" RUNBOOK_CACHE_DIR="$dir/cache" \
        exec "$bin" serve --listen "127.0.0.1:$port" >/dev/null 2>"$dir/serve.log") &
    pid=$!
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 0.05
    done
}

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# p50 and p99 in ms of `requests` GETs of /healthz (after 20 to warm up); an answer other
# than 200 (a store that did not answer in time) counts with its time and is reported.
measure() {
    local url="http://127.0.0.1:$port/healthz"
    for _ in $(seq 20); do curl -s -o /dev/null --max-time 30 "$url" || true; done
    for _ in $(seq "$requests"); do
        curl -s -o /dev/null --max-time 30 -w '%{http_code} %{time_total}\n' "$url" || true
    done | sort -k2 -n | awk '{ t[NR] = $2 * 1000; if ($1 != 200) bad++ }
        END { if (bad) printf "%d answers were not 200\n", bad > "/dev/stderr"
              printf "%.2f %.2f\n", t[int(NR * 0.50)], t[int(NR * 0.99)] }'
}

# Baseline, then with the streams open; prints "p50 p99 p50 p99".
bench() {
    local bin=$1 store="$dir/$2.sqlite3" curls=()
    fill "$bin" "$store"
    start "$bin" "$store"
    local bytes
    bytes=$(curl -sf "http://127.0.0.1:$port/runs/r-live" | python3 -c \
        'import json, sys; print(sum(len(json.dumps(e)) for e in json.load(sys.stdin)["timeline"]))')
    echo "timeline of the followed run: $bytes bytes of JSON" >&2
    read -r idle50 idle99 < <(measure)
    for _ in $(seq "$streams"); do
        curl -sN -o /dev/null "http://127.0.0.1:$port/ui/runs/r-live/events?from=$events" &
        curls+=($!)
    done
    sleep 2
    local open
    open=$(ss -tn state established "( dport = :$port )" | tail -n +2 | wc -l)
    echo "streams open: $open" >&2
    read -r busy50 busy99 < <(measure)
    kill "${curls[@]}" 2>/dev/null || true
    wait "${curls[@]}" 2>/dev/null || true
    stop
    echo "$idle50 $idle99 $busy50 $busy99"
}

printf '%-34s %8s %8s\n' "GET /healthz (ms)" p50 p99
read -r a50 a99 b50 b99 < <(bench "$host" after)
if [ -n "$before" ]; then
    read -r c50 c99 d50 d99 < <(bench "$(realpath "$before")" before)
    printf '%-34s %8s %8s\n' "before: 0 streams" "$c50" "$c99"
    printf '%-34s %8s %8s\n' "before: $streams streams" "$d50" "$d99"
    awk -v a="$d99" -v b="$c99" 'BEGIN { printf "before: p99 with streams / without: %.1f\n", a / b }'
fi
printf '%-34s %8s %8s\n' "0 streams" "$a50" "$a99"
printf '%-34s %8s %8s\n' "$streams streams on a 4 MiB run" "$b50" "$b99"
awk -v a="$b99" -v b="$a99" 'BEGIN { printf "p99 with streams / without: %.1f\n", a / b }'
awk -v p="$b99" 'BEGIN { if (p >= 50) { print "FAIL: p99 over 50 ms with the streams open"; exit 1 } }'
