#!/usr/bin/env bash
# Builds the Python package (maturin, through pip) into the repository's .venv and runs its
# pytest suite. Needs .venv from .ci/setup-deps.sh (the pinned maturin, pytest and
# OpenTelemetry SDK). The extension is built with the dev profile, which shares compiled
# dependencies with `cargo test`; set BETRACE_PY_PROFILE=release for an optimised build
# (benchmarks). Extra arguments go to pytest.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || { echo "run-tests.sh: $VENV is missing; run .ci/setup-deps.sh first" >&2; exit 1; }
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
# pip runs the maturin build backend as a subprocess, found on PATH.
export PATH="$VENV/bin:$PATH"
profile="${BETRACE_PY_PROFILE:-dev}"
if [ "$profile" = release ]; then
  unset MATURIN_PEP517_ARGS
else
  export MATURIN_PEP517_ARGS="--profile $profile"
fi
# --no-build-isolation: build with the pinned maturin of .venv, without fetching another.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
  --force-reinstall --no-deps "$HERE"
cd "$HERE"
[ $# -gt 0 ] || set -- tests
exec "$VENV/bin/python" -m pytest -q "$@"
