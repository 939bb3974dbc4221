"""BeTrace: behavioral assertions on OpenTelemetry traces.

Rules written in the BeTrace language are compiled and evaluated by the same Rust engine as
the ``betrace`` command; spans come from the OpenTelemetry SDK (``ReadableSpan`` objects, as
``InMemorySpanExporter`` returns them), simple-JSON or OTLP/JSON dicts, or OTLP protobuf
bytes::

    import betrace

    engine = betrace.Engine([betrace.Rule("slow", "span.duration > 1s", severity="HIGH")])
    for violation in engine.evaluate(spans):
        print(violation.message)

The pytest plugin (fixture ``betrace_spans``, marker ``@pytest.mark.betrace("rules.yaml")``)
lives in ``betrace.pytest_plugin``.
"""

from ._assert import assert_no_violations
from ._errors import EvaluationError, RuleError, SpanError
from ._native import Diagnostic, Engine, Rule, SpanRef, Violation, check, format, validate

__all__ = [
    "Diagnostic",
    "Engine",
    "EvaluationError",
    "Rule",
    "RuleError",
    "SpanError",
    "SpanRef",
    "Violation",
    "assert_no_violations",
    "check",
    "format",
    "validate",
]
