#!/usr/bin/env bash
# libFuzzer on the host's parsers (fuzz/, cargo-fuzz): every target in fuzz/fuzz_targets/.
#
#   scripts/fuzz.sh SECONDS   fuzz each target for SECONDS (new inputs go to fuzz/target/corpus/,
#                             crashes to fuzz/artifacts/TARGET/); a table of runs at the end
#   scripts/fuzz.sh --ci      what CI runs: each target over its checked-in corpus
#                             (fuzz/corpus/TARGET, the regressions), then FUZZ_CI_SECONDS (5) of fuzzing
#
# Only the stable toolchain is needed: libFuzzer's coverage instrumentation uses stable
# `-C` flags; the sanitizers would need nightly's `-Z sanitizer`, so none is used (runbook-core
# has no `unsafe`: what a sanitizer adds there, Rust's own checks already do, and the build
# has debug assertions and overflow checks on). The targets depend on runbook-core only, so the
# instrumented build takes a couple of minutes, never wasmtime's.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

case "${1:-}" in
    --ci) seconds=${FUZZ_CI_SECONDS:-5} ;;
    '' | *[!0-9]*)
        echo "usage: scripts/fuzz.sh SECONDS | --ci" >&2
        exit 2
        ;;
    *) seconds=$1 ;;
esac

# cargo-fuzz once, then from ~/.cargo/bin.
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
# The lock file is checked in: refuse to resolve anything new (cargo fuzz has no --locked).
cargo fetch --locked
# Release, with debug assertions and overflow checks; no sanitizer (stable, see above).
build=(--sanitizer none --release --debug-assertions)
nice cargo fuzz build "${build[@]}"

failed=()
summary=()
for target in $(cargo fuzz list); do
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
