#!/usr/bin/env bash
# The whole test suite: set-up, one release build of the host shared by every test, then the
# unit and end-to-end tests against that binary.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/test-env.sh
cargo test --release --locked "$@"
