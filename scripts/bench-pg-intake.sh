#!/usr/bin/env bash
# PostgreSQL intake against SQLite's, for two host binaries in one script run (each load run
# with the baseline then the candidate, back to back, so a busy machine weighs on both):
#   - new no-op runs/s and p99 (wrk -c64 on the run hook): SQLite, PostgreSQL one replica,
#     PostgreSQL two replicas sharing the load (half the connections each);
#   - the same Alertmanager alert re-sent (dedup): SQLite and PostgreSQL one replica;
#   - alert → run started, p50 over 200 alerts one at a time (the run's `running_since` minus
#     its admission time, both stored), SQLite and PostgreSQL.
# PostgreSQL is scripts/test-env.sh's throwaway cluster, on the same cores as everything else.
#
#   scripts/bench-pg-intake.sh BASELINE_BIN [CANDIDATE_BIN]    DURATION (10s), CONNECTIONS (64)
#   SWEEP=1 scripts/bench-pg-intake.sh - [CANDIDATE_BIN]: the candidate alone on PostgreSQL,
#     one replica, for each `admission-batch` × `store-connections` (how the defaults were chosen)
#   REPLICA_CPUS=0.5 scripts/bench-pg-intake.sh ...: each host in a cgroup of its own capped at
#     that many CPUs, as if every replica had its own machine, the database and wrk keeping the
#     rest; shows whether replicas add up once the CPU they share on 2 cores is not the limit
#     (needs root: cgroup v1's cpu controller or cgroup v2's cpu.max)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench-serve-lib.sh"
baseline=$([ "$1" = - ] && echo - || realpath "$1")
candidate=$(realpath "${2:-$root/target/release/host}")
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
ensure_wrk
"$root/scripts/test-env.sh" >/dev/null
cluster=$(cat /tmp/runbook-pg/url)
dir=$(mktemp -d)
# What cleanup must undo is listed in files, not arrays: the measuring functions run inside
# $(...), and a subshell's array appends never reach the trap (every database was left behind).
touch "$dir/pids" "$dir/databases" "$dir/cgroups"
cleanup() {
    while read -r p; do kill "$p" 2>/dev/null || true; done <"$dir/pids"
    while read -r d; do psql "$cluster" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" 2>/dev/null || true; done <"$dir/databases"
    while read -r g; do rmdir "$g" 2>/dev/null || true; done <"$dir/cgroups"
    rm -rf "$dir"
}
trap cleanup EXIT

# cap_cpu PID NAME: with REPLICA_CPUS set, moves the host (all its threads) into a cgroup of its
# own with that CPU quota.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then cpu_root=/sys/fs/cgroup; else cpu_root=/sys/fs/cgroup/cpu; fi
if [ -n "${REPLICA_CPUS:-}" ] && ! [ -w "$cpu_root" ]; then
    echo "REPLICA_CPUS needs a writable cgroup cpu controller at $cpu_root (run as root)" >&2
    exit 2
fi
cap_cpu() {
    [ -n "${REPLICA_CPUS:-}" ] || return 0
    local g=$cpu_root/runbook-bench-$$-$2 quota
    quota=$(echo "$REPLICA_CPUS * 100000 / 1" | bc)
    mkdir -p "$g"
    echo "$g" >>"$dir/cgroups"
    if [ "$cpu_root" = /sys/fs/cgroup ]; then
        echo "$quota 100000" >"$g/cpu.max"
    else
        echo 100000 >"$g/cpu.cfs_period_us"
        echo "$quota" >"$g/cpu.cfs_quota_us"
    fi
    echo "$1" >"$g/cgroup.procs"
}

cat > "$dir/host.toml.in" <<TOML
plugin-dirs = ["@PLUGINS@"]
store-connections = @CONNS@
@EXTRA@
[server]
queue-limit = 10000000
max-concurrent-runs = 2
dedup-window-secs = 3600
[webhooks.run]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[webhooks.alertmanager]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[plugins.noop]
max-concurrent = 4
[[route]]
matchers = ['alertname=~"Noop.*"']
playbook = "noop"
TOML
# config CONNECTIONS [EXTRA_LINE]: the hosts' host.toml (a baseline host may not know EXTRA).
config() { sed "s/@CONNS@/$1/; s/@EXTRA@/${2:-}/" "$dir/host.toml.in" > "$dir/host.toml"; }
config "${CONNECTIONS_PER_HOST:-$(nproc)}"
write_run_lua "$dir/run.lua"
alert_body() { echo '{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"'"$1"'"},"annotations":{},"startsAt":"2026-12-07T04:00:00Z","fingerprint":"'"$1"'"}]}'; }
cat > "$dir/dup.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer bench"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$(alert_body NoopDup)'
LUA

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99_ms() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$1"; }
non2xx() { awk '/Non-2xx/ {n=$5} END {print n+0}' "$1"; }
new_database() {
    local name=bench_$$_$RANDOM
    psql "$cluster" -qc "CREATE DATABASE $name"
    echo "$name" >>"$dir/databases"
    echo "${cluster%/*}/$name"
}
wrk_on() { wrk -t"$2" -c"$3" -d"$duration" --latency -s "$5" "http://127.0.0.1:$1$4" >"$6" & }

# load BIN NAME STORE PATH LUA: one host under the whole load; "rps p99 non2xx".
load() {
    local port; port=$(free_port)
    STORE=$3 start_server "$1" "$2" "$port"; echo "$pid" >>"$dir/pids"; cap_cpu "$pid" "$2"
    if [ "$4" = /hooks/alertmanager ]; then
        curl -sf -X POST -H "Authorization: Bearer bench" -d "$(alert_body NoopDup)" \
            "http://127.0.0.1:$port/hooks/alertmanager" >/dev/null
    fi
    wrk_on "$port" 2 "$connections" "$4" "$5" "$dir/$2.out"; wait $!
    stop_server
    echo "$(rps "$dir/$2.out") $(p99_ms "$dir/$2.out") $(non2xx "$dir/$2.out")"
}

# two BIN NAME: two replicas on one fresh database, half the load each.
two() {
    local url; url=$(new_database)
    local pa pb port_a port_b
    port_a=$(free_port); STORE=$url start_server "$1" "$2a" "$port_a"; pa=$pid; echo "$pid" >>"$dir/pids"; cap_cpu "$pid" "$2a"
    port_b=$(free_port); STORE=$url start_server "$1" "$2b" "$port_b"; pb=$pid; echo "$pid" >>"$dir/pids"; cap_cpu "$pid" "$2b"
    wrk_on "$port_a" 1 $((connections / 2)) /hooks/run/noop "$dir/run.lua" "$dir/$2a.out"; local wa=$!
    wrk_on "$port_b" 1 $((connections / 2)) /hooks/run/noop "$dir/run.lua" "$dir/$2b.out"; local wb=$!
    wait "$wa" "$wb"
    pid=$pa; stop_server; pid=$pb; stop_server
    local r p
    r=$(echo "$(rps "$dir/$2a.out") + $(rps "$dir/$2b.out")" | bc -l)
    p=$(printf '%s\n%s\n' "$(p99_ms "$dir/$2a.out")" "$(p99_ms "$dir/$2b.out")" | sort -g | tail -1)
    echo "$r $p $(( $(non2xx "$dir/$2a.out") + $(non2xx "$dir/$2b.out") ))"
}

# started BIN NAME STORE: p50 ms from admission to running over 200 alerts one at a time.
started() {
    local port; port=$(free_port)
    STORE=$3 start_server "$1" "$2" "$port"; echo "$pid" >>"$dir/pids"; cap_cpu "$pid" "$2"
    python3 - "$port" <<'PY'
import json, sys, time, urllib.request
port = sys.argv[1]
for i in range(200):
    body = {"version": "4", "status": "firing", "alerts": [{"status": "firing",
            "labels": {"alertname": f"NoopLatency{i}"}, "annotations": {},
            "startsAt": "2026-12-07T04:00:00Z", "fingerprint": f"lat{i}"}]}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/alertmanager",
        data=json.dumps(body).encode(), headers={"Authorization": "Bearer bench",
        "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    time.sleep(0.02)
PY
    wait_drained "$port"
    stop_server
    local rows
    if [ -n "$3" ]; then
        rows=$(psql "$3" -AtF' ' -c "SELECT started_at, running_since FROM runs")
    else
        rows=$(python3 -c "import sqlite3,sys; [print(a,b) for a,b in sqlite3.connect(sys.argv[1]).execute('SELECT started_at, running_since FROM runs')]" "$dir/$2/runs.sqlite3")
    fi
    echo "$rows" | python3 -c '
import sys, datetime, statistics
def t(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
d = [(t(b) - t(a)).total_seconds() * 1000 for a, b in (l.split() for l in sys.stdin if l.strip()) if b != "None"]
print(f"{statistics.median(d):.2f}/{statistics.mean(d):.2f}")'
}

if [ -n "${SWEEP:-}" ]; then
    printf '%-18s %-18s %12s %10s\n' admission-batch store-connections accepted/s "p99 ms"
    for batch in ${BATCHES:-1 16 64 256}; do
        for conns in ${CONNS:-2 4 8}; do
            config "$conns" "admission-batch = $batch"
            read -r r p _ <<<"$(load "$candidate" "sweep-$batch-$conns" "$(new_database)" /hooks/run/noop "$dir/run.lua")"
            printf '%-18s %-18s %12.0f %10.2f\n' "$batch" "$conns" "$r" "$p"
        done
    done
    exit 0
fi

declare -A R L
# KEY COMMAND...: runs it for both binaries, back to back; L keeps the 1-minute load average
# at its end (the machine may be shared: ratios are only fair between rows of similar load).
measure() {
    local key=$1; shift
    for which in baseline candidate; do
        local bin=${!which}
        R[$key.$which]=$("$@" "$bin" "$key-$which")
        L[$key.$which]=$(cut -d' ' -f1 /proc/loadavg)
    done
}
sqlite_runs() { load "$1" "$2" "" /hooks/run/noop "$dir/run.lua"; }
pg_runs() { load "$1" "$2" "$(new_database)" /hooks/run/noop "$dir/run.lua"; }
sqlite_dup() { load "$1" "$2" "" /hooks/alertmanager "$dir/dup.lua"; }
pg_dup() { load "$1" "$2" "$(new_database)" /hooks/alertmanager "$dir/dup.lua"; }
sqlite_started() { started "$1" "$2" ""; }
pg_started() { started "$1" "$2" "$(new_database)"; }

measure sqlite sqlite_runs
measure pg1 pg_runs
measure pg2 two
measure sqlite_dup sqlite_dup
measure pg_dup pg_dup
measure sqlite_started sqlite_started
measure pg_started pg_started

f() { echo "${R[$1.$2]}" | awk -v i="$3" '{print $i}'; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
printf '%-40s %22s %22s\n' "" "baseline" "candidate"
for key in sqlite pg1 pg2 sqlite_dup pg_dup; do
    printf '%-40s %12.0f/s %6.1fms %12.0f/s %6.1fms   (non-2xx %s / %s; load %s / %s)\n' "$key" \
        "$(f $key baseline 1)" "$(f $key baseline 2)" "$(f $key candidate 1)" "$(f $key candidate 2)" \
        "$(f $key baseline 3)" "$(f $key candidate 3)" "${L[$key.baseline]}" "${L[$key.candidate]}"
done
for key in sqlite_started pg_started; do
    printf '%-40s %14s ms p50/mean %11s ms p50/mean   (load %s / %s)\n' "$key (alert -> running)" \
        "$(f $key baseline 1)" "$(f $key candidate 1)" "${L[$key.baseline]}" "${L[$key.candidate]}"
done
for which in baseline candidate; do
    echo "$which: pg1/sqlite $(ratio "$(f pg1 $which 1)" "$(f sqlite $which 1)") (goal >= 0.8), p99 $(f pg1 $which 2) ms (goal <= 15);" \
        "pg2/pg1 $(ratio "$(f pg2 $which 1)" "$(f pg1 $which 1)") (goal >= 1.3), p99 $(ratio "$(f pg2 $which 2)" "$(f pg1 $which 2)")x (goal <= 1.5);" \
        "dedup pg/sqlite $(ratio "$(f pg_dup $which 1)" "$(f sqlite_dup $which 1)") (goal >= 0.8);" \
        "started p50 pg/sqlite $(ratio "$(f pg_started $which 1 | cut -d/ -f1)" "$(f sqlite_started $which 1 | cut -d/ -f1)") (goal <= 1.5)"
done
echo "candidate/baseline: pg1 $(ratio "$(f pg1 candidate 1)" "$(f pg1 baseline 1)"), pg2 $(ratio "$(f pg2 candidate 1)" "$(f pg2 baseline 1)"), pg dedup $(ratio "$(f pg_dup candidate 1)" "$(f pg_dup baseline 1)"); $(date -u +%F), $(nproc) cores${REPLICA_CPUS:+, each host capped at $REPLICA_CPUS CPUs}"
