#!/usr/bin/env bash
# libFuzzer on the host's parsers (fuzz/, cargo-fuzz): every target in fuzz/fuzz_targets/.
#
#   scripts/fuzz.sh SECONDS   fuzz each target for SECONDS (new inputs go to fuzz/target/corpus/,
#                             crashes to fuzz/artifacts/TARGET/); a table of runs at the end
#   scripts/fuzz.sh --ci      what CI runs: each target over its checked-in corpus
#                             (fuzz/corpus/TARGET, the regressions), then FUZZ_CI_SECONDS (5) of fuzzing
#   FUZZ_TARGETS="host_toml fixture" scripts/fuzz.sh SECONDS   only those targets (the runtime's
#                             two are built only when named or when FUZZ_TARGETS is unset)
#
# Two targets, host_toml and fixture, parse types that live in runbook-runtime, so building
# them instruments wasmtime too (about ten minutes more, once). The long run builds them
# (cargo feature `runtime`); --ci leaves them out: their corpora are replayed, property by
# property, by runbook-runtime's unit tests (crates/runbook-runtime/src/invariants.rs), which
# the test suite runs anyway.
#
# Only the stable toolchain is needed: libFuzzer's coverage instrumentation uses stable
# `-C` flags; the sanitizers would need nightly's `-Z sanitizer`, so none is used (runbook-core
# has no `unsafe`: what a sanitizer adds there, Rust's own checks already do, and the build
# has debug assertions and overflow checks on). The targets depend on runbook-core only, so the
# instrumented build takes a couple of minutes, never wasmtime's.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

case "${1:-}" in
    --ci)
        seconds=${FUZZ_CI_SECONDS:-5}
        features=()
        ;;
    '' | *[!0-9]*)
        echo "usage: scripts/fuzz.sh SECONDS | --ci" >&2
        exit 2
        ;;
    *)
        seconds=$1
        features=(--features runtime)
        ;;
esac
runtime_targets=" host_toml fixture "
# Targets chosen without the runtime's two do not need wasmtime instrumented (minutes saved).
if [ -n "${FUZZ_TARGETS:-}" ]; then
    needs_runtime=
    for t in $FUZZ_TARGETS; do
        if [[ $runtime_targets == *" $t "* ]]; then needs_runtime=1; fi
    done
    [ -n "$needs_runtime" ] || features=()
fi

# cargo-fuzz once, then from ~/.cargo/bin.
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
# The lock file is checked in: refuse to resolve anything new (cargo fuzz has no --locked).
cargo fetch --locked
# Release, with debug assertions and overflow checks; no sanitizer (stable, see above).
build=(--sanitizer none --release --debug-assertions ${features[@]+"${features[@]}"})
nice cargo fuzz build "${build[@]}"

failed=()
summary=()
# Listed once into a variable: `cargo fuzz list | grep -q` lets grep close the pipe early, and
# cargo-fuzz then panics on the broken pipe, which pipefail turns into a failed run.
all_targets=" $(cargo fuzz list | xargs) "
for target in ${FUZZ_TARGETS:-$all_targets}; do
    if [[ $all_targets != *" $target "* ]]; then
        echo "no fuzz target $target; the targets:$all_targets" >&2
        exit 2
    fi
    if [ ${#features[@]} -eq 0 ] && [[ $runtime_targets == *" $target "* ]]; then
        summary+=("$(printf '%-12s %12s' "$target" "corpus replayed by the runtime's unit tests")")
        continue
    fi
    scratch=target/corpus/$target
    mkdir -p "$scratch" "artifacts/$target"
    log=target/fuzz-$target.log
    # New inputs go to the scratch corpus; the checked-in one is read only. A slow input (a
    # parser gone quadratic) counts as a crash, as does one that takes over 1 GiB.
    status=0
    nice cargo fuzz run "${build[@]}" "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=8192 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    summary+=("$(printf '%-12s %12s runs  %4ss' "$target" "${runs:-?}" "$seconds")")
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        echo "fuzz target $target failed (exit $status); its log: fuzz/$log" >&2
        grep -E "panicked|ERROR: libFuzzer|Test unit written|SUMMARY" "$log" >&2 || tail -20 "$log" >&2
    fi
done
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "failed: ${failed[*]} (inputs under fuzz/artifacts/; reproduce: cd fuzz && cargo fuzz run ${build[*]} TARGET artifacts/TARGET/FILE)" >&2
    exit 1
fi
