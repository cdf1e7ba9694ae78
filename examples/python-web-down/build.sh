#!/usr/bin/env bash
# Builds python-web-down.wasm with componentize-py against the repo's WIT and the Python helper
# that `host new --lang python` ships (host/templates/python/runbook.py).
# Usage: examples/python-web-down/build.sh [OUT.wasm]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(realpath -m "${1:-$here/python-web-down.wasm}")
tool=${COMPONENTIZE_PY:-$root/target/guest-tools/python/bin/componentize-py}
[ -x "$tool" ] || tool=componentize-py
cd "$here"
"$tool" -d "$root/wit" -w playbook componentize app -p . -p "$root/host/templates/python" -o "$out"
