#!/usr/bin/env bash
# Builds js-error-rate.wasm with componentize-js (npm run build) against the repo's WIT and the
# helper `host new --lang js` ships. Usage: examples/js-error-rate/build.sh [OUT.wasm]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:-$here/js-error-rate.wasm}")
cd "$here"
[ -x node_modules/.bin/componentize-js ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build >/dev/null
[ "$out" = "$here/js-error-rate.wasm" ] || mv js-error-rate.wasm "$out"
