#!/usr/bin/env bash
# Playbooks per guest language, measured in one run so the ratios hold on a noisy machine: the
# `host new` template (the same logic in Rust, Python and JS) is scaffolded and built, then run by
# the release host: build time, component size, first-run compile, cached load, per-run overhead.
# ROUNDS (default 3) compiles and RUNS (default 20) warm runs per language.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null 2>&1 || scripts/setup.sh
root=$PWD
host=$root/target/release/host
rounds=${ROUNDS:-3}
runs=${RUNS:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PATH="$root/target/guest-tools/python/bin:$root/examples/js-error-rate/node_modules/.bin:$PATH"
export RUNBOOK_STORE=$work/runs.sqlite3

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# field F of `host run --json` timings, e.g. load.compile_ms
timing() { python3 -c "import json,sys; t=json.load(sys.stdin)['timings']; print(eval('t' + ''.join(f'[{k!r}]' for k in sys.argv[1].split('.'))))" "$1"; }
mean() { python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; print(f'{sum(v)/len(v):.3f}')" "$@"; }

build() { # lang dir → prints the built wasm path; build time in $work/build-ms
    local lang=$1 dir=$2 start
    case $lang in
        rust)
            export CARGO_TARGET_DIR=$root/target/guest-builds/cargo
            (cd "$dir" && cargo build --quiet --release --target wasm32-wasip2)  # dependencies warm
            touch "$dir/src/lib.rs"
            start=$(date +%s%N)
            (cd "$dir" && cargo build --quiet --release --target wasm32-wasip2)
            ms "$start" > "$work/build-ms"
            cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/bench_rust.wasm" "$dir/bench-rust.wasm" ;;
        python)
            start=$(date +%s%N)
            (cd "$dir" && componentize-py -d wit -w playbook componentize app -p . -o bench-python.wasm >/dev/null)
            ms "$start" > "$work/build-ms" ;;
        js)
            ln -s "$root/examples/js-error-rate/node_modules" "$dir/node_modules"
            start=$(date +%s%N)
            (cd "$dir" && npm run --silent build >/dev/null)
            ms "$start" > "$work/build-ms" ;;
    esac
    echo "$dir/bench-$lang.wasm"
}

wasms=()
printf '%-7s %9s %10s %12s %12s %9s %14s %12s\n' lang "build ms" "size KiB" "compile ms" "cached ms" "ratio" "overhead ms" "warm wall ms"
for lang in rust python js; do
    dir=$work/$lang
    "$host" new "bench-$lang" --lang "$lang" --dir "$dir" >/dev/null
    wasm=$(build "$lang" "$dir")
    wasms+=("$wasm")
    build_ms=$(cat "$work/build-ms")
    size=$(( $(stat -c %s "$wasm") / 1024 ))
    compile=(); cached=(); overhead=(); wall=()
    for _ in $(seq "$rounds"); do
        cache=$(mktemp -d -p "$work")
        compile+=("$("$host" --cache-dir "$cache" run --plugin "$wasm" --json 2>/dev/null | timing load.compile_ms)")
    done
    for _ in $(seq "$runs"); do
        start=$(date +%s%N)
        json=$("$host" --cache-dir "$cache" run --plugin "$wasm" --json 2>/dev/null)
        wall+=("$(( ($(date +%s%N) - start) / 1000 ))")
        cached+=("$(timing load.load_ms <<<"$json")")
        # Host + language runtime around one capability call: instantiate, then the run
        # without the time spent inside the call.
        overhead+=("$(python3 -c "import json,sys; t=json.loads(sys.argv[1])['timings']; print(t['instantiate_ms'] + t['run_ms'] - t['capability_calls_ms'])" "$json")")
    done
    c=$(mean "${compile[@]}"); h=$(mean "${cached[@]}"); o=$(mean "${overhead[@]}")
    w=$(python3 -c "import sys; v=[float(x)/1000 for x in sys.argv[1:]]; print(f'{sum(v)/len(v):.1f}')" "${wall[@]}")
    printf '%-7s %9s %10s %12.1f %12.3f %8.0fx %14.3f %12s\n' "$lang" "$build_ms" "$size" "$c" "$h" \
        "$(python3 -c "print($c/$h)")" "$o" "$w"
done
echo
python3 - "$host" "$cache" "$runs" "${wasms[@]}" <<'PY'
import json, resource, statistics, subprocess, sys, time
host, cache, runs, wasms = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
langs = ["rust", "python", "js"]
wall = {l: [] for l in langs}
cpu = {l: [] for l in langs}
phases = {l: {p: [] for p in ("load", "instantiate", "run", "teardown", "faults")} for l in langs}
def run(wasm):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([host, "--cache-dir", cache, "run", "--plugin", wasm, "--json"],
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (out, elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            after.ru_minflt - before.ru_minflt)
# The cache's memos spare hashing an unchanged component and its compiled entry only once the
# file is a few seconds old: compile into this cache, let the files settle, then a run per
# component writes the memos.
for wasm in wasms:
    run(wasm)
time.sleep(3)
for wasm in wasms:
    run(wasm)
how = {lang: set() for lang in langs}
for _ in range(runs):
    for lang, wasm in zip(langs, wasms):
        out, elapsed, used, faults = run(wasm)
        wall[lang].append(elapsed * 1e3)
        cpu[lang].append(used * 1e3)
        timings = json.loads(out.stdout)["timings"]
        load = timings["load"]
        for phase, ms in (("load", load["load_ms"]), ("instantiate", timings["instantiate_ms"]),
                          ("run", timings["run_ms"]), ("teardown", timings["teardown_ms"])):
            phases[lang][phase].append(ms)
        phases[lang]["faults"].append(faults)
        how[lang].add(f"{load['wasm_hash']} / {load['entry_hash']} / {load['describe']}")
how = {lang: ", ".join(sorted(seen)) for lang, seen in how.items()}
print(f"whole warm `host run`, median of {runs} interleaved rounds:")
print(f"{'lang':7} {'wall ms':>9} {'÷ rust':>8} {'cpu ms':>9} {'÷ rust':>8}  wasm hash / entry hash / describe()")
for lang in langs:
    w, c = statistics.median(wall[lang]), statistics.median(cpu[lang])
    wr, cr = statistics.median(wall["rust"]), statistics.median(cpu["rust"])
    print(f"{lang:7} {w:9.1f} {w / wr:7.2f}x {c:9.1f} {c / cr:7.2f}x  {how[lang]}")
# Where the CPU goes: the component's own phases (wall time on one thread, from --json) and the
# rest of the process (start-up, engine, linker, store, exit), which is the same for every language.
print()
print(f"{'lang':7} {'load':>7} {'inst':>7} {'run':>7} {'teardown':>9} {'rest':>7} {'minflt':>7}  (ms, medians)")
for lang in langs:
    p = {k: statistics.median(v) for k, v in phases[lang].items()}
    rest = statistics.median(cpu[lang]) - p["load"] - p["instantiate"] - p["run"] - p["teardown"]
    print(f"{lang:7} {p['load']:7.2f} {p['instantiate']:7.2f} {p['run']:7.2f} {p['teardown']:9.2f} "
          f"{rest:7.2f} {p['faults']:7.0f}")
PY
echo "compile: first run with an empty cache (mean of $rounds); cached: load from the compile cache;"
echo "ratio: compile/cached; overhead: instantiate + run − capability calls (mean of $runs);"
echo "warm wall: the whole \`host run\` process with a warm cache; ÷ rust: that language's median over"
echo "Rust's (target: python and js ≤ 1.5x); wasm hash / entry hash: memo when the component file / the"
echo "compiled entry was not hashed; describe(): recorded when its answer came from the cache. Rust build: the playbook crate"
echo "with its dependencies already built (the first build of wit-bindgen adds ~30 s)."
echo "load/inst/run/teardown: the --json phases of the warm runs; rest: the run's CPU time minus them"
echo "(process start, engine, linker, store, exit); minflt: minor page faults of the whole process."
