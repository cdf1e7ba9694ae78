#!/usr/bin/env bash
# fs-read grep against GNU grep: the security playbook's five patterns over a generated ~1 GB
# auth/web log (written once to $LOG, default /tmp/runbook-bench-grep.log, then reused), each as
# a whole `host run` of the hostile playbook's `fsperf-grep` case (one case-insensitive fs-read
# grep) against `grep -ciE` with the same pattern; counts must agree. Page cache warm for both;
# best of ROUNDS (default 3) per pattern. Needs target/release/host and the hostile guest
# (built by `cargo test -p runbook-tests`).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
host=${HOST:-$target/release/host}  # HOST=another build to compare
hostile=$target/guests/wasm32-wasip2/release/hostile.wasm
log=${LOG:-/tmp/runbook-bench-grep.log}
rounds=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export LC_ALL=C.UTF-8 RUNBOOK_STORE=$work/runs.sqlite3 RUNBOOK_CACHE_DIR=$work/cache
unset RUNBOOK_CONFIG

# The security playbook's categories (plugins/security/src/lib.rs), `\d` spelled for grep -E.
patterns=(
    'failed password for|authentication failure|failed login|login failed'
    'accepted (password|publickey|keyboard-interactive) for|login succeeded|login successful'
    'unauthorized|forbidden|permission denied|(^|\s)40[13](\s|$)'
    'rate.?limit|too many requests|(^|\s)429(\s|$)'
    'sudo(\[[0-9]+\])?:.*command='
)

if [[ ! -s $log ]]; then
    echo "writing $log (once)..." >&2
    python3 - "$log" <<'PY'
import random, sys
random.seed(13)
quiet = [
    "sshd[{p}]: Connection closed by 10.0.{a}.{b} port {p}",
    "web: GET /api/v1/items/{p} 200 {a}ms",
    "cron[{p}]: (root) CMD (run-parts /etc/cron.hourly)",
    "kernel: eth0: link up, 1000 Mbps, full duplex",
    "app: request id={p} user={a} took {b}ms",
    "systemd[1]: Started Session {p} of user deploy.",
]
loud = [
    "sshd[{p}]: Failed password for root from 10.0.{a}.{b} port 22 ssh2",
    "sshd[{p}]: Accepted publickey for deploy from 10.0.{a}.{b}",
    "pam_unix(sshd:auth): authentication failure; rhost=10.0.{a}.{b}",
    "web: GET /admin 403 Forbidden",
    "web: GET /api 401 ",
    "web: 429 Too Many Requests from 10.0.{a}.{b}",
    "sudo[{p}]:   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh",
]
chunk = []
for i in range(20000):  # ~1.3 MB; 2% of lines worth reporting
    t = random.choice(loud) if random.random() < 0.02 else random.choice(quiet)
    p, a, b = random.randrange(100, 99999), random.randrange(256), random.randrange(256)
    chunk.append(f"Nov 25 23:{i % 60:02}:{i % 59:02} web-1 " + t.format(p=p, a=a, b=b) + "\n")
chunk = "".join(chunk).encode()
with open(sys.argv[1], "wb") as f:
    for _ in range(10**9 // len(chunk)):
        f.write(chunk)
PY
fi
cat "$log" >/dev/null  # page cache warm for both sides

mkdir -p "$work/plugins"
cp "$hostile" "$work/plugins/hostile.wasm"
cat >"$work/host.toml" <<TOML
plugin-dirs = ["plugins"]
[plugins.hostile]
deadline-secs = 60
[plugins.hostile.grants]
fs-read = ["$(dirname "$log")"]
TOML
cd "$work"
summary() { python3 -c "import json,sys; r=json.load(sys.stdin); print(r['summary'] if r['status']=='no-action' else 'FAILED: '+r['reason'])"; }
"$host" run hostile -p case=fsperf-grep -p "target=$log|x" --json >/dev/null 2>&1 || true  # compile once

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
printf '%-40s %10s %10s %9s %9s %6s\n' pattern "host ms" "grep ms" "host n" "grep n" ratio
host_total=0 grep_total=0
for pattern in "${patterns[@]}"; do
    best_host=999999 best_grep=999999
    for _ in $(seq "$rounds"); do
        start=$(date +%s%N)
        answer=$("$host" run hostile -p case=fsperf-grep -p "target=$log|$pattern" --json 2>/dev/null | summary)
        t=$(ms "$start"); (( t < best_host )) && best_host=$t
        start=$(date +%s%N)
        count=$(grep -ciE "$pattern" "$log")
        t=$(ms "$start"); (( t < best_grep )) && best_grep=$t
    done
    host_count=${answer%% *}
    [[ $host_count == "$count" ]] || echo "COUNT MISMATCH for $pattern: host '$answer', grep $count" >&2
    printf '%-40.40s %10d %10d %9s %9s %6.2f\n' "$pattern" "$best_host" "$best_grep" "$host_count" "$count" \
        "$(echo "$best_host / $best_grep" | bc -l)"
    host_total=$((host_total + best_host)) grep_total=$((grep_total + best_grep))
done
printf 'total: host %d ms, GNU grep %d ms, ratio %.2f (target <= 1.0) on %s, %s\n' "$host_total" "$grep_total" \
    "$(echo "$host_total / $grep_total" | bc -l)" "$(du -h "$log" | cut -f1)" "$(date -u +%F)"
