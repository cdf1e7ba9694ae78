#!/usr/bin/env bash
# Everything a fresh machine needs before `host` runs: the wasm32-wasip2 target for the
# built-in playbooks, the Python and JS guest toolchains, then one release build of the host
# (which builds and embeds them; the container image packs the same binary).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "error: cargo is missing; install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target (playbooks are built for it)" >&2
    rustup target add wasm32-wasip2
fi
# Python and JS playbook toolchains (componentize-py, componentize-js), project-local.
scripts/guest-tools.sh
echo "setup: building the host (release; the first build takes several minutes)" >&2
cargo build --release --locked -p runbook-host
