#!/usr/bin/env bash
# Frontend figures (issue 6): release WASM size (raw and gzip), time to hydrated on
# /dashboard (signed in, Chromium), and server-side render time of /models.
# Writes docs/bench-frontend.md. Takes about 10 minutes on 2 cores (a release build).
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

cargo leptos build --release
WASM=target/site/pkg/oro.wasm
RAW=$(stat -c %s "$WASM")
GZ=$(gzip -9 -c "$WASM" | wc -c)
JS=$(stat -c %s target/site/pkg/oro.js)

(cd end2end && [ -d node_modules/@playwright/test ] || npm ci --no-audit --no-fund)
OUT=$(cd end2end && ORO_E2E_SERVER="$ROOT/target/release/server" ORO_E2E_SITE_ROOT="$ROOT/target/site" \
  ORO_BENCH=1 npx playwright test --config bench.config.ts 2>&1) || { echo "$OUT"; exit 1; }
FIGURES=$(echo "$OUT" | grep '^BENCH ' | sed 's/^BENCH //')

{
  echo "# Frontend benchmark"
  echo
  echo "Machine: $(nproc) cores; release build (wasm-release profile: opt-level z, LTO, wasm-opt); $(date -u +%Y-%m-%d)."
  echo
  echo "| what | value |"
  echo "|---|---|"
  echo "| oro.wasm raw | $((RAW / 1024)) KiB |"
  echo "| oro.wasm gzip -9 | $((GZ / 1024)) KiB |"
  echo "| oro.js (glue) | $((JS / 1024)) KiB |"
  echo "$FIGURES"
} > docs/bench-frontend.md
cat docs/bench-frontend.md
