#!/usr/bin/env bash
# Playbooks by digest against local files, measured in one run so the ratios hold on a noisy
# machine. For a Rust (noop) and a Python (python-web-down) playbook, with the release host:
#   cold: a node's first run of a signed registry playbook (pull + verify digest and signature +
#         compile + run), against the first run of the same component from a local file
#         (compile + run), each with an empty compile cache;
#   warm: runs with everything cached (the pulled artifact, the compiled entry), against the
#         local file's cached runs; goal: within 5 % (ratio ≤ 1.05).
# Needs the plain registry on 127.0.0.1:5015 (scripts/test-env.sh). ROUNDS (default 3) cold
# runs and RUNS (default 30) warm runs per side, interleaved.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
host=$root/target/release/host
rounds=${ROUNDS:-3}
runs=${RUNS:-30}
registry=127.0.0.1:5015
[ -x "$host" ] || cargo build --release --locked -p runbook-host
curl -fs -o /dev/null "http://$registry/v2/" || { echo "bench-oci: no registry on $registry (scripts/test-env.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RUNBOOK_STORE=$work/runs.sqlite3 DOCKER_CONFIG=$work/docker
mkdir -p "$DOCKER_CONFIG"
cd "$work"

rust=$root/target/guests/wasm32-wasip2/release/noop.wasm
[ -f "$rust" ] || cargo build --release --locked -p runbook-runtime >/dev/null
python=$work/python.wasm
COMPONENTIZE_PY=$root/target/guest-tools/python/bin/componentize-py \
    "$root/examples/python-web-down/build.sh" "$python" >/dev/null 2>&1 \
    || { echo "bench-oci: componentize-py missing (scripts/guest-tools.sh); Rust only" >&2; python=; }

"$host" keygen bench >/dev/null
tag=bench-$$-$(date +%s)
cat > local.toml <<TOML
[plugins.python-web-down]
deadline-secs = 60
TOML
{
    printf '[trust]\nkeys = ["bench.pub"]\n\n[registries."%s"]\ninsecure = true\n' "$registry"
} > oci.toml

declare -A file params
for lang in rust python; do
    wasm=${!lang}
    [ -n "$wasm" ] || continue
    ref=oci://$registry/bench/$lang:$tag
    pinned=$("$host" push "$ref" "$wasm" --insecure)
    "$host" sign "$pinned" --key bench.key --insecure >/dev/null
    printf '\n[plugins.%s]\nsource = "%s"\ndeadline-secs = 60\n' "$lang" "$pinned" >> oci.toml
    file[$lang]=$wasm
done
params[rust]=""
params[python]="-p url=http://127.0.0.1:9/"

ms() { python3 -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / 1e6:.1f}')" "$1" "$(date +%s%N)"; }
local_run() { "$host" --config local.toml --cache-dir "$1" run --plugin "${file[$2]}" ${params[$2]} --json >/dev/null 2>&1 || true; }
oci_run() { "$host" --config oci.toml --cache-dir "$1" run "$2" ${params[$2]} --json >/dev/null 2>&1 || true; }

printf '%-7s %14s %14s %7s %14s %14s %7s\n' lang "local cold ms" "oci cold ms" ratio "local warm ms" "oci warm ms" ratio
for lang in "${!file[@]}"; do
    lc=(); oc=()
    for _ in $(seq "$rounds"); do
        cache=$(mktemp -d -p "$work"); start=$(date +%s%N); local_run "$cache" "$lang"; lc+=("$(ms "$start")")
        cache=$(mktemp -d -p "$work"); start=$(date +%s%N); oci_run "$cache" "$lang"; oc+=("$(ms "$start")")
    done
    # One cache for the warm runs of both sides: the artifact pulled, both compiled entries.
    warm=$(mktemp -d -p "$work")
    local_run "$warm" "$lang"; oci_run "$warm" "$lang"
    # (a failed run exits 1: the python playbook's probe is not granted; its record counts)
    out=$("$host" --config oci.toml --cache-dir "$warm" run "$lang" ${params[$lang]} --json 2>&1 || true)
    if ! grep -q 'signed by bench' <<<"$out"; then
        echo "bench-oci: the $lang registry run did not verify its signature" >&2; exit 1
    fi
    lw=(); ow=()
    for _ in $(seq "$runs"); do
        start=$(date +%s%N); local_run "$warm" "$lang"; lw+=("$(ms "$start")")
        start=$(date +%s%N); oci_run "$warm" "$lang"; ow+=("$(ms "$start")")
    done
    python3 - "$lang" "${#lc[@]}" "${lc[@]}" "${oc[@]}" "${lw[@]}" "${ow[@]}" <<'PY'
import statistics, sys
lang, n = sys.argv[1], int(sys.argv[2])
v = [float(x) for x in sys.argv[3:]]
lc, oc, rest = v[:n], v[n:2 * n], v[2 * n:]
lw, ow = rest[: len(rest) // 2], rest[len(rest) // 2 :]
m = statistics.median
print(f"{lang:<7} {m(lc):14.1f} {m(oc):14.1f} {m(oc) / m(lc):6.2f}x {m(lw):14.1f} {m(ow):14.1f} {m(ow) / m(lw):6.3f}x"
      + ("" if m(ow) / m(lw) <= 1.05 else "   (warm over the 5 % goal)"))
PY
done
echo "(medians; cold: empty cache each round; warm: ${runs} interleaved runs on one cache)"
