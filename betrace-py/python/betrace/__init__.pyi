"""Type stubs of the ``betrace`` package."""

from typing import Any

from ._errors import EvaluationError as EvaluationError
from ._errors import RuleError as RuleError
from ._errors import SpanError as SpanError
from ._native import Diagnostic as Diagnostic
from ._native import Engine as Engine
from ._native import Rule as Rule
from ._native import SpanInput
from ._native import SpanRef as SpanRef
from ._native import Violation as Violation
from ._native import check as check
from ._native import format as format
from ._native import validate as validate

def assert_no_violations(spans: SpanInput, rules: Any) -> None:
    """Raises ``AssertionError`` listing every violation of ``rules`` (an ``Engine``, a
    rules-file path, a ``Rule``, or a list of ``Rule`` objects and expression strings)."""

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
