#!/usr/bin/env bash
# Server time of the console's dashboard (/ui, its Server-Timing header) with 1,000 and with
# 100,000 runs in the store: p50 and p99 of 30 requests each, and the p50 ratio. SQLite by
# default; RUNBOOK_TEST_STORE=postgres (with RUNBOOK_TEST_POSTGRES) measures PostgreSQL.
# Needs the release binary (cargo build --release -p runbook-host).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test dashboard -- --ignored --nocapture bench_dashboard_server_time 2>&1 \
    | grep -E '^dashboard '
