#!/usr/bin/env bash
# Frontend figures (issues 6 and 15), written to docs/bench-frontend.md:
#   - the release bundle's sizes (raw, gzip, brotli as built by `--precompress`);
#   - every script and wasm file the first load of each page fetches, raw and as sent over the
#     wire, measured in Chromium;
#   - time to a working Connect button on /dashboard on a throttled connection (1.6 Mbit/s,
#     150 ms RTT), cold and warm cache;
#   - time to hydrated on a fast connection, and the server's render time of /models.
# With ORO_BENCH_BASELINE=<git ref> (e.g. 65681c3) the same browser figures are measured first
# for that commit, built in target/bench-baseline, so that before and after come from one run.
# Takes 15 minutes on 2 cores (a release build), about 25 more with a baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

# cargo-leptos runs wasm-opt on release builds and would try to download it: use npm's.
if [ ! -x target/bench-tools/node_modules/.bin/wasm-opt ]; then
  mkdir -p target/bench-tools
  (cd target/bench-tools && npm install --no-audit --no-fund --silent binaryen@132)
fi
export PATH="$ROOT/target/bench-tools/node_modules/.bin:$PATH"
(cd end2end && [ -d node_modules/@playwright/test ] || npm ci --no-audit --no-fund)

# Runs the browser figures against a server binary and its site; prints `what | value` lines.
browser_figures() {
  local server="$1" site="$2" out
  out=$(cd end2end && ORO_E2E_SERVER="$server" ORO_E2E_SITE_ROOT="$site" ORO_BENCH=1 npx playwright test --config bench.config.ts 2>&1) ||
    { echo "$out" >&2; exit 1; }
  echo "$out" | grep '^BENCH ' | sed 's/^BENCH //'
}

BASELINE_ROWS=""
if [ -n "${ORO_BENCH_BASELINE:-}" ]; then
  BASE_DIR="$ROOT/target/bench-baseline/src"
  rm -rf "$BASE_DIR" && mkdir -p "$BASE_DIR"
  git archive "$ORO_BENCH_BASELINE" | tar -x -C "$BASE_DIR"
  # Its own target directory: the workspace's crates have the same names and hashes in both
  # trees, so in one directory each build's files would stand in for the other's (cargo,
  # finding a build fresh, leaves the other's binary and wasm in place). Kept between runs.
  # Precompressed, as it was deployed (the server serves the .br copies where it knows to).
  (cd "$BASE_DIR" && CARGO_TARGET_DIR="$ROOT/target/bench-baseline/target" cargo leptos build --release --precompress)
  cp target/bench-baseline/target/release/server target/bench-baseline/server
  rm -rf target/bench-baseline/site && cp -r "$BASE_DIR/target/site" target/bench-baseline/site
  # Measured with today's bench specs.
  BASELINE_ROWS=$(browser_figures "$ROOT/target/bench-baseline/server" "$ROOT/target/bench-baseline/site")
fi

# Built as it is deployed (the browser bundle with nightly's build-std where available).
./dev release
PKG=target/site/pkg
WASM=$PKG/oro.wasm
RAW=$(stat -c %s "$WASM")
GZ=$(stat -c %s "$WASM.gz" 2>/dev/null || gzip -9 -c "$WASM" | wc -c)
BR=$(stat -c %s "$WASM.br" 2>/dev/null || echo 0)
JS=$(stat -c %s "$PKG/oro.js")
JS_BR=$(stat -c %s "$PKG/oro.js.br" 2>/dev/null || echo 0)
ROWS=$(browser_figures "$ROOT/target/release/server" "$ROOT/target/site")

{
  echo "# Frontend benchmark"
  echo
  echo "Machine: $(nproc) cores; \`./dev release\` (wasm-release profile: opt-level z, LTO, wasm-opt, --precompress; the bundle built with $(cat target/wasm-toolchain)); $(date -u +%Y-%m-%d)."
  echo "Written by \`bench/frontend.sh\`. Targets (issue 15): the first load of /dashboard at most 300 KB of scripts and wasm raw"
  echo "and 120 KB over the wire; a working Connect within 2 s at 1.6 Mbit/s and 150 ms RTT, cold cache."
  echo
  echo "## The bundle"
  echo
  echo "| what | value |"
  echo "|---|---|"
  echo "| oro.wasm raw | $((RAW / 1024)) KiB ($RAW bytes) |"
  echo "| oro.wasm gzip | $((GZ / 1024)) KiB |"
  echo "| oro.wasm brotli (what Chromium receives) | $((BR / 1024)) KiB |"
  echo "| oro.js (glue) raw / brotli | $((JS / 1024)) KiB / $((JS_BR / 1024)) KiB |"
  echo
  echo "## In the browser (Chromium)"
  echo
  if [ -n "$BASELINE_ROWS" ]; then
    echo "Baseline: \`$ORO_BENCH_BASELINE\`, built and measured in the same run."
    echo
    echo "| what | baseline ($ORO_BENCH_BASELINE) | now |"
    echo "|---|---|---|"
    echo "$ROWS" | while IFS= read -r row; do
      what=$(echo "$row" | cut -d'|' -f2 | sed 's/^ *//;s/ *$//')
      now=$(echo "$row" | cut -d'|' -f3 | sed 's/^ *//;s/ *$//')
      before=$(echo "$BASELINE_ROWS" | awk -F'|' -v w="$what" '{ x=$2; gsub(/^ +| +$/, "", x); if (x == w) { y=$3; gsub(/^ +| +$/, "", y); print y } }')
      echo "| $what | ${before:-n/a} | $now |"
    done
  else
    echo "| what | value |"
    echo "|---|---|"
    echo "$ROWS"
  fi
} > docs/bench-frontend.md
cat docs/bench-frontend.md
