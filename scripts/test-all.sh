#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests need (Python
# virtual environment, npm packages, chromium), then formatting, lints, the Rust test suites (with
# the conformance corpus from ../shared/conformance), the web UI in a browser, the example check,
# and short fuzz runs when a nightly toolchain is present. Exit status non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "dependencies for the OpenTelemetry SDK tests (.venv, node_modules)"
bash .ci/setup-deps.sh

if [ ! -f ../shared/conformance/dsl.jsonl ]; then
  echo "error: the conformance corpus ../shared/conformance/dsl.jsonl is missing (it lives beside the repository)" >&2
  exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo doc (broken links and markup are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo test"
mkdir -p target
export BETRACE_PYTHON="$PWD/.venv/bin/python"
cargo test --workspace --quiet 2>&1 | tee target/test-output.txt
grep -q "test result" target/test-output.txt

step "web UI in a browser: Playwright + Debian's chromium (screenshots in target/ui-screenshots/)"
BETRACE_BIN="$PWD/target/debug/betrace" .venv/bin/python -m pytest -q betrace-server/tests/ui

step "scale-out: three betrace serve instances behind trace-id routing (docs/deployment.md)"
cargo test -p betrace-server --test serve_scale --quiet -- --ignored --nocapture 2>&1 \
  | tee target/scale-output.txt
grep -q "test result: ok. 1 passed" target/scale-output.txt

step "Python package betrace-py: build into .venv, pytest"
bash betrace-py/run-tests.sh

step "Node.js package betrace-node: npm ci, napi build, node --test, tsc"
bash betrace-node/run-tests.sh

step "pytest: the SDK fixture generators and the examples"
.venv/bin/python -m pytest -q tools/otel-fixtures examples

step "fuzzing (30 s per target)"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
  fi
  fuzz_failed=""
  for target in $(cargo +nightly fuzz list --fuzz-dir fuzz); do
    echo "fuzz target $target"
    if ! cargo +nightly fuzz run --fuzz-dir fuzz "$target" -- -max_total_time=30 -rss_limit_mb=4096 > "target/fuzz-$target.log" 2>&1; then
      fuzz_failed="$fuzz_failed $target"
      tail -n 40 "target/fuzz-$target.log"
    else
      tail -n 2 "target/fuzz-$target.log"
    fi
  done
  if [ -n "$fuzz_failed" ]; then
    echo "error: fuzz targets failed:$fuzz_failed (the crashing inputs are in fuzz/artifacts/)" >&2
    exit 1
  fi
else
  echo "skipped: no nightly toolchain (cargo fuzz needs one); the fuzz targets were still built by clippy"
fi

echo
echo "all tests passed"
