#!/usr/bin/env bash
# Generates OTLP fixtures with the real OpenTelemetry SDKs into OUTDIR and checks them:
#   python-<scenario>.pb, python-manifest.json        (gen_python.py)
#   node-<scenario>.json, node-<scenario>.pb, node-manifest.json   (gen_node.mjs)
# then check_fixtures.py decodes every file and compares it with its manifest and the two
# SDKs' manifests with each other. Installs dependencies first (.ci/setup-deps.sh; a no-op when
# they are up to date); after that, no network is used besides 127.0.0.1.
# Usage: tools/otel-fixtures/generate.sh OUTDIR
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUT="$1"

bash "$ROOT/.ci/setup-deps.sh"
mkdir -p "$OUT"
"$ROOT/.venv/bin/python" "$HERE/gen_python.py" "$OUT"
node "$HERE/gen_node.mjs" "$OUT"
"$ROOT/.venv/bin/python" "$HERE/check_fixtures.py" "$OUT"
