#!/usr/bin/env bash
# Incremental release rebuild of the `host` binary after touching one file in a capability, in
# the console and in a store backend, in two checkouts: a baseline (OLD, e.g. a worktree of the
# commit before a change) and this one (NEW). Runs alternate OLD/NEW so both see the same noise;
# the figure to read is the ratio NEW/OLD per kind. Each checkout needs one finished
# `cargo build --release -p runbook-host` first (the script warms it once more itself).
#   scripts/bench-rebuild.sh /tmp/old-checkout [/path/to/new-checkout] [rounds]
# KINDS="console store" picks the kinds (default: capability console store).
set -euo pipefail
old="${1:?usage: bench-rebuild.sh OLD_CHECKOUT [NEW_CHECKOUT] [ROUNDS]}"
new="${2:-$(cd "$(dirname "$0")/.." && pwd)}"
rounds="${3:-2}"

# The same concern in either layout: the single host/ crate before the split, crates/ after.
file_for() {
    local tree="$1" kind="$2"
    if [ -d "$tree/crates/runbook-runtime" ]; then
        case "$kind" in
        capability) echo "$tree/crates/runbook-runtime/src/caps/fs_read/ops.rs" ;;
        console) echo "$tree/crates/runbook-server/src/ui/pages.rs" ;;
        store) echo "$tree/crates/runbook-store/src/sqlite/runs.rs" ;;
        esac
    else
        case "$kind" in
        capability) echo "$tree/host/src/caps/fs_read/ops.rs" ;;
        console) echo "$tree/host/src/server/ui/pages.rs" ;;
        store) echo "$tree/host/src/store/sqlite/runs.rs" ;;
        esac
    fi
}

build() { (cd "$1" && cargo build --release --locked -q -p runbook-host); }

rebuild_secs() {
    local tree="$1" kind="$2" start end
    touch "$(file_for "$tree" "$kind")"
    start=$(date +%s.%N)
    build "$tree"
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

for tree in "$old" "$new"; do build "$tree"; done
printf '%-11s %9s %9s %7s\n' kind old_s new_s new/old
for kind in ${KINDS:-capability console store}; do
    old_total=0
    new_total=0
    for _ in $(seq "$rounds"); do
        old_total=$(echo "$old_total + $(rebuild_secs "$old" "$kind")" | bc)
        new_total=$(echo "$new_total + $(rebuild_secs "$new" "$kind")" | bc)
    done
    printf '%-11s %9.1f %9.1f %7.2f\n' "$kind" \
        "$(echo "$old_total / $rounds" | bc -l)" "$(echo "$new_total / $rounds" | bc -l)" \
        "$(echo "$new_total / $old_total" | bc -l)"
done
