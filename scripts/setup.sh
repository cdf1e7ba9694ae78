#!/usr/bin/env bash
# Everything a fresh machine needs before `host` runs: the wasm32-wasip2 target for the
# built-in playbooks, the musl target for the container image, the Python and JS guest
# toolchains, then one release build of the host (which builds and embeds them).
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
# The container image (scripts/image.sh) carries a statically linked host built for musl.
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    echo "setup: adding the x86_64-unknown-linux-musl target (the container image's static host)" >&2
    rustup target add x86_64-unknown-linux-musl
fi
# Python and JS playbook toolchains (componentize-py, componentize-js), project-local.
scripts/guest-tools.sh
echo "setup: building the host (release; the first build takes several minutes)" >&2
cargo build --release --locked -p runbook-host
