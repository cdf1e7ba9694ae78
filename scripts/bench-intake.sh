#!/usr/bin/env bash
# Webhook intake of `host serve` under wrk on loopback: accepted new runs per second with p50/p99
# (each a new run of a no-op playbook, stored before the 202), the same Alertmanager alert re-sent
# (dedup path), and new runs of the built-in disk-full (whose execution competes for the CPU).
# Runs execute as the queue allows (queue-limit high), so execution does not hide intake.
#
#   scripts/bench-intake.sh [HOST_BIN] [BASELINE_HOST_BIN]
# HOST_BIN defaults to target/release/host; BASELINE_HOST_BIN (main's build, say) is measured
# the same way right before it and the ratios printed. DURATION (10s), CONNECTIONS (64).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench-serve-lib.sh"
host=$(realpath "${1:-$root/target/release/host}")
baseline=${2:+$(realpath "$2")}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
[ -x "$host" ] || (cd "$root" && cargo build --release --locked -p runbook-host)
ensure_wrk
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT

cat > "$dir/host.toml" <<'TOML'
plugin-dirs = ["@PLUGINS@"]
[server]
queue-limit = 10000000
max-concurrent-runs = 2
[webhooks.alertmanager]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[webhooks.run]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[[route]]
matchers = ['alertname="Noop"']
playbook = "noop"
TOML
write_run_lua "$dir/run.lua"
sed 's|^wrk.body = .*|wrk.body = '"'"'{"paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100"}'"'"'|' \
    "$dir/run.lua" > "$dir/disk-full.lua"
cat > "$dir/dup.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer bench"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Noop"},"annotations":{},"startsAt":"2026-11-25T10:00:00Z","fingerprint":"bench"}]}'
LUA

# load NAME LUA PATH: prints "req/s p50 p99 non2xx" of one wrk load.
load() {
    local out
    out=$(wrk -t2 -c"$connections" -d"$duration" --latency -s "$2" "http://127.0.0.1:$port$3")
    local rps p50 p99 bad
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    bad=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    echo "$rps $p50 $p99 ${bad:-0}"
}

# measure BINARY NAME PORT: sets ${NAME}_new, ${NAME}_dup, ${NAME}_disk (each "rps p50 p99 bad").
measure() {
    local bin=$1 name=$2
    port=$3
    start_server "$bin" "$name" "$port"
    # The alert's first delivery starts its one run; the load only re-sends it.
    curl -sf -X POST -H "Authorization: Bearer bench" \
        -d "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$dir/dup.lua")" \
        "http://127.0.0.1:$port/hooks/alertmanager" >/dev/null
    local dup new disk
    dup=$(load dup "$dir/dup.lua" /hooks/alertmanager)
    new=$(load new "$dir/run.lua" /hooks/run/noop)
    local stored
    stored=$(sqlite3 "$dir/$name/runs.sqlite3" "select count(*) from runs" 2>/dev/null || echo '?')
    disk=$(load disk "$dir/disk-full.lua" /hooks/run/disk-full)
    printf '%-9s %-34s %10s %9s %9s %7s\n' "$name" "new run per request (noop)" $new
    printf '%-9s %-34s %10s %9s %9s %7s\n' "$name" "re-sent alert (dedup)" $dup
    printf '%-9s %-34s %10s %9s %9s %7s\n' "$name" "new run per request (disk-full)" $disk
    echo "$name: runs in the store after the noop load: $stored; RSS $(rss_mib "$pid") MiB"
    stop_server
    pid=
    eval "${name}_new=(\$new) ${name}_dup=(\$dup) ${name}_disk=(\$disk)"
}

echo "wrk -t2 -c$connections -d$duration on 127.0.0.1, $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %-34s %10s %9s %9s %7s\n' binary load "req/s" p50 p99 non-2xx
if [ -n "$baseline" ]; then measure "$baseline" baseline 19791; fi
measure "$host" host 19792
if [ -n "$baseline" ]; then
    for load in new dup disk; do
        eval "h=(\"\${host_$load[@]}\") b=(\"\${baseline_$load[@]}\")"
        awk -v l="$load" -v h="${h[0]}" -v b="${b[0]}" \
            'BEGIN {printf "%-5s accepted/s: host %.0f, baseline %.0f, host/baseline %.2f\n", l, h, b, h / b}'
    done
fi
