#!/usr/bin/env bash
# Instructions per signature check (issue 14: `signed_request::check` at least 0.95 of raw
# schnorrkel), counted by valgrind's callgrind: repeatable for the same binary and inputs,
# whatever else the machine is doing. Prints a Markdown table; bench/run.sh puts it in
# docs/benchmarks.md. About 3 minutes (a release build of the bench, then four runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
N=${ORO_SIGNATURES:-200}
command -v valgrind >/dev/null || { echo "valgrind is needed (Debian's valgrind)" >&2; exit 1; }
# bench/run.sh passes the binary it built; alone, this tree's own build (not the newest file in
# target/release/deps, which may be another tree's).
BIN=${ORO_SIGNATURE_COST_BIN:-$(cargo bench -p server --bench signature_cost --no-run --message-format=json 2>/dev/null |
  bench/executables.py | awk '$1 == "signature_cost" { print $2 }')}
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$1" "$N" 2>&1 | awk '/Collected :/ { print $NF }'
}
NONE=$(count none)
RAW=$(( $(count raw) - NONE ))
VERIFY=$(( $(count verify) - NONE ))
CHECK=$(( $(count check) - NONE ))
per() { echo $(( $1 / N )); }
ratio() { awk -v a="$RAW" -v b="$1" 'BEGIN { printf "%.3f", a / b }'; }
echo "| path | instructions per check | speed ratio to raw schnorrkel (its instructions / these) |"
echo "|---|---|---|"
echo "| raw \`schnorrkel\` \`verify_simple\`, key and signature parsed beforehand (baseline) | $(per "$RAW") | 1.000 |"
echo "| \`service::auth::signature::verify\` (key and signature from bytes) | $(per "$VERIFY") | $(ratio "$VERIFY") |"
echo "| \`signed_request::check\` (headers, ss58, clock, hex, message, verify) | $(per "$CHECK") | $(ratio "$CHECK") |"
echo
echo "callgrind, $N signed requests by one hotkey per path, the set-up's own count subtracted; $(date -u +%Y-%m-%d)."
