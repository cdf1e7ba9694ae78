#!/usr/bin/env bash
# The long schemathesis run: tests/tests/schemathesis.rs with many examples per operation and a
# fresh seed, against one live `host serve` with every auth kind (CI runs the same test with 6).
#   scripts/schemathesis.sh [EXAMPLES]        SEED=<n> (default: random) RUNBOOK_TEST_STORE=postgres
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-env.sh
examples=${1:-200}
seed=${SEED:-$RANDOM}
echo "schemathesis: $examples examples per operation, seed $seed" >&2
export RUNBOOK_TEST_POSTGRES="${RUNBOOK_TEST_POSTGRES:-$(cat /tmp/runbook-pg/url)}"
RUNBOOK_SCHEMATHESIS_EXAMPLES=$examples RUNBOOK_SCHEMATHESIS_SEED=$seed \
    cargo test --release --locked --test schemathesis -- --nocapture every_operation
