#!/usr/bin/env bash
# Builds the `betrace` npm package and runs its tests, on a fresh machine too: npm ci
# (the pinned @napi-rs/cli, OpenTelemetry JS SDK and TypeScript of package-lock.json), the
# native build (napi build --release), node --test (SDK spans, OTLP, errors, entry points and
# the conformance corpus ../../shared/conformance/dsl.jsonl), and the TypeScript check.
# `npm ci` installs exactly the committed package-lock.json and never rewrites it, so a run
# leaves the tree as it was; a lock out of step with package.json fails here.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

step() { printf '\n--> %s\n' "$*"; }

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error
step "npm run build"
npm run build
step "npm test"
npm test
step "tsc"
npm run typecheck
