"""Shared settings of the betrace-py tests: pytester for the plugin tests, and the locations
of the repository's shared test data."""

from __future__ import annotations

import os
from pathlib import Path

pytest_plugins = ["pytester"]

PACKAGE = Path(__file__).resolve().parents[1]
REPO = PACKAGE.parent
EXAMPLES = REPO / "examples"
# `../../shared/conformance/dsl.jsonl` relative to betrace-py/ (the corpus lives beside the
# repository); BETRACE_CONFORMANCE overrides it.
CONFORMANCE = Path(os.environ.get("BETRACE_CONFORMANCE", PACKAGE / "../../shared/conformance/dsl.jsonl")).resolve()
# The project corpus, `testing/conformance-extra.jsonl` (testing/README.md);
# BETRACE_CONFORMANCE_EXTRA overrides it.
CONFORMANCE_EXTRA = Path(
    os.environ.get("BETRACE_CONFORMANCE_EXTRA", REPO / "testing/conformance-extra.jsonl")
).resolve()
