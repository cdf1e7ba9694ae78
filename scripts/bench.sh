#!/usr/bin/env bash
# Start-up figures: compile vs cached load of each built-in playbook (in one process), then
# the wall time of `host run disk-full` with a cold cache against a warm one; and what the
# grant checks cost per capability call (checked/unchecked ratio; docker needs test-env.sh); and the
# host overhead per run of a trivial playbook with the instance pool against on-demand allocation,
# plus a 1,000-run burst that must stay within the pool's memory cap.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null 2>&1 || scripts/setup.sh
cargo bench --locked -p runbook-runtime --bench startup
cargo bench --locked -p runbook-runtime --bench grants
# RUST_BACKTRACE makes every error capture a backtrace: not how a server runs, only noise here.
env -u RUST_BACKTRACE cargo bench --locked -p runbook-runtime --bench instances

host=target/release/host
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
runs=${RUNS:-20}
wall() { # prints milliseconds of one `host run disk-full`
    local start end
    start=$(date +%s%N)
    RUNBOOK_CACHE_DIR="$cache" "$host" run disk-full --json >/dev/null 2>&1 || true
    end=$(date +%s%N)
    echo $(( (end - start) / 1000 ))
}
cold=0; warm=0
for _ in $(seq "$runs"); do
    rm -rf "$cache"/*
    cold=$(( cold + $(wall) ))
    warm=$(( warm + $(wall) ))
done
awk -v c="$cold" -v w="$warm" -v n="$runs" 'BEGIN {
    printf "host run disk-full, mean of %d: cold cache %.1f ms, warm cache %.1f ms, cold/warm %.1fx\n", n, c/n/1000, w/n/1000, c/w }'
