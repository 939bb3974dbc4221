"""The repository's examples through the binding: `examples/rules.yaml` against every trace
of `examples/traces/` (OTLP/JSON read as dicts, OTLP protobuf as bytes) finds exactly the
violations `examples/expected-violations.json` lists, as `betrace check` does."""

from __future__ import annotations

import json

import pytest

import betrace
from conftest import EXAMPLES

EXPECTED = json.loads((EXAMPLES / "expected-violations.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def engine():
    return betrace.Engine.from_file(EXAMPLES / "rules.yaml")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_trace(engine, name):
    path = EXAMPLES / name
    spans = path.read_bytes() if path.suffix == ".pb" else json.loads(path.read_text(encoding="utf-8"))
    violations = engine.evaluate(spans)
    assert sorted(v.rule_id for v in violations) == sorted(EXPECTED[name])


def test_every_example_trace_is_listed():
    assert {f"traces/{p.name}" for p in (EXAMPLES / "traces").iterdir()} == set(EXPECTED)


def test_assert_no_violations_lists_each_violation(engine):
    spans = json.loads((EXAMPLES / "traces" / "payment-retries-exhausted.json").read_text(encoding="utf-8"))
    with pytest.raises(AssertionError) as e:
        betrace.assert_no_violations(spans, EXAMPLES / "rules.yaml")
    text = str(e.value)
    assert text.startswith("4 BeTrace rule violations:")
    for rule_id in EXPECTED["traces/payment-retries-exhausted.json"]:
        assert f"- rule {rule_id!r} (" in text
    assert "failed clause: never" in text
    assert "offending spans: payment (payment-service, " in text
    # The same through an Engine, a list of rules, and a single rule; a clean trace passes.
    with pytest.raises(AssertionError):
        betrace.assert_no_violations(spans, engine)
    with pytest.raises(AssertionError, match="1 BeTrace rule violation:"):
        betrace.assert_no_violations(spans, [betrace.Rule("payment-ok", "never { payment.where(span.status == error) }")])
    with pytest.raises(AssertionError, match="rule 'rule-1'"):
        betrace.assert_no_violations(spans, ["never { payment.where(span.status == error) }"])
    clean = json.loads((EXAMPLES / "traces" / "conforming-order.json").read_text(encoding="utf-8"))
    betrace.assert_no_violations(clean, str(EXAMPLES / "rules.yaml"))
    betrace.assert_no_violations(clean, betrace.Rule("x", "never { payment.where(span.status == error) }"))
