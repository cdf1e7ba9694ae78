#!/usr/bin/env bash
# Guest toolchains for playbooks in other languages, pinned and project-local, installed when
# missing and skipped in well under a second when present:
#   Python: componentize-py (PyPI) in a venv at target/guest-tools/python
#   JS:     componentize-js + jco (npm) from examples/js-error-rate/package-lock.json (npm ci)
# A toolchain that cannot be installed is reported loudly, not fatally: the language tests then
# say SKIPPED with the reason instead of failing the Rust suite.
set -uo pipefail
cd "$(dirname "$0")/.."

COMPONENTIZE_PY=0.25.1
VENV=target/guest-tools/python
JS_DIR=examples/js-error-rate
started=$(date +%s)

warn() { printf '\n!!! guest-tools: %s\n\n' "$*" >&2; }

ensure_python() {
    if [ "$("$VENV/bin/componentize-py" --version 2>/dev/null)" = "componentize-py $COMPONENTIZE_PY" ]; then
        return 0
    fi
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        echo "guest-tools: installing python3-venv" >&2
        (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv python3-pip) >/dev/null 2>&1
    fi
    echo "guest-tools: installing componentize-py $COMPONENTIZE_PY into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV" \
        && "$VENV/bin/pip" install -q --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY" \
        || { rm -rf "$VENV"; warn "componentize-py could not be installed: Python playbooks will not build and their tests are SKIPPED"; return 1; }
}

ensure_js() {
    local stamp=$JS_DIR/node_modules/.package-lock.json
    if [ -x "$JS_DIR/node_modules/.bin/componentize-js" ] && [ "$stamp" -nt "$JS_DIR/package-lock.json" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null; then
        echo "guest-tools: installing nodejs and npm" >&2
        (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm) >/dev/null 2>&1
    fi
    echo "guest-tools: npm ci in $JS_DIR (componentize-js, jco)" >&2
    (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
        || { warn "componentize-js could not be installed: JS playbooks will not build and their tests are SKIPPED"; return 1; }
}

ensure_python
ensure_js
echo "guest-tools: ready in $(( $(date +%s) - started )) s" >&2
exit 0
