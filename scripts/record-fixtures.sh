#!/usr/bin/env bash
# Re-records the built-in playbooks' fixtures (plugins/*/tests/*.json) from real runs: real
# containers (the runbook-test/busybox:1 image of scripts/test-env.sh), real files and real
# HTTP on 127.0.0.1. `cargo test -p runbook-tests --test fixtures` replays them with no Docker.
# Names, ports and paths are fixed so a re-recording differs only where behaviour does.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=${HOST:-target/release/host}
WS=/tmp/runbook-fixtures
IMAGE=runbook-test/busybox:1
export RUNBOOK_CACHE_DIR=$WS/cache RUNBOOK_STORE=$WS/runs.sqlite3

cleanup() { docker rm -f rbf-bot rbf-web rbf-hog >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
rm -rf "$WS" && mkdir -p "$WS"

# record PLAYBOOK NAME CONFIG [host run args...]: a run, its fixture; the exit code is kept.
record() {
    local playbook=$1 name=$2 config=$3; shift 3
    mkdir -p "plugins/$playbook/tests"
    "$HOST" run "$playbook" --config "$config" --notify-wait 5 --json \
        --record "plugins/$playbook/tests/$name.json" "$@" >"$WS/$playbook-$name.log" 2>&1 || true
    [ -s "plugins/$playbook/tests/$name.json" ] || { echo "no fixture for $playbook $name"; exit 1; }
    echo "recorded plugins/$playbook/tests/$name.json"
}

# loosen PLAYBOOK NAME: what a wall clock measured (a restart's "after 1.1 s") matches any
# figure: the notify bodies are `$any`, the summary's and titles' seconds any number.
loosen() {
    python3 - "plugins/$1/tests/$2.json" <<'PY'
import json, re, sys
path = sys.argv[1]
fixture = json.load(open(path))
for call in fixture["calls"]:
    if call["interface"] == "notify":
        call["args"]["message"]["body"] = "$any"
seconds = lambda pattern: re.sub(r"\b\d+ ms\b", "[0-9]+ ms",
                                 re.sub(r"\\?\d+(\\\.\d+)? s\b", r"[0-9.]+ s", pattern))
expect = fixture["expect"]
expect["summary"] = seconds(expect["summary"])
for n in expect.get("notifications") or []:
    n["title"] = seconds(n["title"])
open(path, "w").write(json.dumps(fixture, indent=2) + "\n")
PY
}

# answer_when_asked CONFIG [host approve flags...]: once a run's question is waiting, answers
# it with `host approve` (as this login name, listed in the config's [approvers.oncall]).
answer_when_asked() {
    local config=$1 id; shift
    for _ in $(seq 300); do
        id=$("$HOST" approvals --config "$config" --json | python3 -c \
            'import json, sys; print(next((a["run_id"] for a in json.load(sys.stdin) if a["state"] == "pending"), ""))')
        if [ -n "$id" ]; then "$HOST" approve --config "$config" "$id" "$@" >/dev/null; return; fi
        sleep 0.1
    done
    echo "no question was asked"; exit 1
}

# busybox httpd on $port serving /www/health; `docker kill` makes it "down".
web() {
    docker run -d --name "$1" --label runbook-fixture=1 --network host "$IMAGE" sh -c \
        "trap 'exit 0' TERM; mkdir -p /www && echo ok > /www/health && httpd -p $2 -h /www; while true; do sleep 1; done" >/dev/null
    for _ in $(seq 50); do wget -q -O /dev/null "http://127.0.0.1:$2/health" 2>/dev/null && return; sleep 0.1; done
}

# Each playbook replays with its tests/host.toml: the grants the fixtures assume.
for p in plugins/*/; do [ -f "$p/tests/host.toml" ] || { echo "missing $p/tests/host.toml"; exit 1; }; done
none=$WS/no-grants.toml
printf '[plugins.bot-down.grants]\nnotify = ["ops"]\n[plugins.web-down.grants]\nnotify = ["ops"]\n[plugins.health-check.grants]\nnotify = ["ops"]\n[plugins.high-memory.grants]\nnotify = ["ops"]\n[plugins.disk-full.grants]\nnotify = ["ops"]\n[plugins.security.grants]\nnotify = ["security"]\n[plugins.backup-verify.grants]\nnotify = ["ops"]\n' > "$none"

# bot-down and web-down: a healthy bot, one that is down and restarted, no docker grant.
web rbf-bot 18471
record bot-down healthy plugins/bot-down/tests/host.toml -p container=rbf-bot -p health-url=http://127.0.0.1:18471/health
docker stop -t 0 rbf-bot >/dev/null
record bot-down down-restarted plugins/bot-down/tests/host.toml -p container=rbf-bot -p health-url=http://127.0.0.1:18471/health -p wait-secs=10
loosen bot-down down-restarted
docker stop -t 0 rbf-bot >/dev/null
answer_when_asked plugins/bot-down/tests/host.toml &
record bot-down down-approved plugins/bot-down/tests/host.toml -p container=rbf-bot -p health-url=http://127.0.0.1:18471/health -p wait-secs=10 -p approve-with=oncall
wait
loosen bot-down down-approved
record bot-down refused "$none" -p container=rbf-bot
web rbf-web 18472
record web-down healthy plugins/web-down/tests/host.toml -p url=http://127.0.0.1:18472/health -p container=rbf-web
docker stop -t 0 rbf-web >/dev/null
record web-down down-restarted plugins/web-down/tests/host.toml -p url=http://127.0.0.1:18472/health -p container=rbf-web -p wait-secs=10
loosen web-down down-restarted
docker stop -t 0 rbf-web >/dev/null
answer_when_asked plugins/web-down/tests/host.toml --reject --reason "not during the release" &
record web-down down-rejected plugins/web-down/tests/host.toml -p url=http://127.0.0.1:18472/health -p container=rbf-web -p approve-with=oncall
wait
loosen web-down down-rejected
docker stop -t 0 rbf-web >/dev/null
record web-down refused "$none" -p url=http://127.0.0.1:18472/health -p container=rbf-web

# health-check: all green, a stopped container and a dead URL, nothing granted.
record health-check healthy plugins/health-check/tests/host.toml -p containers=rbf-bot -p urls=http://127.0.0.1:18471/health -p mounts=/tmp -p disk-warn-percent=99.5 -p disk-critical-percent=100 -p test-channel=
docker stop -t 0 rbf-bot >/dev/null
record health-check failing plugins/health-check/tests/host.toml -p containers=rbf-bot -p urls=http://127.0.0.1:18479/health -p mounts=/tmp -p disk-warn-percent=99.5 -p disk-critical-percent=100 -p test-channel=
record health-check refused "$none" -p containers=rbf-bot -p urls=http://127.0.0.1:18479/health -p mounts=/tmp -p test-channel=

# high-memory: a small container, one over the thresholds (restart granted), nothing granted.
docker run -d --name rbf-hog --label runbook-fixture=1 "$IMAGE" sh -c "trap 'exit 0' TERM; mkdir -p /dev/shm/x; dd if=/dev/zero of=/dev/shm/x/fill bs=1M count=40 2>/dev/null; while true; do sleep 1; done" >/dev/null
sleep 2
record high-memory healthy plugins/high-memory/tests/host.toml -p containers=rbf-hog -p samples=2 -p window-secs=2
record high-memory over-restarted plugins/high-memory/tests/host.toml -p containers=rbf-hog -p samples=2 -p window-secs=2 -p warn-mb=1 -p critical-mb=2 -p restart=true -p wait-secs=10
record high-memory refused "$none" -p containers=rbf-hog -p samples=2 -p window-secs=2

# disk-full: fine, over the thresholds (prune granted), nothing granted.
mkdir -p "$WS/disk/logs" "$WS/disk/backups"
head -c 2000000 /dev/zero > "$WS/disk/logs/app.log"
touch -d '30 days ago' "$WS/disk/backups/old.tar.gz"
record disk-full healthy plugins/disk-full/tests/host.toml -p mounts=/tmp -p paths=$WS/disk -p backups=$WS/disk/backups -p warn-percent=99.5 -p critical-percent=100
# A dry run: a real prune would take every stopped container on this engine, not only ours.
record disk-full full-dry-run plugins/disk-full/tests/host.toml -p mounts=/tmp -p paths=$WS/disk -p backups=$WS/disk/backups -p warn-percent=1 -p critical-percent=2 --dry-run
record disk-full refused "$none" -p mounts=/tmp -p paths=$WS/disk -p backups=$WS/disk/backups

# security: a quiet log, a brute force, the log not granted.
mkdir -p "$WS/log"
printf 'Nov 26 03:00:00 h sshd[1]: Accepted publickey for ops from 10.0.0.2 port 1 ssh2\n' > "$WS/log/quiet.log"
for i in 1 2 3 4 5 6 7; do printf 'Nov 26 03:00:0%s h sshd[2]: Failed password for root from 203.0.113.9 port 4%s ssh2\n' "$i" "$i"; done > "$WS/log/auth.log"
record security quiet plugins/security/tests/host.toml -p logs=$WS/log/quiet.log
record security brute-force plugins/security/tests/host.toml -p logs=$WS/log/auth.log
record security contain-expired plugins/security/tests/host.toml -p logs=$WS/log/auth.log -p contain=pause -p container=rbf-bot -p approve-with=oncall -p approve-timeout-secs=1
record security refused "$none" -p logs=$WS/log/auth.log

# backup-verify: a fresh good backup, a stale and shrunken one, the directory not granted.
mkdir -p "$WS/backups/good" "$WS/backups/bad"
mkdir -p "$WS/src" && head -c 300000 /dev/urandom > "$WS/src/data"
tar -czf "$WS/backups/good/db-1.tar.gz" -C "$WS/src" data && touch -d '1 day ago' "$WS/backups/good/db-1.tar.gz"
tar -czf "$WS/backups/good/db-2.tar.gz" -C "$WS/src" data
cp "$WS/backups/good/db-1.tar.gz" "$WS/backups/bad/db-1.tar.gz" && touch -d "5 days ago" "$WS/backups/bad/db-1.tar.gz"
printf 'not a tarball' > "$WS/backups/bad/db-2.tar.gz" && touch -d '3 days ago' "$WS/backups/bad/db-2.tar.gz"
record backup-verify healthy plugins/backup-verify/tests/host.toml -p dir=$WS/backups/good
record backup-verify stale-broken plugins/backup-verify/tests/host.toml -p dir=$WS/backups/bad
record backup-verify refused "$none" -p dir=$WS/backups/good
