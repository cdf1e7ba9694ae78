#!/usr/bin/env bash
# The whole test suite: set-up, one release build of the host shared by every test and packed
# into the container image, then the unit and end-to-end tests against that binary.
set -euo pipefail
cd "$(dirname "$0")/.."

# .ci/run has just run the set-up itself.
[ -n "${RUNBOOK_SETUP_DONE:-}" ] || scripts/setup.sh
scripts/test-env.sh
# The container image of that same binary, once, before tests/tests/image.rs runs it.
scripts/image.sh runbook-test/host:latest
# The PostgreSQL store tests run against the cluster test-env.sh started.
export RUNBOOK_TEST_POSTGRES="$(cat /tmp/runbook-pg/url)"
# The TLS-only cluster (sslmode tests): its directory, with url and certs/.
export RUNBOOK_TEST_POSTGRES_TLS=/tmp/runbook-pg-tls
# PgBouncer in transaction mode in front of the plain cluster (the store's pooled mode).
export RUNBOOK_TEST_PGBOUNCER="$(cat /tmp/runbook-pgbouncer/url)"
cargo test --release --locked "$@"
# The webhook, runs, notify, crash and fleet tests once more with every server's store on PostgreSQL
# (a database per sandbox): the same behaviour on both backends.
# The same package set as the pass above (the workspace's default members, no `-p`): the same
# feature set, so no dependency is compiled a second time; `--test` picks the binaries.
if [ $# -eq 0 ]; then
    RUNBOOK_TEST_STORE=postgres cargo test --release --locked \
        --test server --test runs --test notify --test crash_recovery --test alertmanager \
        --test intake --test fleet --test approvals_telegram --test approvals_builtins \
        --test cancel --test typed_params --test fleet_trust --test safety_admission --test budgets \
        --test digest --test dashboard --test authz --test schemathesis --test oidc
fi
