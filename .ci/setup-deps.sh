#!/usr/bin/env bash
# Installs the non-Rust dependencies of the test command, idempotently:
#   - .venv/ (repository root): the pinned Python packages of tools/otel-fixtures/requirements.txt
#     (OpenTelemetry SDK + exporters, pytest, maturin);
#   - tools/otel-fixtures/node_modules/: the npm packages of its package-lock.json (npm ci);
#   - Debian's `chromium` at /usr/bin/chromium (apt-get, as root), the browser the web UI tests
#     drive through Playwright (which is told never to download a browser of its own).
# Each part is skipped when a stamp file records the same inputs (hash of the requirements or
# of package.json + package-lock.json, and the interpreter version), so a second run takes
# milliseconds. Silent on success; on failure it prints the failing step's output and exits 1.
#
# Needs: python3 (>= 3.9; BETRACE_PYTHON=... to choose) with venv and pip, node >= 20.6 and npm.
# Network: PyPI, the npm registry and Debian's archive, on the first run or after a pin changes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIXTURES="$ROOT/tools/otel-fixtures"
VENV="$ROOT/.venv"
LOG="$(mktemp "${TMPDIR:-/tmp}/betrace-setup-deps.XXXXXX")"
trap 'rm -f "$LOG"' EXIT

fail() {
  echo "setup-deps: $1" >&2
  if [ -s "$LOG" ]; then
    echo "---- output ----" >&2
    cat "$LOG" >&2
    echo "----------------" >&2
  fi
  exit 1
}

# run WHAT CMD...: run CMD with its output in the log; on failure show the log and stop.
run() {
  local what="$1"
  shift
  : >"$LOG"
  "$@" >>"$LOG" 2>&1 || fail "$what failed (exit $?): $*"
}

hash_of() {
  cat "$@" | sha256sum | cut -d' ' -f1
}

# ---- Chromium (web UI tests) -----------------------------------------------------------------
if [ ! -x /usr/bin/chromium ]; then
  command -v apt-get >/dev/null 2>&1 ||
    fail "/usr/bin/chromium is missing and there is no apt-get to install Debian's chromium"
  if [ "$(id -u)" -ne 0 ]; then
    fail "/usr/bin/chromium is missing; install Debian's chromium as root (apt-get install chromium)"
  fi
  run "apt-get update" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  run "apt-get install chromium" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  [ -x /usr/bin/chromium ] || fail "apt-get installed chromium but /usr/bin/chromium is missing"
fi

# ---- Python ---------------------------------------------------------------------------------
python_bin=""
for candidate in ${BETRACE_PYTHON:-} python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1; then
    python_bin="$(command -v "$candidate")"
    break
  fi
done
[ -n "$python_bin" ] || fail "no python3 on PATH (set BETRACE_PYTHON=/path/to/python3)"
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
  fail "$python_bin is $("$python_bin" -V 2>&1); Python >= 3.9 is needed"

py_stamp="$VENV/.betrace-deps-stamp"
py_want="requirements=$(hash_of "$FIXTURES/requirements.txt") python=$("$python_bin" -c 'import sys; print(sys.version.split()[0])')"

if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  # Missing, or made by an interpreter that is gone: start afresh.
  rm -rf "$VENV"
  : >"$LOG"
  if ! "$python_bin" -m venv "$VENV" >>"$LOG" 2>&1; then
    # An interpreter without a working venv module (Debian's python3 without python3-venv):
    # use virtualenv from PyPI instead, kept outside the repository.
    rm -rf "$VENV"
    tools_dir="$(mktemp -d "${TMPDIR:-/tmp}/betrace-virtualenv.XXXXXX")"
    run "installing virtualenv (python -m venv is unavailable)" \
      "$python_bin" -m pip install --disable-pip-version-check --target "$tools_dir" virtualenv==21.15.7
    run "creating the virtual environment $VENV with virtualenv" \
      env PYTHONPATH="$tools_dir" "$python_bin" -m virtualenv --quiet "$VENV"
    rm -rf "$tools_dir"
  fi
fi
if [ "$(cat "$py_stamp" 2>/dev/null)" != "$py_want" ]; then
  rm -f "$py_stamp"
  run "pip install -r tools/otel-fixtures/requirements.txt" \
    env PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$VENV/bin/python" -m pip install --only-binary=:all: -r "$FIXTURES/requirements.txt"
  run "pip check" "$VENV/bin/python" -m pip check
  run "importing the OpenTelemetry SDK" "$VENV/bin/python" -c \
    'import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter, opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.proto.collector.trace.v1.trace_service_pb2, pytest, playwright.sync_api'
  run "maturin --version" "$VENV/bin/maturin" --version
  printf '%s\n' "$py_want" >"$py_stamp"
fi

# ---- Node -----------------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || fail "node is not on PATH (Node.js >= 20.6 is needed)"
command -v npm >/dev/null 2>&1 || fail "npm is not on PATH"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 6) ? 0 : 1)' ||
  fail "node $(node --version) is too old; Node.js >= 20.6 is needed"

node_stamp="$FIXTURES/node_modules/.betrace-deps-stamp"
node_want="lock=$(hash_of "$FIXTURES/package.json" "$FIXTURES/package-lock.json") node=$(node --version)"
if [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
  run "npm ci in tools/otel-fixtures" \
    env npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false \
    npm ci --prefix "$FIXTURES" --no-audit --no-fund --loglevel=error
  run "loading the OpenTelemetry JS SDK" env NODE_PATH="$FIXTURES/node_modules" node -e \
    "for (const p of ['@opentelemetry/sdk-trace-base', '@opentelemetry/exporter-trace-otlp-http', '@opentelemetry/exporter-trace-otlp-proto', '@opentelemetry/core', '@opentelemetry/resources']) require(p)"
  printf '%s\n' "$node_want" >"$node_stamp"
fi
