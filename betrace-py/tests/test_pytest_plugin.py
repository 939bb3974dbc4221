"""The pytest plugin in a test project of its own (pytester, run in a subprocess so the
global tracer provider starts unset): the `betrace_spans` fixture, `assert_no_violations`
and the `@pytest.mark.betrace` marker."""

from __future__ import annotations

import pytest

SHOP = '''
"""An instrumented service: the tracer is taken at import, before any provider is set."""
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

tracer = trace.get_tracer("shop")


def place_order(amount, fraud_check=True, payment_fails=False):
    with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER, attributes={"order.amount": amount}):
        if fraud_check:
            with tracer.start_as_current_span("fraud_check"):
                pass
        with tracer.start_as_current_span("payment", kind=trace.SpanKind.CLIENT) as payment:
            if payment_fails:
                payment.set_status(Status(StatusCode.ERROR, "declined"))
'''

RULES = """
rules:
  - id: large-order-fraud-check
    severity: HIGH
    expression: when { checkout.where(order.amount > 1000) } always { fraud_check }
  - id: payment-ok
    severity: CRITICAL
    expression: never { payment.where(span.status == error) }
"""

TESTS = '''
import pytest

import betrace
from shop import place_order


def test_fixture_captures_the_spans_of_the_test(betrace_spans):
    place_order(200)
    assert [s.name for s in betrace_spans] == ["fraud_check", "payment", "checkout"]
    assert len(betrace.check("when { checkout } always { fraud_check }", betrace_spans)) == 0
    betrace.assert_no_violations(betrace_spans, "rules.yaml")
    betrace_spans.assert_no_violations("rules.yaml")


def test_each_test_starts_with_no_spans(betrace_spans):
    assert len(betrace_spans) == 0
    place_order(10)
    betrace_spans.clear()
    assert list(betrace_spans) == []


def test_violation_through_the_fixture(betrace_spans):
    place_order(5000, fraud_check=False)
    betrace.assert_no_violations(betrace_spans, "rules.yaml")


@pytest.mark.betrace("rules.yaml")
def test_marker_passes():
    place_order(5000)


@pytest.mark.betrace("rules.yaml")
def test_marker_fails():
    place_order(5000, fraud_check=False, payment_fails=True)


@pytest.mark.betrace("rules.yaml", ["never { checkout.where(order.amount > 100000) }"])
def test_marker_with_fixture(betrace_spans):
    place_order(20)
    assert len(betrace_spans) == 3


@pytest.mark.betrace("rules.yaml")
def test_marker_does_not_hide_the_test_failure():
    place_order(5000, fraud_check=False)
    assert False, "the test's own failure"


@pytest.mark.betrace("no-such-rules.yaml")
def test_marker_with_missing_file():
    place_order(1)


@pytest.mark.betrace
def test_marker_without_rules():
    pass
'''


def run(pytester: pytest.Pytester, shop: str = SHOP) -> pytest.RunResult:
    pytester.makepyfile(shop=shop, test_shop=TESTS)
    pytester.path.joinpath("rules.yaml").write_text(RULES, encoding="utf-8")
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")


def test_plugin_in_a_test_project(pytester: pytest.Pytester) -> None:
    result = run(pytester)
    result.assert_outcomes(passed=4, failed=4, errors=1)
    lines = result.stdout.str()
    # The fixture's violation: rule, severity, failed clause, span names.
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: 1 BeTrace rule violation:*",
            "*- rule 'large-order-fraud-check' (HIGH), failed clause: always, trace *",
            "*trigger spans: checkout (*",
        ]
    )
    # The marker's: both rules of the file.
    result.stdout.fnmatch_lines(
        [
            "*2 BeTrace rule violations:*",
            "*- rule 'large-order-fraud-check' (HIGH), failed clause: always*",
            "*- rule 'payment-ok' (CRITICAL), failed clause: never*",
            "*offending spans: payment (*",
        ]
    )
    assert "the test's own failure" in lines
    result.stdout.fnmatch_lines(["*rules file `no-such-rules.yaml` not found*"])
    result.stdout.fnmatch_lines(["*@pytest.mark.betrace needs at least one rules file or rule*"])
    result.stdout.fnmatch_lines(
        [
            "PASSED test_shop.py::test_fixture_captures_the_spans_of_the_test",
            "PASSED test_shop.py::test_each_test_starts_with_no_spans",
            "PASSED test_shop.py::test_marker_passes",
            "PASSED test_shop.py::test_marker_with_fixture",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED test_shop.py::test_violation_through_the_fixture*",
            "FAILED test_shop.py::test_marker_fails*",
            "FAILED test_shop.py::test_marker_does_not_hide_the_test_failure*",
            "FAILED test_shop.py::test_marker_with_missing_file*",
        ],
        consecutive=False,
    )


def test_plugin_uses_the_sdk_provider_of_the_code_under_test(pytester: pytest.Pytester) -> None:
    shop = SHOP.replace(
        'tracer = trace.get_tracer("shop")',
        "from opentelemetry.sdk.resources import Resource\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        'trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "shop-api"})))\n'
        'tracer = trace.get_tracer("shop")',
    )
    pytester.makepyfile(shop=shop)
    pytester.makepyfile(
        test_provider="""
import betrace
from shop import place_order


def test_spans_come_from_the_application_provider(betrace_spans):
    place_order(5000, fraud_check=False)
    [v] = betrace.check("when { checkout.where(order.amount > 1000) } always { fraud_check }", betrace_spans)
    assert v.trigger_spans[0].service == "shop-api"
    assert betrace_spans.tracer_provider.resource.attributes["service.name"] == "shop-api"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.betrace(*rules)*"])
