#!/usr/bin/env bash
# What a no-op run costs PostgreSQL in statements, from webhook to finished, counted by the
# server itself (pg_stat_statements, BEGIN and COMMIT included) on a throwaway cluster of its
# own (the extension needs shared_preload_libraries, which the shared test cluster does not
# load). Everything the host sends is counted: admission, claim, lease renewal, finish, the
# NOTIFYs, the rescuer's and the queue gauge's periodic statements.
#   - alone: runs one at a time, each waited for until finished (the quiet-day cost);
#   - together: a burst of runs at once (the storm cost, where batching pays).
#
#   scripts/bench-pg-statements.sh HOST_BIN [HOST_BIN...]    RUNS (200), TOP (12 kinds shown)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench-serve-lib.sh"
runs=${RUNS:-200}
top=${TOP:-12}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d)
chmod 755 "$dir"
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$dir"; else as_pg=(); fi
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
"${as_pg[@]}" "$bin/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$dir/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.track_utility = on
CONF
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -t 60 start >/dev/null
psql() { command psql -h 127.0.0.1 -p "$pg_port" -U postgres -X "$@"; }
psql -qc "CREATE ROLE host LOGIN"

cat > "$dir/host.toml" <<TOML
plugin-dirs = ["@PLUGINS@"]
[server]
max-concurrent-runs = 4
queue-limit = 1000000
[webhooks.run]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
[plugins.noop]
max-concurrent = 4
TOML

# post PORT COUNT PARALLEL DB: COUNT run-hook requests, PARALLEL at a time; with PARALLEL 1,
# each run is waited for until it ended before the next is sent. Waiting reads the database
# as `postgres` (not counted: only the host's role is), never the host's /metrics, whose
# gauges read the store.
post() {
    python3 - "$@" "$pg_port" <<'PY'
import concurrent.futures, subprocess, sys, time, urllib.request
port, count, parallel, db, pg_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def unfinished():
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", pg_port, "-U", "postgres", "-d", db, "-XqAt", "-c",
        "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())
def drained():
    while unfinished():
        time.sleep(0.01)
def one(_):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/run/noop", data=b"{}",
        headers={"Authorization": "Bearer bench", "Content-Type": "application/json"})
    assert urllib.request.urlopen(req).status == 202
    if parallel == 1:
        drained()
with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
    list(pool.map(one, range(count)))
drained()
PY
}

# cpu_ms PID...: user + system CPU those processes have used, in ms.
cpu_ms() {
    local tick; tick=$(getconf CLK_TCK)
    for p in "$@"; do cut -d' ' -f14-15 "/proc/$p/stat" 2>/dev/null || true; done |
        awk -v t="$tick" '{s += $1 + $2} END {printf "%.0f", s * 1000 / t}'
}
# the cluster's processes (its backends come and go: read before the host stops).
cluster_pids() { local pm; pm=$(head -1 "$dir/pg/postmaster.pid"); echo "$pm" $(pgrep -P "$pm"); }

# count BIN NAME PARALLEL: statements per run the host's role sent; the kinds sent most; the
# CPU the host and the database spent per run (load-independent, unlike a rate).
count() {
    local db=$2 port
    psql -qc "CREATE DATABASE $db OWNER host"
    psql -d "$db" -qc "CREATE EXTENSION pg_stat_statements"
    port=$(free_port)
    STORE="postgres://host@127.0.0.1:$pg_port/$db" start_server "$1" "$2" "$port"; pids+=("$pid")
    post "$port" 1 1 "$db" # warm: the playbook's slot rows, the compiled playbook
    psql -d "$db" -qAtc "SELECT pg_stat_statements_reset()" >/dev/null
    local host0 db0 host1 db1
    host0=$(cpu_ms "$pid"); db0=$(cpu_ms $(cluster_pids))
    post "$port" "$runs" "$3" "$db"
    host1=$(cpu_ms "$pid"); db1=$(cpu_ms $(cluster_pids))
    stop_server
    echo "host $(echo "($host1 - $host0) * 1000 / $runs" | bc) µs, database $(echo "($db1 - $db0) * 1000 / $runs" | bc) µs" > "$dir/$2.cpu"
    psql -d "$db" -qAt -F $'\t' -c "
        WITH k AS (SELECT calls, regexp_replace(query, '\s+', ' ', 'g') AS q FROM pg_stat_statements
                   WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$db')
                     AND userid = 'host'::regrole)
        SELECT 'TOTAL', round(sum(calls)::numeric / $runs, 2), '' FROM k
        UNION ALL
        SELECT * FROM (SELECT '', round(calls::numeric / $runs, 2), left(q, 120)
                       FROM k ORDER BY calls DESC LIMIT $top) t" > "$dir/$2.tsv"
    psql -qc "DROP DATABASE $db WITH (FORCE)"
    awk -F'\t' 'NR == 1 {print $2}' "$dir/$2.tsv"
}

n=0
for host in "$@"; do
    n=$((n + 1))
    host=$(realpath "$host")
    alone=$(count "$host" "alone_$n" 1)
    together=$(count "$host" "together_$n" 32)
    echo "== $host"
    echo "statements per no-op run (webhook → finished): alone $alone, $runs sent 32 at a time $together"
    echo "CPU per run: alone $(cat "$dir/alone_$n.cpu"); 32 at a time $(cat "$dir/together_$n.cpu")"
    for mode in alone together; do
        echo "-- $mode: per run, by statement"
        tail -n +2 "$dir/${mode}_$n.tsv" | awk -F'\t' '{printf "  %6s  %s\n", $2, $3}'
    done
done
echo "$(date -u +%FT%TZ), $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
