# Shared by scripts/bench-soak.sh and scripts/bench-intake.sh (sourced, not run): builds the
# no-op playbook once, starts `host serve` on a fresh sandbox and reads its queue and memory.
# Needs: $dir (a temp dir), $root (the repository).

noop_wasm() {
    local wasm=$root/target/guests/wasm32-wasip2/release/noop.wasm
    if [ ! -f "$wasm" ]; then
        # The same target dir tests/build.rs uses, so nothing is built twice.
        (cd "$root" && env -u CARGO_TARGET_DIR cargo build -q --release --locked \
            --target wasm32-wasip2 -p noop --target-dir "$root/target/guests")
    fi
    echo "$wasm"
}

# write_run_lua FILE: a wrk script POSTing `{}` with the benchmarks' bearer token.
write_run_lua() {
    cat > "$1" <<'LUA'
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer bench"
wrk.headers["Content-Type"] = "application/json"
wrk.body = "{}"
LUA
}

ensure_wrk() {
    command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
}

# start_server BINARY NAME PORT: a host serve on its own store and cache under $dir/NAME (or on
# $STORE when set, a PostgreSQL URL say), with the no-op playbook in its plugin dir; config
# from $dir/host.toml. Sets $pid.
start_server() {
    local bin=$1 name=$2 port=$3
    mkdir -p "$dir/$name/plugins"
    cp "$(noop_wasm)" "$dir/$name/plugins/noop.wasm"
    sed "s|@PLUGINS@|$dir/$name/plugins|" "$dir/host.toml" > "$dir/$name/host.toml"
    (cd "$dir/$name" && BENCH_TOKEN=bench RUNBOOK_STORE="${STORE:-$dir/$name/runs.sqlite3}" \
        RUNBOOK_CACHE_DIR="$dir/$name/cache" exec "$bin" serve --listen "127.0.0.1:$port" \
        2>"$dir/$name/serve.log" >/dev/null) &
    pid=$!
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0
        sleep 0.1
    done
    echo "host serve did not start:" >&2
    cat "$dir/$name/serve.log" >&2
    return 1
}

stop_server() {
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

gauge() {
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'
}

# wait_drained PORT: until no run is queued or running.
wait_drained() {
    local port=$1
    while true; do
        local queued running
        queued=$(gauge "$port" runbook_queue_depth)
        running=$(gauge "$port" runbook_running_runs)
        [ "${queued:-1}" = 0 ] && [ "${running:-1}" = 0 ] && return 0
        sleep 0.2
    done
}

# settled_rss PID: the resident size once it stops moving (the idle trim runs after a drain).
settled_rss() {
    local last now
    last=$(rss_mib "$1")
    for _ in $(seq 20); do
        sleep 0.5
        now=$(rss_mib "$1")
        [ "$now" = "$last" ] && break
        last=$now
    done
    echo "$last"
}

# accepted PORT ENDPOINT: webhook requests answered 202 so far.
accepted() {
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk -v e="endpoint=\"$2\"" 'index($0, "runbook_webhook_requests_total{") == 1 && index($0, e) && index($0, "status=\"202\"") {print $2}'
}

# burst PORT LUA URL COUNT: wrk (2 threads, 32 connections) until the server accepted COUNT
# more runs. Each wrk thread stops itself after its share (PER_THREAD, read by the Lua script);
# the process, which would sleep out -d, is then stopped by its pid.
burst() {
    local port=$1 lua=$2 url=$3 count=$4
    local before
    before=$(accepted "$port" run)
    before=${before:-0}
    PER_THREAD=$((count / 2)) wrk -t2 -c32 -d600s -s "$lua" "$url" >"$dir/wrk.out" 2>&1 &
    local wrk_pid=$!
    while true; do
        local now
        now=$(accepted "$port" run)
        [ "${now:-0}" -ge $((before + count)) ] && break
        kill -0 "$wrk_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    local after
    after=$(accepted "$port" run)
    echo $((after - before))
}
