#!/usr/bin/env bash
# The console's runs page (`GET /ui/runs`, newest first, 50 a page) with 100 000 runs in the
# store against the same page with 100 runs: p50/p99 over REQUESTS sequential requests each,
# and the ratio. The runs are bulk-inserted into the SQLite file (after `host` created its
# schema), spread over a month, several playbooks, statuses and priorities; a filtered page
# (a rare status) and a page deep in the keyset (before= a cursor in the middle) are measured
# too, on the big store.
#
#   scripts/bench-console.sh [HOST_BIN]       REQUESTS (300)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
host=$(realpath "${1:-${CARGO_TARGET_DIR:-$root/target}/release/host}")
requests=${REQUESTS:-300}
[ -x "$host" ] || (cd "$root" && cargo build --release --locked -p runbook-host)
command -v sqlite3 >/dev/null || { apt-get install -y -q sqlite3 >/dev/null; }
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
printf '[webhooks.api]\nauth = { kind = "none" }\n' > "$dir/host.toml"

# A store with `count` runs.
fill() {
    local store=$1 count=$2
    (cd "$dir" && RUNBOOK_STORE="$store" "$host" runs >/dev/null)
    sqlite3 "$store" <<SQL
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $count - 1)
INSERT INTO runs (id, playbook, origin, trigger, params, alert, dry_run, status, summary,
                  actions, started_at, ended_at, severity, node)
SELECT printf('r%08d', i),
       CASE i % 4 WHEN 0 THEN 'disk-full' WHEN 1 THEN 'bot-down' WHEN 2 THEN 'web-down' ELSE 'security' END,
       'builtin', CASE i % 3 WHEN 0 THEN 'alert' ELSE 'webhook' END, '{}', NULL, i % 2,
       CASE WHEN i % 997 = 0 THEN 'failed' WHEN i % 5 = 0 THEN 'mitigated' ELSE 'resolved' END,
       'summary of run ' || i, '[]',
       strftime('%Y-%m-%dT%H:%M:%f', '2026-10-26', '+' || (i * 26) || ' seconds') || 'Z',
       strftime('%Y-%m-%dT%H:%M:%f', '2026-10-26', '+' || (i * 26 + 3) || ' seconds') || 'Z',
       'P' || (1 + i % 4), CASE WHEN i % 10 = 0 THEN 'edge-1' END
FROM n;
SQL
}

# Sets $port and $pid (not in a subshell: the server must outlive the call, not hold its output).
start() {
    local store=$1
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (cd "$dir" && RUNBOOK_STORE="$store" RUNBOOK_CACHE_DIR="$dir/cache" \
        exec "$host" serve --listen "127.0.0.1:$port" >/dev/null 2>"$dir/serve.log") &
    pid=$!
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 0.05
    done
}

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# p50 and p99 in ms of `requests` GETs of a path (after 20 to warm up).
measure() {
    local url=$1
    for _ in $(seq 20); do curl -sf -o /dev/null "$url"; done
    for _ in $(seq "$requests"); do
        curl -sf -o /dev/null -w '%{time_total}\n' "$url"
    done | sort -n | awk '{ t[NR] = $1 * 1000 }
        END { printf "%.2f %.2f\n", t[int(NR * 0.50)], t[int(NR * 0.99)] }'
}

fill "$dir/small.sqlite3" 100
fill "$dir/big.sqlite3" 100000
echo "runs in the stores: $(sqlite3 "$dir/small.sqlite3" 'SELECT count(*) FROM runs') and $(sqlite3 "$dir/big.sqlite3" 'SELECT count(*) FROM runs')"

start "$dir/small.sqlite3"
read -r small50 small99 < <(measure "http://127.0.0.1:$port/ui/runs")
stop
start "$dir/big.sqlite3"
# The page measured is the real one: the newest run first, 50 rows.
page=$(curl -sf "http://127.0.0.1:$port/ui/runs")
grep -q 'href="/ui/runs/r00099999"' <<<"$page" || { echo "FAIL: the newest run is not on the page"; exit 1; }
[ "$(grep -o 'class="run"' <<<"$page" | wc -l)" = 50 ] || { echo "FAIL: not 50 rows"; exit 1; }
read -r big50 big99 < <(measure "http://127.0.0.1:$port/ui/runs")
read -r rare50 rare99 < <(measure "http://127.0.0.1:$port/ui/runs?status=failed&priority=P2")
read -r deep50 deep99 < <(measure "http://127.0.0.1:$port/ui/runs?playbook=web-down&before=2026-11-10T00:00:00.000Z%7Cr99999999")
stop

printf '%-44s %8s %8s\n' "GET /ui/runs (ms)" p50 p99
printf '%-44s %8s %8s\n' "100 runs" "$small50" "$small99"
printf '%-44s %8s %8s\n' "100 000 runs" "$big50" "$big99"
printf '%-44s %8s %8s\n' "100 000 runs, status=failed&priority=P2" "$rare50" "$rare99"
printf '%-44s %8s %8s\n' "100 000 runs, playbook + cursor mid-month" "$deep50" "$deep99"
awk -v a="$big50" -v b="$small50" -v c="$big99" -v d="$small99" \
    'BEGIN { printf "ratio 100 000 / 100 runs: p50 %.2f, p99 %.2f\n", a / b, c / d }'
awk -v p="$big99" 'BEGIN { if (p >= 50) { print "FAIL: p99 over 50 ms"; exit 1 } }'
