#!/usr/bin/env bash
# Runs the benchmarks in release and writes docs/benchmarks.md: each figure next to a baseline
# measured in the same run, with the machine it ran on.
#
#   ./bench/run.sh              server benches: http (model list, signatures, memory), signature
#                               instructions (bench/signatures.sh, valgrind), claims,
#                               flood (claims while another address floods), gateway (the run
#                               gateway's overhead at fixed rates, and LiteLLM's proxy's, which
#                               it installs in a venv under target/ once)
#   ./bench/run.sh --frontend   also ./bench/frontend.sh (cargo leptos release build, Chromium)
#
# With ORO_BENCH_BASELINE=<git ref> (e.g. fd940ad, the tree before issue 14) the http and claims
# benches of that commit (issue 14's figures) are built too (from `git archive`, sharing target/
# for the dependencies) and run first, then today's, so that before and after come from one run
# on one machine. The baseline's benches are its own code: their
# tables can differ from today's in the rows they measure. Adds about 15 minutes
# (ORO_BENCH_BASELINE_BENCHES="http claims flood gateway" for all four: about 10 more).
#
# Needs PostgreSQL on 127.0.0.1:5432 (or ORO_TEST_POSTGRES_URL) for the PostgreSQL rows.
# The bench binaries write Markdown fragments under target/bench/; this script puts them
# together. On a shared machine, hold the build lock for the whole run so that nobody's build
# competes with the measurements: `flock /tmp/oro-build.lock ./bench/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

FRONTEND=0
for arg in "$@"; do
  case "$arg" in
    --frontend) FRONTEND=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

FRAGMENTS="${CARGO_TARGET_DIR:-target}/bench"
mkdir -p "$FRAGMENTS"
rm -f "$FRAGMENTS/http.md" "$FRAGMENTS/signatures.md" "$FRAGMENTS/claims.md" "$FRAGMENTS/flood.md" "$FRAGMENTS/gateway.md"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed() { echo $(( $(date +%s) - $1 )); }

t=$(date +%s)
# The bench executables of the tree in the current directory, copied to $1 (a later build in
# the same target directory replaces them).
build_benches() {
  local into="$1"
  mkdir -p "$into"
  cargo bench -p server --benches --no-run --message-format=json | "$ROOT/bench/executables.py" |
    while read -r name exe; do cp "$exe" "$into/$name"; done
  # The http bench starts `target/release/server` (its CARGO_BIN_EXE_server), which a build
  # of another tree in this target directory replaces: kept with the benches.
  cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/server" "$into/server"
}
# Puts this tree's server binary back where the http bench looks for it (removed first: it
# may be a hard link to the other tree's build).
use_server_of() { rm -f "$ROOT/target/release/server" && cp "$1/server" "$ROOT/target/release/server"; }
build_benches "$ROOT/target/bench-now"
BUILD_SECS=$(elapsed "$t")

BASELINE="${ORO_BENCH_BASELINE:-}"
BASE_DIR="$ROOT/target/bench-baseline"
if [ -n "$BASELINE" ]; then
  rm -rf "$BASE_DIR/src" "$BASE_DIR/bench" && mkdir -p "$BASE_DIR/src" "$BASE_DIR/bench"
  git archive "$BASELINE" | tar -x -C "$BASE_DIR/src"
  # Both trees share target/, where a workspace crate whose dependencies did not change keeps
  # one artifact for both, judged fresh by its sources' mtimes. `git archive` dates the
  # baseline's files to its commit, older than today's build: without these touches cargo
  # would link today's crate into the baseline (which then fails to compile, or silently
  # measures today's code), and afterwards the baseline's into today's next build.
  find "$BASE_DIR/src" -type f -exec touch {} +
  (cd "$BASE_DIR/src" && CARGO_TARGET_DIR="$ROOT/target" build_benches "$BASE_DIR/bin")
  git ls-files -z | xargs -0 touch -c --
  # Fragments go to target/bench-baseline/bench.
  BASELINE_T=$(date +%s)
  use_server_of "$BASE_DIR/bin"
  for b in ${ORO_BENCH_BASELINE_BENCHES:-http claims}; do
    (cd "$BASE_DIR/src/server" && CARGO_TARGET_DIR="$BASE_DIR" "$BASE_DIR/bin/$b" --bench)
  done
  BASELINE_SECS=$(elapsed "$BASELINE_T")
  use_server_of "$ROOT/target/bench-now"
fi

bench() { (cd server && "$ROOT/target/bench-now/$1" --bench); }

# LiteLLM's proxy, for the gateway bench's comparison: a venv of its own under target/, made
# once (about a minute from PyPI). ORO_BENCH_LITELLM=<a litellm executable> uses another;
# ORO_BENCH_LITELLM=none leaves it out.
LITELLM_VERSION=1.108.7
if [ -z "${ORO_BENCH_LITELLM:-}" ]; then
  LITELLM_VENV="$ROOT/target/bench-tools/litellm-$LITELLM_VERSION"
  if [ ! -x "$LITELLM_VENV/bin/litellm" ]; then
    echo "installing litellm[proxy]==$LITELLM_VERSION into $LITELLM_VENV (once)" >&2
    python3 -m venv "$LITELLM_VENV" && "$LITELLM_VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION" >&2
  fi
  export ORO_BENCH_LITELLM="$LITELLM_VENV/bin/litellm" ORO_BENCH_LITELLM_VERSION="$LITELLM_VERSION"
elif [ "$ORO_BENCH_LITELLM" = none ]; then
  unset ORO_BENCH_LITELLM
fi

# How much CPU other processes took while the benches ran: the machine's busy time (from
# /proc/stat) minus the CPU time of this script's children (cargo and the bench binaries).
HZ=$(getconf CLK_TCK)
machine_busy() { awk -v hz="$HZ" '/^cpu / {printf "%.1f", ($2 + $3 + $4 + $7 + $8 + $9) / hz}' /proc/stat; }
TIMES=$(mktemp); trap 'rm -f "$TIMES"' EXIT
# Sets CHILDREN_CPU. `times` in a pipe or $(...) would run in a subshell, which has no
# children: it writes to a file from this shell.
children_cpu() { times > "$TIMES"; CHILDREN_CPU=$(tail -1 "$TIMES" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); s += p[1] * 60 + p[2] } printf "%.1f", s }'); }
children_cpu; BUSY0=$(machine_busy); OURS0=$CHILDREN_CPU; WALL0=$(date +%s)

t=$(date +%s)
bench http
HTTP_SECS=$(elapsed "$t")

t=$(date +%s)
ORO_SIGNATURE_COST_BIN="$ROOT/target/bench-now/signature_cost" ./bench/signatures.sh > "$FRAGMENTS/signatures.md"
SIGNATURES_SECS=$(elapsed "$t")

t=$(date +%s)
bench claims
CLAIMS_SECS=$(elapsed "$t")

t=$(date +%s)
bench flood
FLOOD_SECS=$(elapsed "$t")

t=$(date +%s)
bench gateway
GATEWAY_SECS=$(elapsed "$t")

children_cpu
OTHERS=$(awk -v b0="$BUSY0" -v b1="$(machine_busy)" -v o0="$OURS0" -v o1="$CHILDREN_CPU" -v w="$(elapsed "$WALL0")" -v n="$(nproc)" \
  'BEGIN { x = (b1 - b0) - (o1 - o0); if (x < 0) x = 0; printf "%.0f s of CPU out of %d s available (%.0f%%)", x, w * n, 100 * x / (w * n) }')

FRONTEND_SECS=
if [ "$FRONTEND" = 1 ]; then
  t=$(date +%s)
  ./bench/frontend.sh
  FRONTEND_SECS=$(elapsed "$t")
fi

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT plus uncommitted changes"; fi
CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')

# Today's fragment; with a baseline, the baseline's own after it, one heading level down.
fragment() {
  cat "$FRAGMENTS/$1.md"
  if [ -n "$BASELINE" ] && [ -f "$BASE_DIR/bench/$1.md" ]; then
    echo
    echo "### The $1 bench at the baseline, $BASELINE (its own bench code, earlier in this run)"
    echo
    sed -e 's/^### /#### /' -e 's/^## /#### /' "$BASE_DIR/bench/$1.md"
  fi
}

{
  echo "# Benchmarks"
  echo
  echo "Written by \`./bench/run.sh\`$([ "$FRONTEND" = 1 ] && echo ' --frontend'). Every figure stands next to a baseline measured in the same run on the same machine, and the ratio between them; the ratios travel between machines better than the absolute figures."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
  echo "| cores (\`nproc\`) | $(nproc) |"
  echo "| CPU | ${CPU:-unknown} |"
  echo "| memory | $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |"
  echo "| kernel | $(uname -r) |"
  echo "| rustc | $(rustc --version) |"
  echo "| build | \`cargo bench\` (release profile) at $COMMIT |"
  [ -n "$BASELINE" ] && echo "| baseline | $BASELINE ($(git log -1 --format='%h, %ad' --date=short "$BASELINE")), built and run earlier in the same run (${BASELINE_SECS} s) |"
  echo "| load average before the run | $LOAD_BEFORE |"
  echo "| other processes while the server benches ran | $OTHERS |"
  echo "| times | build ${BUILD_SECS} s, http bench ${HTTP_SECS} s, signature instructions ${SIGNATURES_SECS} s, claims bench ${CLAIMS_SECS} s, flood bench ${FLOOD_SECS} s, gateway bench ${GATEWAY_SECS} s$([ -n "$FRONTEND_SECS" ] && echo ", frontend ${FRONTEND_SECS} s") |"
  echo
  fragment http
  echo
  echo "### Signature checks in instructions (\`bench/signatures.sh\`)"
  echo
  echo "The rates above vary by about 10% between runs on a shared machine; callgrind's instruction counts do not."
  echo
  cat "$FRAGMENTS/signatures.md"
  echo
  fragment claims
  echo
  fragment flood
  echo
  fragment gateway
  echo
  if [ "$FRONTEND" = 1 ]; then
    # frontend.sh writes its own page; nest it under this one.
    sed -e '1s/^# .*/## Frontend/' docs/bench-frontend.md
  else
    echo "## Frontend"
    echo
    echo "Not measured in this run (\`./bench/run.sh --frontend\` does); the last figures are in [bench-frontend.md](bench-frontend.md)."
  fi
} > docs/benchmarks.md
echo "wrote docs/benchmarks.md"
