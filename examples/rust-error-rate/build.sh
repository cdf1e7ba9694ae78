#!/usr/bin/env bash
# Builds rust-error-rate.wasm (wasm32-wasip2) with the repo's SDK.
# Usage: examples/rust-error-rate/build.sh [OUT.wasm]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:-$here/rust-error-rate.wasm}")
target=${CARGO_TARGET_DIR:-$here/../../target/guest-builds/cargo}
cd "$here"
cargo build --quiet --release --target wasm32-wasip2 --target-dir "$target"
cp "$target/wasm32-wasip2/release/rust_error_rate.wasm" "$out"
