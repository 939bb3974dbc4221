"""The Python API of BINDINGS.md: Rule, Engine, check, validate, format, Violation, SpanRef,
Diagnostic, and the errors RuleError, SpanError, EvaluationError."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle

import pytest

import betrace

T1 = "0000000000000000000000000000aa01"
T2 = "0000000000000000000000000000aa02"


def span(trace, span_id, name, start, end=None, parent=None, **extra):
    d = {"traceId": trace, "spanId": span_id, "name": name, "serviceName": "shop", "startTime": start}
    d["endTime"] = start + 10 if end is None else end
    if parent:
        d["parentSpanId"] = parent
    d.update(extra)
    return d


SPANS = [
    span(T1, "00000000000000a1", "checkout", 100, 900, attributes={"amount": 1500}),
    span(T1, "00000000000000a2", "payment", 200, 300, parent="00000000000000a1", status="error"),
    span(T2, "00000000000000b1", "checkout", 100, 900, attributes={"amount": 20}),
    span(T2, "00000000000000b2", "fraud_check", 150, 160, parent="00000000000000b1"),
]


# ---- Rule ---------------------------------------------------------------------------------


def test_rule_compiles_and_keeps_its_fields():
    r = betrace.Rule(
        "slow", "span.duration > 1s", severity="high", name="Slow spans", description="d", tags=["perf"], enabled=False
    )
    assert (r.id, r.name, r.expression, r.severity, r.description, r.tags, r.enabled) == (
        "slow",
        "Slow spans",
        "span.duration > 1s",
        "HIGH",
        "d",
        ["perf"],
        False,
    )
    assert betrace.Rule("x", "a").name == "x"
    assert betrace.Rule("x", "a").severity == "MEDIUM"
    assert r.to_dict() == {
        "id": "slow",
        "name": "Slow spans",
        "description": "d",
        "expression": "span.duration > 1s",
        "severity": "HIGH",
        "tags": ["perf"],
        "enabled": False,
    }
    assert repr(r) == "Rule(id='slow', expression='span.duration > 1s', severity='HIGH')"
    assert r == betrace.Rule(
        "slow", "span.duration > 1s", severity="HIGH", name="Slow spans", description="d", tags=["perf"], enabled=False
    )


def test_rule_that_does_not_compile_raises_rule_error_with_diagnostics():
    with pytest.raises(betrace.RuleError) as e:
        betrace.Rule("fraud", "when { payment.amount > 1000 }")
    assert isinstance(e.value, ValueError)
    [d] = e.value.diagnostics
    assert d.code == "E301"
    assert d.rule_id == "fraud"
    assert (d.line, d.column) == (1, 1)
    text = str(e.value)
    assert "error[E301]" in text
    assert "rule `fraud`" in text
    assert "when { payment.amount > 1000 }" in text  # the source line
    assert "^" in text  # the caret


def test_rule_error_reports_every_error_with_positions():
    source = "when { payment.amount = 1000 }\nalways { fraud_check.score > 5min }"
    with pytest.raises(betrace.RuleError) as e:
        betrace.Rule("r", source)
    codes = [d.code for d in e.value.diagnostics]
    assert codes == ["E101", "E105"]
    eq, suffix = e.value.diagnostics
    assert (eq.line, eq.column, eq.start, eq.end) == (1, 23, 22, 23)
    assert eq.help is not None and "==" in eq.help
    assert (suffix.line, suffix.column) == (2, 31)
    assert source[suffix.start : suffix.end] == "min"
    assert "2 │ always { fraud_check.score > 5min }" in str(e.value)


def test_invalid_ids_and_severities_are_rule_errors():
    with pytest.raises(betrace.RuleError, match="not a slug") as e:
        betrace.Rule("has space", "a")
    assert e.value.diagnostics == []
    with pytest.raises(betrace.RuleError, match="unknown severity `urgent`"):
        betrace.Rule("x", "a", severity="urgent")


# ---- validate / format ----------------------------------------------------------------------


def test_validate_returns_diagnostics_and_never_raises():
    assert betrace.validate("when { a } always { b }") == []
    diags = betrace.validate("span.kind == serverr")
    [d] = diags
    assert d.code == "E303"
    assert d.rule_id is None
    assert d.to_dict() == {
        "code": "E303",
        "message": d.message,
        "line": 1,
        "column": d.column,
        "start": d.start,
        "end": d.end,
        "help": d.help,
    }
    assert "serverr" in d.message
    assert repr(d).startswith("Diagnostic(code='E303', message=")
    for bad in ["", "when {", "((((", "x" * 70000, "a ==== b"]:
        assert betrace.validate(bad), bad


def test_validate_columns_count_characters():
    [d] = betrace.validate('name == "é" and x = 1')
    assert d.code == "E101"
    assert d.column == 19
    assert d.start == 19  # bytes: é is two


def test_format_prints_the_canonical_form():
    assert betrace.format("when {a}   always{b} never {c}") == "when { a }\nalways { b }\nnever { c }"
    text = "// keep me\nwhen {a} always {b}"
    assert betrace.format(text) == text
    with pytest.raises(betrace.RuleError) as e:
        betrace.format("when { a }")
    assert [d.code for d in e.value.diagnostics] == ["E301"]
    assert "<expression>" in str(e.value)


# ---- Engine and violations ------------------------------------------------------------------


def test_engine_evaluates_rules_per_trace():
    engine = betrace.Engine(
        [
            betrace.Rule("fraud", "when { checkout.where(amount > 1000) } always { fraud_check }", severity="HIGH"),
            betrace.Rule("payment-ok", "never { payment.where(span.status == error) }", severity="CRITICAL"),
            "span.name == fraud_check",
        ]
    )
    assert len(engine) == 3
    assert [r.id for r in engine.rules] == ["fraud", "payment-ok", "rule-3"]
    assert repr(engine) == "Engine(rules=['fraud', 'payment-ok', 'rule-3'])"
    violations = engine.evaluate(SPANS)
    got = [(v.rule_id, v.trace_id, v.failed_clause, v.severity) for v in violations]
    assert got == [
        ("fraud", T1, "always", "HIGH"),
        ("payment-ok", T1, "never", "CRITICAL"),
        ("rule-3", T2, "expression", "MEDIUM"),
    ]
    fraud, payment, expr = violations
    assert [r.name for r in fraud.trigger_spans] == ["checkout"]
    assert fraud.offending_spans == []
    assert [r.span_id for r in payment.offending_spans] == ["00000000000000a2"]
    assert payment.span_id == "00000000000000a2"
    assert [r.span_id for r in expr.trigger_spans] == ["00000000000000b2"]
    assert fraud.rule_name == "fraud"
    assert fraud.message.startswith('rule "fraud" (HIGH): when matched checkout')
    assert str(fraud) == fraud.message
    assert fraud.signature is None
    assert fraud.completion_reason == "direct"
    assert fraud.partial is False and fraud.truncated is False
    assert len(fraud.rule_version) == 16
    assert repr(fraud) == (
        f"Violation(rule_id='fraud', severity='HIGH', failed_clause='always', trace_id='{T1}', "
        "trigger_spans=['checkout'], offending_spans=[])"
    )
    ref = fraud.trigger_spans[0]
    assert (ref.trace_id, ref.span_id, ref.service) == (T1, "00000000000000a1", "shop")
    assert ref.to_dict() == {"traceId": T1, "spanId": "00000000000000a1", "name": "checkout", "service": "shop"}
    assert ref == betrace.check("never { checkout.where(amount > 1000) }", SPANS)[0].offending_spans[0]
    assert len({ref, fraud.trigger_spans[0]}) == 1


def test_to_dict_is_the_server_shape():
    [v] = betrace.check("never { payment }", SPANS)
    d = v.to_dict()
    assert list(d) == [
        "id",
        "ruleId",
        "ruleName",
        "ruleVersion",
        "severity",
        "message",
        "traceId",
        "spanId",
        "failedClause",
        "completionReason",
        "partial",
        "triggerSpans",
        "offendingSpans",
        "truncated",
        "createdAt",
        "signature",
    ]
    assert d["ruleId"] == "check"
    assert d["offendingSpans"] == [
        {"traceId": T1, "spanId": "00000000000000a2", "name": "payment", "service": "shop"}
    ]
    assert d["signature"] is None
    assert d["id"] == v.id and d["createdAt"] == v.created_at
    assert json.loads(json.dumps(d)) == d
    # A first evaluation: the re-evaluation keys are absent and the getters say so.
    assert (v.evaluation, v.supersedes, v.retraction) == (1, None, False)


def test_diagnostic_dicts_carry_the_rule_id_and_secondary_labels():
    [d] = betrace.validate("when { a } always { b } always { c }")
    assert d.labels == [{"message": "first written here", "line": 1, "column": 12, "start": 11, "end": 17}]
    assert d.to_dict()["labels"] == d.labels
    assert "ruleId" not in d.to_dict()
    with pytest.raises(betrace.RuleError) as e:
        betrace.Rule("twice", "when { a } always { b } always { c }")
    [d] = e.value.diagnostics
    assert d.rule_id == "twice"
    assert d.to_dict()["ruleId"] == "twice"
    assert list(d.to_dict()) == ["code", "message", "line", "column", "start", "end", "help", "ruleId", "labels"]


def test_disabled_rules_do_not_run():
    engine = betrace.Engine([betrace.Rule("off", "never { payment }", enabled=False)])
    assert engine.evaluate(SPANS) == []


def test_signed_violations_verify_with_the_documented_procedure():
    key = b"test-signing-key"
    [v] = betrace.Engine(["never { payment }"], signing_key=key).evaluate(SPANS)
    assert v.signature is not None and v.signature.startswith("v1:")
    body = {k: val for k, val in v.to_dict().items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert v.signature == "v1:" + hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
    [w] = betrace.Engine(["never { payment }"], signing_key="test-signing-key").evaluate(SPANS)
    assert w.signature is not None and w.signature.startswith("v1:")
    with pytest.raises(TypeError, match="signing_key"):
        betrace.Engine(["a"], signing_key=5)


def test_max_span_refs_cuts_span_lists():
    spans = [span(T1, f"{i:016x}", "db.query", 100 + i) for i in range(1, 8)]
    [v] = betrace.Engine(["never { db.query }"], max_span_refs=3).evaluate(spans)
    assert [r.span_id for r in v.offending_spans] == [f"{i:016x}" for i in range(1, 4)]
    assert v.truncated
    [v] = betrace.check("never { db.query }", spans, max_span_refs=5)
    assert len(v.offending_spans) == 5
    with pytest.raises(ValueError):
        betrace.Engine(["a"], max_span_refs=0)


def test_engine_rule_errors_name_every_failing_rule():
    with pytest.raises(betrace.RuleError) as e:
        betrace.Engine(["when { a } always { b }", "when { a }", "x = 1"])
    assert [(d.rule_id, d.code) for d in e.value.diagnostics] == [("rule-2", "E301"), ("rule-3", "E101")]
    assert "rule `rule-2`" in str(e.value) and "rule `rule-3`" in str(e.value)
    with pytest.raises(betrace.RuleError, match="two rules have the id `a`"):
        betrace.Engine([betrace.Rule("a", "x"), betrace.Rule("a", "y")])
    with pytest.raises(TypeError, match=r"rules\[1\]"):
        betrace.Engine(["x", 5])
    with pytest.raises(TypeError):
        betrace.Engine("never { a }")


def test_engine_from_file(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: payment-ok\n"
        "    severity: critical\n"
        "    expression: never { payment.where(span.status == error) }\n"
        "  - id: fraud\n"
        "    expression: |\n"
        "      when { checkout.where(amount > 1000) } always { fraud_check }\n",
        encoding="utf-8",
    )
    engine = betrace.Engine.from_file(rules)
    assert [r.id for r in engine.rules] == ["payment-ok", "fraud"]
    assert [(v.rule_id, v.severity) for v in engine.evaluate(SPANS)] == [("payment-ok", "CRITICAL"), ("fraud", "MEDIUM")]
    assert len(betrace.Engine.from_file(str(rules))) == 2

    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        betrace.Engine.from_file(tmp_path / "missing.yaml")
    bad_key = tmp_path / "bad-key.yaml"
    bad_key.write_text("- id: a\n  expresion: never { a }\n", encoding="utf-8")
    with pytest.raises(betrace.RuleError, match="expresion") as e:
        betrace.Engine.from_file(bad_key)
    assert e.value.diagnostics == []
    bad_rule = tmp_path / "bad-rule.yaml"
    bad_rule.write_text("- id: a\n  expression: when { a }\n", encoding="utf-8")
    with pytest.raises(betrace.RuleError) as e:
        betrace.Engine.from_file(bad_rule)
    assert [(d.rule_id, d.code) for d in e.value.diagnostics] == [("a", "E301")]


# ---- span input errors ----------------------------------------------------------------------


def test_span_error_names_index_and_field():
    bad = [*SPANS, span(T2, "00000000000000b3", "x", 5, kind="sideways")]
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { x }", bad)
    assert isinstance(e.value, ValueError)
    assert (e.value.index, e.value.field) == (4, "kind")
    assert str(e.value).startswith("span 4: field `kind`: `sideways` is not a span kind")
    copy = pickle.loads(pickle.dumps(e.value))
    assert (type(copy), copy.index, copy.field, str(copy)) == (betrace.SpanError, 4, "kind", str(e.value))


def test_span_error_lists_every_bad_span_with_its_index():
    otlp_bad = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": T1, "spanId": "00000000000000c1", "name": "ok", "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
                            {"traceId": T1, "spanId": "", "name": "no-id", "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
                        ]
                    }
                ]
            }
        ]
    }
    bad = [
        *SPANS,
        span(T2, "00000000000000b3", "x", 5, kind="sideways"),
        span(T2, "00000000000000b4", "y", 5),
        otlp_bad,
        span(T2, "00000000000000b5", "z", 5, kind="upwards"),
    ]
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { x }", bad)
    assert (e.value.index, e.value.field) == (4, "kind")
    assert [(x.index, x.field) for x in e.value.errors] == [(4, "kind"), (7, "spanId"), (8, "kind")]
    assert str(e.value.errors[0]) == str(e.value)
    assert "`upwards` is not a span kind" in str(e.value.errors[2])
    copy = pickle.loads(pickle.dumps(e.value))
    assert [(x.index, x.field, str(x)) for x in copy.errors] == [(x.index, x.field, str(x)) for x in e.value.errors]


def test_span_indices_count_across_mixed_input():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: F401

    otlp = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": T1, "spanId": "00000000000000c1", "name": "a", "startTimeUnixNano": "1"},
                            {"traceId": T1, "spanId": "00000000000000c2", "name": "b", "startTimeUnixNano": "2"},
                        ]
                    }
                ],
            }
        ]
    }
    bad_dict = span(T1, "00000000000000c3", "c", "soon", end=5)
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { a }", [otlp, SPANS[0], bad_dict])
    assert (e.value.index, e.value.field) == (3, "startTime")
    broken = json.loads(json.dumps(otlp))
    broken["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["kind"] = 9
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { a }", [SPANS[0], broken])
    assert (e.value.index, e.value.field) == (2, "kind")
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { a }", [SPANS[0], SPANS[1], b"\xff\xff\xff"])
    assert e.value.index == 2
    assert "undecodable OTLP protobuf" in str(e.value)
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { a }", [SPANS[0], 42, SPANS[1]])
    assert e.value.index == 1
    assert "found `int`" in str(e.value)
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { a }", [SPANS[0], {"traceId": T1, "spanId": "1", "startTime": 1, "attributes": {"k": {1}}}])
    assert (e.value.index, e.value.field) == (1, "attributes.k")


def test_whole_documents_and_bad_input_types():
    assert len(betrace.check("never { payment }", {"spans": SPANS})) == 1
    assert len(betrace.check("never { payment }", SPANS[1])) == 1
    assert betrace.check("never { payment }", []) == []
    with pytest.raises(TypeError, match="not a str"):
        betrace.check("never { a }", json.dumps(SPANS))
    with pytest.raises(TypeError, match="found `int`"):
        betrace.check("never { a }", 42)
    with pytest.raises(betrace.SpanError, match="`spans: null`"):
        betrace.check("never { a }", {"spans": None})
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(betrace.SpanError, match="nested deeper"):
        betrace.check("never { a }", [{"traceId": T1, "spanId": "1", "startTime": 1, "attributes": {"k": deep}}])
    cyclic: dict = {"traceId": T1, "spanId": "1", "startTime": 1}
    cyclic["attributes"] = {"self": cyclic}
    with pytest.raises(betrace.SpanError, match="nested deeper"):
        betrace.check("never { a }", [cyclic])


def test_integers_beyond_i64_read_as_floats_like_json_text():
    spans = [span(T1, "00000000000000a1", "x", 1, attributes={"big": 2**70, "u": 2**63})]
    assert betrace.check("never { x.where(big > 1e21) }", spans)
    assert betrace.check("never { x.where(u > 9.2e18) }", spans)


def test_evaluation_errors_are_raised_not_hidden():
    spans = [span(T1, f"{i:016x}", "db.query", 100 + i) for i in range(1, 50)]
    engine = betrace.Engine([betrace.Rule("heavy", "never { db.query.where(followed_by(db.query)) }")], instruction_budget=20)
    with pytest.raises(betrace.EvaluationError) as e:
        engine.evaluate(spans)
    assert isinstance(e.value, RuntimeError)
    assert (e.value.rule_id, e.value.trace_id) == ("heavy", T1)
    assert "rule `heavy` on trace" in str(e.value)
    assert betrace.Engine([betrace.Rule("heavy", "never { db.query.where(followed_by(db.query)) }")]).evaluate(spans)
