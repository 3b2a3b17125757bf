#!/usr/bin/env bash
# Fuzzes every target in fuzz_targets/ for a bounded time and fails on any crash.
#
#   fuzz/run.sh [seconds-per-target]      (default 30)
#
# Targets are built once, the way `cargo fuzz build` builds by default: optimized, with debug
# assertions and overflow checks on (an arithmetic overflow on hostile input is a finding,
# not a wrap-around to ignore) and AddressSanitizer (our crates forbid `unsafe`, the parsers
# and ciphers we call do not). Each target then starts from its tracked seeds in corpus/ and
# writes what it learns to target/corpus/<target>, so the seeds stay as committed. A crashing
# input lands in artifacts/<target>/; the script names it and exits non-zero.
set -euo pipefail

seconds="${1:-30}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing; installing it"
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer, sancov passes). Prefer a nightly
# toolchain; on a machine with only stable, RUSTC_BOOTSTRAP=1 makes stable accept them.
if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi
echo "fuzzing with: ${fuzz[*]} ($("${fuzz[@]}" --version))"

started=$(date +%s)
"${fuzz[@]}" build
echo "built all targets in $(($(date +%s) - started)) s"

mapfile -t targets < <("${fuzz[@]}" list)
mkdir -p target/fuzz-logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "target/corpus/$target" "artifacts/$target"
    log="target/fuzz-logs/$target.log"
    # -timeout: one input taking over 10 s is a hang, reported like a crash.
    if "${fuzz[@]}" run "$target" "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        echo "$target: ok, ${runs:-?} runs in ${seconds} s (${rate:-?} exec/s), corpus $(ls "target/corpus/$target" | wc -l) inputs"
    else
        failed+=("$target")
        echo "$target: FAILED; the end of $log:"
        tail -n 40 "$log"
        # libFuzzer: "Test unit written to <path>" (crash-, leak-, timeout-, oom- files).
        sed -n 's/.*Test unit written to \(.*\)$/crashing input saved at: \1/p' "$log"
        echo "reproduce with: ${fuzz[*]} run $target <that file>"
    fi
done

if ((${#failed[@]})); then
    echo "fuzzing failed for: ${failed[*]}"
    exit 1
fi
echo "all ${#targets[@]} targets ran ${seconds} s each without a crash"
