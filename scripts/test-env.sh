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

# A real browser for the console tests: Debian's chromium, driven through chromedriver.
ensure_chromium() {
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then return; fi
    echo "test-env: installing chromium and chromium-driver" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q chromium chromium-driver >/dev/null
    }
}

# Packet captures on loopback (the TLS fleet test looks for secrets in clear): Debian's tcpdump.
ensure_tcpdump() {
    if command -v tcpdump >/dev/null; then return; fi
    echo "test-env: installing tcpdump" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q tcpdump >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q tcpdump >/dev/null
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

# A throwaway PostgreSQL cluster for the store's PostgreSQL backend (Debian's postgresql):
# owned by the unprivileged `postgres` user (root cannot run postgres), data under /tmp,
# trust auth on 127.0.0.1 only, durability off (fsync, synchronous_commit, full_page_writes:
# tests only). Started with pg_ctl when not answering; the URL the tests use is written to
# $PG_DIR/url (scripts/test.sh exports it as RUNBOOK_TEST_POSTGRES).
PG_DIR=/tmp/runbook-pg
PG_PORT=54329
PG_URL="postgres://runbook@127.0.0.1:$PG_PORT/postgres"

ensure_postgres() {
    local bin user run
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        echo "test-env: installing postgresql" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q postgresql >/dev/null 2>&1 || {
            apt-get update -q >/dev/null
            apt-get install -y -q postgresql >/dev/null
        }
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    if [ "$(id -u)" = 0 ]; then user=postgres; run=(runuser -u postgres --); else user=$(id -un); run=(); fi
    mkdir -p "$PG_DIR"
    chown "$user" "$PG_DIR"
    if [ ! -s "$PG_DIR/data/PG_VERSION" ]; then
        echo "test-env: initdb $PG_DIR/data" >&2
        rm -rf "$PG_DIR/data"
        "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
        printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' > "$PG_DIR/data/pg_hba.conf"
        cat >> "$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 300
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    fi
    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
        echo "test-env: starting postgres on 127.0.0.1:$PG_PORT (log: $PG_DIR/log)" >&2
        touch "$PG_DIR/log" && chown "$user" "$PG_DIR/log"
        # -w: pg_ctl itself waits until the server accepts connections.
        "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 start >/dev/null || {
            echo "test-env: postgres did not start; see $PG_DIR/log" >&2
            tail -20 "$PG_DIR/log" >&2 || true
            exit 1
        }
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 30
    fi
    psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'runbook') THEN
        CREATE ROLE runbook CREATEDB LOGIN;
    END IF;
END $$;
-- The tests drop their databases WITH (FORCE), which must be able to end autovacuum workers.
GRANT pg_signal_backend TO runbook;
SQL
    echo "$PG_URL" > "$PG_DIR/url"
    echo "test-env: RUNBOOK_TEST_POSTGRES=$PG_URL" >&2
}

# A second throwaway cluster that speaks only TLS, for the store's sslmode tests: a test PKI
# made afresh whenever the cluster starts (scripts/test-certs.sh), `hostssl` only (plain text
# refused, but for the database runbook_plain, which scripts/bench-tls.sh uses to compare plain
# and TLS on one server), client certificates required for the database runbook_certs. The tests find it
# through RUNBOOK_TEST_POSTGRES_TLS (this directory: url, certs/, the socket).
PG_TLS_DIR=/tmp/runbook-pg-tls
PG_TLS_PORT=54339

ensure_postgres_tls() {
    local bin user run certs="$PG_TLS_DIR/certs"
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    if [ "$(id -u)" = 0 ]; then user=postgres; run=(runuser -u postgres --); else user=$(id -un); run=(); fi
    mkdir -p "$PG_TLS_DIR"
    chown "$user" "$PG_TLS_DIR"
    if [ ! -s "$PG_TLS_DIR/data/PG_VERSION" ]; then
        echo "test-env: initdb $PG_TLS_DIR/data" >&2
        rm -rf "$PG_TLS_DIR/data"
        "${run[@]}" "$bin/initdb" -D "$PG_TLS_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
        cat > "$PG_TLS_DIR/data/pg_hba.conf" <<HBA
local all all trust
hostssl runbook_certs all 127.0.0.1/32 cert
hostssl all all 127.0.0.1/32 trust
host runbook_plain all 127.0.0.1/32 trust
hostnossl all all 127.0.0.1/32 reject
HBA
        cat >> "$PG_TLS_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_TLS_PORT
unix_socket_directories = '$PG_TLS_DIR'
max_connections = 100
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
ssl = on
ssl_cert_file = '$certs/server.pem'
ssl_key_file = '$certs/server.key'
ssl_ca_file = '$certs/ca.pem'
CONF
    fi
    if ! "$bin/pg_isready" -q -h "$PG_TLS_DIR" -p "$PG_TLS_PORT"; then
        "$(dirname "$0")/test-certs.sh" "$certs" runbook intruder
        chown "$user" "$certs"/*.key "$certs"/*.pem && chmod 600 "$certs"/*.key
        echo "test-env: starting postgres (TLS only) on 127.0.0.1:$PG_TLS_PORT (log: $PG_TLS_DIR/log)" >&2
        touch "$PG_TLS_DIR/log" && chown "$user" "$PG_TLS_DIR/log"
        "${run[@]}" "$bin/pg_ctl" -D "$PG_TLS_DIR/data" -l "$PG_TLS_DIR/log" -w -t 60 start >/dev/null || {
            echo "test-env: postgres (TLS) did not start; see $PG_TLS_DIR/log" >&2
            tail -20 "$PG_TLS_DIR/log" >&2 || true
            exit 1
        }
    fi
    psql -q -v ON_ERROR_STOP=1 -h "$PG_TLS_DIR" -p "$PG_TLS_PORT" -U postgres -d postgres >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'runbook') THEN
        CREATE ROLE runbook CREATEDB LOGIN;
    END IF;
END $$;
GRANT pg_signal_backend TO runbook;
SELECT 'CREATE DATABASE runbook_certs OWNER runbook'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'runbook_certs')\gexec
SELECT 'CREATE DATABASE runbook_plain OWNER runbook'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'runbook_plain')\gexec
SQL
    echo "postgres://runbook@127.0.0.1:$PG_TLS_PORT/postgres" > "$PG_TLS_DIR/url"
    echo "test-env: RUNBOOK_TEST_POSTGRES_TLS=$PG_TLS_DIR" >&2
}

# Debian's PgBouncer in transaction mode in front of the plain cluster (ensure_postgres), for the
# store's pooled mode (`pgbouncer=true`): every database by the wildcard (the tests make one per
# sandbox), trust for the test roles listed in its auth file, 127.0.0.1 only, run as the
# unprivileged `postgres` user. scripts/test.sh exports the URL ($PGB_DIR/url) as
# RUNBOOK_TEST_PGBOUNCER.
PGB_DIR=/tmp/runbook-pgbouncer
PGB_PORT=6439

ensure_pgbouncer() {
    local user run
    if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
        echo "test-env: installing pgbouncer" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q pgbouncer >/dev/null 2>&1 || {
            apt-get update -q >/dev/null
            apt-get install -y -q pgbouncer >/dev/null
        }
    fi
    if [ "$(id -u)" = 0 ]; then user=postgres; run=(runuser -u postgres --); else user=$(id -un); run=(); fi
    mkdir -p "$PGB_DIR"
    chown "$user" "$PGB_DIR"
    printf '"runbook" ""\n"postgres" ""\n' > "$PGB_DIR/userlist.txt"
    cat > "$PGB_DIR/pgbouncer.ini" <<CONF
[databases]
* = host=127.0.0.1 port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir = $PGB_DIR
auth_type = trust
auth_file = $PGB_DIR/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
logfile = $PGB_DIR/log
pidfile = $PGB_DIR/pid
admin_users = postgres
CONF
    if ! psql -qAt -h 127.0.0.1 -p "$PGB_PORT" -U runbook -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
        echo "test-env: starting pgbouncer on 127.0.0.1:$PGB_PORT (log: $PGB_DIR/log)" >&2
        touch "$PGB_DIR/log" && chown "$user" "$PGB_DIR/log"
        "${run[@]}" "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" -d -q "$PGB_DIR/pgbouncer.ini"
        local i
        for i in $(seq 1 50); do
            psql -qAt -h 127.0.0.1 -p "$PGB_PORT" -U runbook -d postgres -c 'SELECT 1' >/dev/null 2>&1 && break
            sleep 0.2
        done
        psql -qAt -h 127.0.0.1 -p "$PGB_PORT" -U runbook -d postgres -c 'SELECT 1' >/dev/null || {
            echo "test-env: pgbouncer did not start; see $PGB_DIR/log" >&2
            tail -20 "$PGB_DIR/log" >&2 || true
            exit 1
        }
    fi
    echo "postgres://runbook@127.0.0.1:$PGB_PORT/postgres" > "$PGB_DIR/url"
    echo "test-env: RUNBOOK_TEST_PGBOUNCER=$(cat "$PGB_DIR/url")" >&2
}

# schemathesis (PyPI, pinned) for the OpenAPI conformance test (tests/tests/schemathesis.rs):
# in a venv of its own, so the system's Python packages are not touched.
SCHEMATHESIS_VENV=/opt/runbook-venv
SCHEMATHESIS_VERSION=4.32.5

ensure_schemathesis() {
    if "$SCHEMATHESIS_VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then return; fi
    echo "test-env: installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV" >&2
    python3 -m venv "$SCHEMATHESIS_VENV"
    "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >/dev/null
}

# The OpenID provider of the console's sign-in tests: panva's oidc-provider from npm, at the
# versions tests/oidc/package-lock.json pins, into tests/oidc/node_modules (each test binary
# starts its own provider.mjs on 127.0.0.1). Node from Debian when missing.
ensure_oidc_provider() {
    local dir
    dir="$(cd "$(dirname "$0")/.." && pwd)/tests/oidc"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "test-env: installing nodejs and npm" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q nodejs npm >/dev/null 2>&1 || {
            apt-get update -q >/dev/null
            apt-get install -y -q nodejs npm >/dev/null
        }
    fi
    # Installed already at the locked versions: the stamp holds the lock file's hash.
    local want
    want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$dir/node_modules/.runbook-lock" 2>/dev/null)" = "$want" ]; then return; fi
    echo "test-env: installing oidc-provider into $dir/node_modules" >&2
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
    echo "$want" >"$dir/node_modules/.runbook-lock"
}

# Two OCI registries (Debian's docker-registry, distribution 2.8) for the playbook-sharing tests
# (tests/tests/oci.rs): 127.0.0.1:5015 plain HTTP, open; 127.0.0.1:5016 HTTPS with a test CA
# made when it starts (certs/ca.pem) and basic auth (user runbook, password in tls/password).
# Each keeps its blobs under $REGISTRY_DIR/NAME/data, which the tamper tests overwrite.
REGISTRY_DIR=/tmp/runbook-registry

ensure_registry() {
    if [ ! -x /usr/bin/docker-registry ]; then
        echo "test-env: installing docker-registry" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null 2>&1 || {
            apt-get update -q >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null
        }
    fi
    mkdir -p "$REGISTRY_DIR/plain/data" "$REGISTRY_DIR/tls/data"
    if ! curl -fs -o /dev/null http://127.0.0.1:5015/v2/; then
        cat > "$REGISTRY_DIR/plain/config.yml" <<YML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $REGISTRY_DIR/plain/data }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:5015
YML
        echo "test-env: starting docker-registry on 127.0.0.1:5015 (log: $REGISTRY_DIR/plain/log)" >&2
        setsid nohup /usr/bin/docker-registry serve "$REGISTRY_DIR/plain/config.yml" \
            >"$REGISTRY_DIR/plain/log" 2>&1 < /dev/null &
    fi
    if ! curl -s -o /dev/null --cacert "$REGISTRY_DIR/certs/ca.pem" https://127.0.0.1:5016/v2/; then
        "$(dirname "$0")/test-certs.sh" "$REGISTRY_DIR/certs" runbook >/dev/null 2>&1
        head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$REGISTRY_DIR/tls/password"
        local hash
        hash=$(python3 -W ignore -c 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
            "$(cat "$REGISTRY_DIR/tls/password")" 2>/dev/null) || hash=$(htpasswd -nbB x "$(cat "$REGISTRY_DIR/tls/password")" | cut -d: -f2)
        echo "runbook:$hash" > "$REGISTRY_DIR/tls/htpasswd"
        cat > "$REGISTRY_DIR/tls/config.yml" <<YML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $REGISTRY_DIR/tls/data }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:5016
  tls:
    certificate: $REGISTRY_DIR/certs/server.pem
    key: $REGISTRY_DIR/certs/server.key
auth:
  htpasswd:
    realm: runbook-test
    path: $REGISTRY_DIR/tls/htpasswd
YML
        echo "test-env: starting docker-registry (TLS, basic auth) on 127.0.0.1:5016 (log: $REGISTRY_DIR/tls/log)" >&2
        setsid nohup /usr/bin/docker-registry serve "$REGISTRY_DIR/tls/config.yml" \
            >"$REGISTRY_DIR/tls/log" 2>&1 < /dev/null &
    fi
    for _ in $(seq 50); do
        if curl -fs -o /dev/null http://127.0.0.1:5015/v2/ \
            && curl -s -o /dev/null -w '%{http_code}' --cacert "$REGISTRY_DIR/certs/ca.pem" https://127.0.0.1:5016/v2/ | grep -q 401; then
            echo "test-env: registries on 127.0.0.1:5015 (plain) and :5016 (TLS + basic auth)" >&2
            return
        fi
        sleep 0.2
    done
    echo "test-env: a registry did not start; see $REGISTRY_DIR/*/log" >&2
    tail -5 "$REGISTRY_DIR"/*/log >&2 || true
    exit 1
}

ensure_docker
build_image
ensure_alertmanager
ensure_chromium
ensure_aiosmtpd
ensure_tcpdump
ensure_postgres
ensure_postgres_tls
ensure_pgbouncer
ensure_schemathesis
ensure_oidc_provider
ensure_registry
