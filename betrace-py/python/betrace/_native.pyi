"""Type stubs of the native module ``betrace._native`` (Rust, pyo3)."""

import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union, final

SpanInput = Union[bytes, bytearray, memoryview, Mapping[str, Any], Iterable[Any]]
"""OTLP protobuf bytes; an OTLP/JSON dict or a simple-JSON dict; or an iterable of
OpenTelemetry SDK ``ReadableSpan`` objects, simple-JSON span dicts, OTLP/JSON dicts and
protobuf bytes, mixed."""

@final
class Diagnostic:
    """One compile error of a rule (DSL.md §4)."""

    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def line(self) -> int:
        """1-based line of the start."""
    @property
    def column(self) -> int:
        """1-based column of the start, in characters."""
    @property
    def start(self) -> int:
        """Byte offset (UTF-8) of the start in the rule text."""
    @property
    def end(self) -> int:
        """Byte offset (UTF-8) of the end, exclusive."""
    @property
    def help(self) -> Optional[str]: ...
    @property
    def rule_id(self) -> Optional[str]:
        """The rule the diagnostic belongs to, when it came from a rule with an id."""
    @property
    def labels(self) -> list[dict[str, Any]]:
        """Secondary ranges: ``{"message", "line", "column", "start", "end"}``."""
    def to_dict(self) -> dict[str, Any]:
        """``{"code", "message", "line", "column", "start", "end", "help"}``, plus
        ``"ruleId"`` and ``"labels"`` when set."""

@final
class SpanRef:
    """A span named by a violation."""

    @property
    def trace_id(self) -> str: ...
    @property
    def span_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def service(self) -> str: ...
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...

@final
class Violation:
    """One violation of one rule by one trace (ENGINE.md §6)."""

    @property
    def id(self) -> str: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def rule_name(self) -> str: ...
    @property
    def rule_version(self) -> str: ...
    @property
    def severity(self) -> str:
        """``CRITICAL``, ``HIGH``, ``MEDIUM`` or ``LOW``."""
    @property
    def message(self) -> str: ...
    @property
    def trace_id(self) -> str: ...
    @property
    def span_id(self) -> str: ...
    @property
    def failed_clause(self) -> str:
        """``always``, ``never`` or ``expression``."""
    @property
    def trigger_spans(self) -> list[SpanRef]: ...
    @property
    def offending_spans(self) -> list[SpanRef]: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def completion_reason(self) -> str: ...
    @property
    def partial(self) -> bool: ...
    @property
    def created_at(self) -> str: ...
    @property
    def evaluation(self) -> int:
        """1, or n ≥ 2 for a re-evaluation of the trace after late spans."""
    @property
    def supersedes(self) -> Optional[str]:
        """The id of the earlier violation this record replaces."""
    @property
    def retraction(self) -> bool:
        """True when the record withdraws the violation ``supersedes``."""
    @property
    def signature(self) -> Optional[str]:
        """``v1:<hex>`` when the engine has a signing key, else ``None``."""
    def to_dict(self) -> dict[str, Any]:
        """The server's JSON shape, camelCase keys."""

@final
class Rule:
    """A rule; constructing one compiles its expression (raises ``RuleError``)."""

    def __init__(
        self,
        id: str,
        expression: str,
        *,
        severity: str = "MEDIUM",
        name: Optional[str] = None,
        description: str = "",
        tags: Sequence[str] = ...,
        enabled: bool = True,
    ) -> None: ...
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def expression(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def enabled(self) -> bool: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class Engine:
    """Compiled rules; safe to share between threads (evaluation releases the GIL)."""

    def __init__(
        self,
        rules: Iterable[Union[Rule, str]],
        *,
        signing_key: Union[bytes, str, None] = None,
        max_span_refs: int = 100,
    ) -> None: ...
    @staticmethod
    def from_file(
        path: Union[str, os.PathLike[str]],
        *,
        signing_key: Union[bytes, str, None] = None,
        max_span_refs: int = 100,
    ) -> Engine: ...
    def evaluate(self, spans: SpanInput) -> list[Violation]: ...
    @property
    def rules(self) -> list[Rule]: ...
    def __len__(self) -> int: ...

def check(expression: str, spans: SpanInput, *, max_span_refs: int = 100) -> list[Violation]:
    """One expression (rule id ``check``) against ``spans``."""

def validate(text: str) -> list[Diagnostic]:
    """Every diagnostic of a rule text; empty when it compiles. Never raises for a bad rule."""

def format(text: str) -> str:
    """The canonical text of a rule; raises ``RuleError`` when it does not compile."""
