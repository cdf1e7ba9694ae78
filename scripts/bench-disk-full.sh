#!/usr/bin/env bash
# `host run disk-full` against the same work by hand in bash: df of the mounts, du of the suspect
# paths (largest entries, one filesystem), find of old backups, `docker system df`. The suspect
# paths are a generated tree under $TREE (default /tmp/runbook-bench-disk-full, written once:
# 4 paths x 40 dirs x 500 files, plus 50 backups of which half are old). Caches warm for both;
# best of ROUNDS (default 5). HOST=another build to compare. Needs Docker for `docker system df`.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
host=${HOST:-$target/release/host}
tree=${TREE:-/tmp/runbook-bench-disk-full}
rounds=${ROUNDS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RUNBOOK_STORE=$work/runs.sqlite3 RUNBOOK_CACHE_DIR=$work/cache
unset RUNBOOK_CONFIG

if [[ ! -e $tree/.done ]]; then
    echo "writing $tree (once)..." >&2
    for p in logs cache data home; do
        for d in $(seq 40); do
            mkdir -p "$tree/$p/d$d"
            (cd "$tree/$p/d$d" && seq 500 | xargs -n 250 touch && truncate -s $((d * 4096)) 1)
        done
    done
    mkdir -p "$tree/backups"
    for b in $(seq 50); do
        touch "$tree/backups/b$b.tar.gz"
        (( b % 2 )) && touch -d '30 days ago' "$tree/backups/b$b.tar.gz"
    done
    touch "$tree/.done"
fi
paths="$tree/logs,$tree/cache,$tree/data,$tree/home"
mounts=/

by_hand() {
    df -P $mounts >/dev/null
    for p in ${paths//,/ }; do du -x -d1 -B1 "$p" | sort -rn | head -n 11 >/dev/null; done
    find "$tree/backups" -maxdepth 64 -type f -name '*.tar.gz' -mtime +7 >/dev/null
    docker system df >/dev/null
}

# The built-in grants (fs metadata of /, `docker system df`, notify ops): no host.toml.
cd "$work"
with_host() {
    "$host" run disk-full -p "mounts=$mounts" -p "paths=$paths" -p "backups=$tree/backups" \
        -p warn-percent=99 -p critical-percent=100 --json >"$work/out.json" 2>/dev/null || true
}
with_host; by_hand  # compile once, caches warm
python3 -c "import json; r=json.load(open('$work/out.json')); print('host run:', r['status'], '-', r['summary'][:160])"

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# Sets cpu: CPU (user + system) of this shell's finished children so far, in ms (`times`, line
# 2; run in this shell, not a subshell, to see this shell's children).
children_cpu() {
    times >"$work/times"
    cpu=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/);
                         printf "%d\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$work/times")
}
# Rounds alternate host and bash, so a neighbour's load hits both alike. Wall time is what the
# ratio is about; CPU time is printed too: with the cores busy elsewhere, the host's walk in
# parallel cannot help and the comparison is the work each side does.
host_ms=999999 hand_ms=999999 host_cpu=999999 hand_cpu=999999
for _ in $(seq "$rounds"); do
    children_cpu; c=$cpu; start=$(date +%s%N); with_host
    t=$(ms "$start"); (( t < host_ms )) && host_ms=$t
    children_cpu; t=$(( cpu - c )); (( t < host_cpu )) && host_cpu=$t
    children_cpu; c=$cpu; start=$(date +%s%N); by_hand
    t=$(ms "$start"); (( t < hand_ms )) && hand_ms=$t
    children_cpu; t=$(( cpu - c )); (( t < hand_cpu )) && hand_cpu=$t
done
printf 'disk-full: host %d ms, bash by hand %d ms, ratio %.2f (target <= 0.6), best of %d, %s\n' \
    "$host_ms" "$hand_ms" "$(echo "$host_ms / $hand_ms" | bc -l)" "$rounds" "$(date -u +%F)"
printf 'cpu time (user+sys): host %d ms, bash by hand %d ms, ratio %.2f; load average %s\n' \
    "$host_cpu" "$hand_cpu" "$(echo "$host_cpu / $hand_cpu" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
