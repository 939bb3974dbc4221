"""The DSL conformance corpora (`../shared/conformance/dsl.jsonl`, then the project's
`testing/conformance-extra.jsonl`) through `betrace.check`:
every case gives the result the corpus expects, as it does through the Rust engine and
`betrace test`."""

from __future__ import annotations

import json

import pytest

import betrace
from conftest import CONFORMANCE, CONFORMANCE_EXTRA


def read_corpus(path, where: str) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"the conformance corpus {path} is missing ({where})")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_cases() -> list[dict]:
    cases = read_corpus(CONFORMANCE, "it lives beside the repository")
    cases += read_corpus(CONFORMANCE_EXTRA, "it lives in the repository's testing/")
    ids = [c["id"] for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"conformance case ids appear twice: {duplicates}")
    return cases


CASES = load_cases()


def rule_text(case: dict) -> str:
    if "rule" in case:
        return case["rule"]
    g = case["generate"]
    return g["prefix"] + g["repeat"] * g["times"] + g["suffix"]


def test_the_corpus_has_every_kind_of_case():
    kinds = {next(iter(c["expect"])) if "error" in c["expect"] or "malformedSpan" in c["expect"] else "eval" for c in CASES}
    assert kinds == {"eval", "error", "malformedSpan"}
    assert len(CASES) > 200
    assert any(c["id"].startswith("x-") for c in CASES), "the project corpus is not read"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict) -> None:
    rule = rule_text(case)
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(betrace.RuleError) as e:
            betrace.check(rule, case["spans"])
        codes = [d.code for d in e.value.diagnostics]
        if expect["error"] == "E2":
            assert any(c.startswith("E2") for c in codes), codes
        else:
            assert expect["error"] in codes
        assert f"error[{codes[0]}]" in str(e.value)
        # validate() reports the same diagnostics without raising.
        assert [d.code for d in betrace.validate(rule)] == codes
        return
    if "malformedSpan" in expect:
        with pytest.raises(betrace.SpanError) as e:
            betrace.check(rule, case["spans"])
        assert e.value.index == expect["malformedSpan"]
        assert str(e.value).startswith(f"span {expect['malformedSpan']}")
        return
    violations = betrace.check(rule, case["spans"])
    assert len(violations) <= 1
    got = {
        "violated": bool(violations),
        "failedClause": violations[0].failed_clause if violations else None,
        "triggerSpans": [r.span_id for r in violations[0].trigger_spans] if violations else [],
        "offendingSpans": [r.span_id for r in violations[0].offending_spans] if violations else [],
    }
    assert got == expect
