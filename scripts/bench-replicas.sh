#!/usr/bin/env bash
# Webhook intake with the store on SQLite (one host), on PostgreSQL (one replica) and on
# PostgreSQL with two replicas sharing it, under the same wrk load in one script run: accepted
# new runs per second (a no-op playbook, each stored before its 202) and p99. With two replicas
# the load is split between them (two wrk processes, half the connections each) and the two
# share this machine's cores, so the target is no collapse: two reach at least one's rate with
# a p99 under 2x. PostgreSQL is the throwaway cluster of scripts/test-env.sh, on the same two
# cores: each host keeps as many connections as there are cores (`store-connections`), the
# usual sizing (more only queue inside the database: 16 per host tripled one replica's p99).
#
#   scripts/bench-replicas.sh [HOST_BIN]        DURATION (10s), CONNECTIONS (64)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench-serve-lib.sh"
host=$(realpath "${1:-$root/target/release/host}")
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
[ -x "$host" ] || (cd "$root" && cargo build --release --locked -p runbook-host)
ensure_wrk
"$root/scripts/test-env.sh" >/dev/null
cluster=$(cat /tmp/runbook-pg/url)
dir=$(mktemp -d)
pids=()
database=bench_$$
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; psql "$cluster" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" 2>/dev/null; rm -rf "$dir"' EXIT
psql "$cluster" -qc "CREATE DATABASE $database"
pg_url="${cluster%/*}/$database"

cat > "$dir/host.toml" <<TOML
plugin-dirs = ["@PLUGINS@"]
store-connections = ${CONNECTIONS_PER_HOST:-$(nproc)}
[server]
queue-limit = 10000000
max-concurrent-runs = 2
[webhooks.run]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[plugins.noop]
max-concurrent = 4
TOML
write_run_lua "$dir/run.lua"

# wrk_on PORT THREADS CONNECTIONS OUT: one wrk load in the background.
wrk_on() {
    wrk -t"$2" -c"$3" -d"$duration" --latency -s "$dir/run.lua" "http://127.0.0.1:$1/hooks/run/noop" >"$4" &
}
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99_ms() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$1"; }
non2xx() { awk '/Non-2xx/ {n=$5} END {print n+0}' "$1"; }

# one NAME STORE: one host on STORE under the whole load; prints "rps p99_ms".
one() {
    local port; port=$(free_port)
    STORE=$2 start_server "$host" "$1" "$port"; pids+=("$pid")
    wrk_on "$port" 2 "$connections" "$dir/$1.out"; wait $!
    stop_server
    echo "$(rps "$dir/$1.out") $(p99_ms "$dir/$1.out") $(non2xx "$dir/$1.out")"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

read -r sqlite_rps sqlite_p99 sqlite_bad <<<"$(one sqlite "")"
read -r pg1_rps pg1_p99 pg1_bad <<<"$(one pg1 "$pg_url")"

# Two replicas, half the load on each, at the same time.
port_a=$(free_port); STORE=$pg_url start_server "$host" pg2a "$port_a"; pid_a=$pid; pids+=("$pid")
port_b=$(free_port); STORE=$pg_url start_server "$host" pg2b "$port_b"; pid_b=$pid; pids+=("$pid")
wrk_on "$port_a" 1 $((connections / 2)) "$dir/pg2a.out"; wa=$!
wrk_on "$port_b" 1 $((connections / 2)) "$dir/pg2b.out"; wb=$!
wait "$wa" "$wb"
pid=$pid_a; stop_server; pid=$pid_b; stop_server
pg2_rps=$(echo "$(rps "$dir/pg2a.out") + $(rps "$dir/pg2b.out")" | bc -l)
pg2_p99=$(printf '%s\n%s\n' "$(p99_ms "$dir/pg2a.out")" "$(p99_ms "$dir/pg2b.out")" | sort -g | tail -1)
stored=$(psql "$pg_url" -Atc "SELECT count(*) FROM runs")

printf '%-34s %12s %10s %8s\n' "store" "accepted/s" "p99 ms" "non-2xx"
printf '%-34s %12.0f %10.2f %8s\n' "sqlite, one host" "$sqlite_rps" "$sqlite_p99" "$sqlite_bad"
printf '%-34s %12.0f %10.2f %8s\n' "postgres, one replica" "$pg1_rps" "$pg1_p99" "$pg1_bad"
printf '%-34s %12.0f %10.2f %8s\n' "postgres, two replicas" "$pg2_rps" "$pg2_p99" "$(( $(non2xx "$dir/pg2a.out") + $(non2xx "$dir/pg2b.out") ))"
printf 'postgres one / sqlite: %.2f; two replicas / one: %.2f (target >= 1), p99 %.2fx (target < 2); %s runs in the database; %s, %s\n' \
    "$(echo "$pg1_rps / $sqlite_rps" | bc -l)" "$(echo "$pg2_rps / $pg1_rps" | bc -l)" \
    "$(echo "$pg2_p99 / $pg1_p99" | bc -l)" "$stored" "$(date -u +%F)" "$(nproc) cores"
