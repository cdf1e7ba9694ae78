#!/usr/bin/env bash
# Real backends the end-to-end tests use, started when missing and left running:
# a Docker engine (Debian's docker.io) and a busybox image built FROM scratch from Debian's
# busybox-static (no registry is reachable). Idempotent; safe to run before every test run.
set -euo pipefail

IMAGE=runbook-test/busybox:1

ensure_docker() {
    if docker info >/dev/null 2>&1; then return; fi
    if ! command -v dockerd >/dev/null; then
        echo "test-env: installing docker.io" >&2
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
    fi
    if ! docker info >/dev/null 2>&1; then
        echo "test-env: starting dockerd (log: /tmp/runbook-dockerd.log)" >&2
        nohup dockerd >/tmp/runbook-dockerd.log 2>&1 &
        for _ in $(seq 60); do
            docker info >/dev/null 2>&1 && return
            sleep 1
        done
        echo "test-env: dockerd did not answer within 60s; see /tmp/runbook-dockerd.log" >&2
        tail -20 /tmp/runbook-dockerd.log >&2 || true
        exit 1
    fi
}

build_image() {
    if docker image inspect "$IMAGE" >/dev/null 2>&1; then return; fi
    local dir
    dir=$(mktemp -d)
    (
        cd "$dir"
        apt-get download busybox-static >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get download busybox-static >/dev/null; }
        dpkg -x busybox-static_*.deb root
        cp root/bin/busybox busybox
        printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["/bin/sh"]\n' > Dockerfile
        docker build -q -t "$IMAGE" --label runbook-test=1 . >/dev/null
    )
    rm -rf "$dir"
    echo "test-env: built $IMAGE" >&2
}

# Prometheus Alertmanager (Debian's prometheus-alertmanager, with amtool) for the webhook
# tests; each test starts its own process on 127.0.0.1, so the package's service is not used.
ensure_alertmanager() {
    if [ -x /usr/bin/prometheus-alertmanager ]; then return; fi
    echo "test-env: installing prometheus-alertmanager" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q prometheus-alertmanager >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q prometheus-alertmanager >/dev/null
    }
}

# A real SMTP server for the email notify kind: aiosmtpd under Debian's python3.
ensure_aiosmtpd() {
    if /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then return; fi
    echo "test-env: installing python3-aiosmtpd" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q python3-aiosmtpd >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q python3-aiosmtpd >/dev/null
    }
}

ensure_docker
build_image
ensure_alertmanager
ensure_aiosmtpd
