"""Spans from the real OpenTelemetry SDK evaluate exactly like the same trace given as OTLP
protobuf (the SDK's own encoder), OTLP/JSON and simple JSON, and mixed lists of them."""

from __future__ import annotations

import pytest
import betrace
from sdk_traces import (
    RESOURCE_RULES,
    RULES,
    Shop,
    comparable,
    expected_violations,
    order_of_trace,
    orders,
    to_otlp_json,
    to_protobuf,
    to_simple_json,
)

ORDERS = orders(30)


@pytest.fixture(scope="module")
def sdk_spans():
    return Shop().record(ORDERS)


@pytest.fixture(scope="module")
def engine():
    return betrace.Engine(
        [betrace.Rule(rule_id, text, severity="HIGH") for rule_id, text in {**RULES, **RESOURCE_RULES}.items()]
    )


@pytest.fixture(scope="module")
def simple_engine():
    return betrace.Engine([betrace.Rule(rule_id, text) for rule_id, text in RULES.items()])


def found(violations, spans) -> set[tuple[str, int]]:
    order = order_of_trace(spans)
    return {(v.rule_id, order[v.trace_id]) for v in violations}


def test_sdk_spans_give_the_violations_the_orders_were_built_to_have(sdk_spans, simple_engine, engine):
    violations = simple_engine.evaluate(sdk_spans)
    assert found(violations, sdk_spans) == expected_violations(ORDERS)
    # Every rule that can fire did, so the comparisons below compare something.
    assert {v.rule_id for v in violations} >= set(RULES) - {"payment-in-payment-service", "fraud-check-below-checkout"}
    staging = {(r, i) for (r, i) in found(engine.evaluate(sdk_spans), sdk_spans) if r in RESOURCE_RULES}
    assert staging == {
        ("no-staging-inventory", i) for i, o in enumerate(ORDERS) if o.payment_fails and o.releases_stock
    }


def test_sdk_spans_match_otlp_protobuf_from_the_sdk_encoder(sdk_spans, engine):
    direct = engine.evaluate(sdk_spans)
    encoded = engine.evaluate(to_protobuf(sdk_spans))
    assert comparable(encoded) == comparable(direct)
    assert len(direct) > 10


def test_sdk_spans_match_otlp_json(sdk_spans, engine):
    assert comparable(engine.evaluate(to_otlp_json(sdk_spans))) == comparable(engine.evaluate(sdk_spans))


def test_sdk_spans_match_simple_json(sdk_spans, simple_engine):
    assert comparable(simple_engine.evaluate(to_simple_json(sdk_spans))) == comparable(
        simple_engine.evaluate(sdk_spans)
    )


def test_mixed_lists_give_the_same_violations(sdk_spans, engine):
    third = len(sdk_spans) // 3
    head, middle, tail = sdk_spans[:third], sdk_spans[third : 2 * third], sdk_spans[2 * third :]
    mixed = [to_protobuf(head), *middle, to_otlp_json(tail)]
    assert comparable(engine.evaluate(mixed)) == comparable(engine.evaluate(sdk_spans))
    mixed = [*to_simple_json(head), bytearray(to_protobuf(middle)), memoryview(to_protobuf(tail))]
    simple_rules = betrace.Engine([betrace.Rule(k, v) for k, v in RULES.items()])
    assert comparable(simple_rules.evaluate(mixed)) == comparable(simple_rules.evaluate(sdk_spans))


def test_generators_and_tuples_are_span_input(sdk_spans, engine):
    expected = comparable(engine.evaluate(sdk_spans))
    assert comparable(engine.evaluate(tuple(sdk_spans))) == expected
    assert comparable(engine.evaluate(s for s in sdk_spans)) == expected


def test_violation_names_sdk_span_fields(sdk_spans):
    violations = betrace.check("never { payment.where(span.status == error) }", sdk_spans)
    failing = [i for i, o in enumerate(ORDERS) if o.payment_fails]
    assert len(violations) == len(failing)
    v = violations[0]
    payment = next(
        s for s in sdk_spans if s.name == "payment" and format(s.context.trace_id, "032x") == v.trace_id
    )
    assert v.failed_clause == "never"
    assert v.trigger_spans == []
    [ref] = v.offending_spans
    assert (ref.name, ref.service, ref.span_id, ref.trace_id) == (
        "payment",
        "payment-service",
        format(payment.context.span_id, "016x"),
        format(payment.context.trace_id, "032x"),
    )
    assert v.span_id == ref.span_id


def test_sdk_attribute_types_reach_the_rules():
    shop = Shop()
    spans = shop.record(orders(3))
    # Each type as the SDK holds it: a selection that must match, and one that must not.
    checks = {
        "string": ('checkout.where(order.currency == "USD")', 'checkout.where(order.currency == "usd")'),
        "int": ("checkout.where(order.items == 1)", "checkout.where(order.items == 9)"),
        "float": ("payment.where(fee == 2.5)", "payment.where(fee == 2.4)"),
        "bool": ("payment.where(card.saved == true)", "payment.where(card.saved == 1)"),
        "string array": ('checkout.where(tags contains "gift")', 'checkout.where(tags contains "gif")'),
        "bool array": ("checkout.where(flags contains true)", "checkout.where(#flags == 3)"),
        "float array": ("checkout.where(weights contains 1.25)", "checkout.where(weights contains 1.3)"),
        "kind": ("inventory.reserve.where(span.kind == producer)", "inventory.reserve.where(span.kind == consumer)"),
        "status ok": ("payment.where(span.status == ok)", "fraud_check.where(span.status == ok)"),
        "status unset": ("checkout.where(span.status == unset)", "checkout.where(span.status == error)"),
        "parent": ("fraud_check.where(has_parent(checkout))", "checkout.where(has_parent(fraud_check))"),
        "root": ("checkout.where(span.is_root)", "payment.where(span.is_root)"),
        "resource": (
            'db.query.where(resource.attributes["service.version"] == "1.4.2")',
            'db.query.where(span.attributes["service.version"] == "1.4.2")',
        ),
        "duration": ("checkout.where(span.duration == 1500ms)", "checkout.where(span.duration > 1500ms)"),
    }
    for what, (matches, does_not) in checks.items():
        assert betrace.check(f"never {{ {matches} }}", spans), what
        assert not betrace.check(f"never {{ {does_not} }}", spans), what


def test_unended_and_invalid_sdk_spans_are_span_errors():
    shop = Shop()
    spans = shop.record(orders(1))
    live = shop.tracers["storefront"].start_span("still-running")
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { checkout }", [*spans, live])
    assert e.value.index == len(spans)
    assert e.value.field == "end_time"
    assert "has not ended" in str(e.value)
    live.end()

    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    zero = ReadableSpan(name="x", context=SpanContext(0, 1, False), start_time=1, end_time=2)
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { x }", [zero])
    assert (e.value.index, e.value.field) == (0, "context.trace_id")
    assert str(e.value) == "span 0: field `context.trace_id`: an all-zero trace id is invalid"
    # The same id as OTLP/JSON: the same wording, with the field as OTLP/JSON writes it.
    otlp = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0" * 32, "spanId": "0000000000000001"}]}]}]}
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { x }", otlp)
    assert str(e.value) == "span 0: field `traceId`: an all-zero trace id is invalid"

    weird = ReadableSpan(
        name="x", context=SpanContext(1, 1, False), start_time=1, end_time=2, attributes={"ok": 1, "bad": {1, 2}}
    )
    with pytest.raises(betrace.SpanError) as e:
        betrace.check("never { x }", [*spans, weird])
    assert (e.value.index, e.value.field) == (len(spans), "attributes.bad")
    assert "`set`" in str(e.value)
