#!/usr/bin/env bash
# Re-creates examples/traces/ from the fixture generators (tools/otel-fixtures/):
#   <scenario>.json — the OTLP/JSON body @opentelemetry/exporter-trace-otlp-http sent, for
#                     every scenario;
#   <scenario>.pb   — the OTLP protobuf body the Python OTLPSpanExporter sent, for the
#                     scenarios in PYTHON_PB below.
# Ids and times are deterministic, so an unchanged scenarios.json gives byte-identical files.
# After changing a scenario, re-check examples/expected-violations.json and README.md.
# Usage: examples/regenerate.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PYTHON_PB=(conforming-order failed-payment payment-retries-exhausted pii-access-without-audit)

TMP="$(mktemp -d "${TMPDIR:-/tmp}/betrace-examples.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
"$ROOT/tools/otel-fixtures/generate.sh" "$TMP"

rm -f "$HERE"/traces/*.json "$HERE"/traces/*.pb
mkdir -p "$HERE/traces"
for body in "$TMP"/node-*.json; do
  name="$(basename "$body" .json)"
  name="${name#node-}"
  [ "$name" = manifest ] && continue
  cp "$body" "$HERE/traces/$name.json"
done
for name in "${PYTHON_PB[@]}"; do
  cp "$TMP/python-$name.pb" "$HERE/traces/$name.pb"
done
