#!/usr/bin/env bash
# Memory under load: 50,000 webhook runs of a no-op playbook in bursts through one `host serve`;
# after each burst the queue drains and the server's resident size is printed. The last burst's
# RSS must stay within +10 MiB of the first's (runs leave nothing behind in the server).
#
#   scripts/bench-soak.sh [HOST_BIN] [BASELINE_HOST_BIN]
# HOST_BIN defaults to target/release/host (built first when missing); BASELINE_HOST_BIN, when
# given (main's build, say), is measured the same way first. RUNS (50000), BURSTS (5).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench-serve-lib.sh"
host=$(realpath "${1:-$root/target/release/host}")
baseline=${2:+$(realpath "$2")}
runs=${RUNS:-50000}
bursts=${BURSTS:-5}
[ -x "$host" ] || (cd "$root" && cargo build --release --locked -p runbook-host)
ensure_wrk
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT

cat > "$dir/host.toml" <<'TOML'
plugin-dirs = ["@PLUGINS@"]
[server]
queue-limit = 1000000
max-concurrent-runs = 4
[plugins.noop]
max-concurrent = 4
[webhooks.run]
auth = { kind = "bearer", token = { env = "BENCH_TOKEN" } }
TOML
cat > "$dir/burst.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer bench"
wrk.headers["Content-Type"] = "application/json"
wrk.body = "{}"
local share = tonumber(os.getenv("PER_THREAD"))
local answered = 0
function response(status, headers, body)
    answered = answered + 1
    if answered >= share then wrk.thread:stop() end
end
LUA

soak() {
    local bin=$1 name=$2 port=$3
    start_server "$bin" "$name" "$port"
    local idle first= last
    idle=$(settled_rss "$pid")
    echo "== $name ($bin)"
    echo "idle RSS: $idle MiB"
    for b in $(seq "$bursts"); do
        local sent
        sent=$(burst "$port" "$dir/burst.lua" "http://127.0.0.1:$port/hooks/run/noop" $((runs / bursts)))
        wait_drained "$port"
        last=$(settled_rss "$pid")
        [ -z "${first:-}" ] && first=$last
        echo "burst $b: $sent runs accepted, RSS after drain $last MiB"
    done
    local stored
    stored=$(sqlite3 "$dir/$name/runs.sqlite3" "select count(*) from runs where status = 'no-action'" 2>/dev/null || echo '?')
    echo "runs completed in the store: $stored"
    awk -v f="$first" -v l="$last" 'BEGIN {printf "RSS last - first burst: %+.1f MiB (goal <= +10)\n", l - f}'
    stop_server
    pid=
    eval "${name}_growth=\$(awk -v f=$first -v l=$last 'BEGIN {printf \"%+.1f\", l - f}')"
}

if [ -n "$baseline" ]; then soak "$baseline" baseline 19781; fi
soak "$host" host 19782
if [ -n "$baseline" ]; then
    echo "growth over the bursts: host ${host_growth} MiB, baseline ${baseline_growth} MiB"
fi
