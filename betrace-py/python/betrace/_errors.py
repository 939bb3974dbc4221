"""The exceptions of BeTrace (BINDINGS.md, Python); raised by the native module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ._native import Diagnostic


class RuleError(ValueError):
    """A rule that does not compile, or an invalid rule or rules file.

    ``diagnostics`` lists every compile error (empty when the problem is not in an
    expression, e.g. an unknown severity); ``str()`` is the rendered report with the source
    line and a caret under each error.
    """

    diagnostics: list[Diagnostic]

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.diagnostics = list(diagnostics)


class SpanError(ValueError):
    """A span that cannot be read: the first bad span of the input.

    ``index`` is the position of the span in the input, from 0 (an OTLP item counts as many
    spans as it holds, in document order); ``field`` names the field (``kind``,
    ``attributes.user``), ``""`` when the span as a whole is wrong. ``errors`` lists one
    ``SpanError`` per bad span of the input in order, this one's first (an OTLP item that
    cannot be read at all ends the list: the spans after it have no index); the entries' own
    ``errors`` are empty.
    """

    index: int
    field: str
    errors: list[SpanError]

    def __init__(
        self, message: str, index: int, field: str = "", errors: Sequence[SpanError] = ()
    ) -> None:
        super().__init__(message)
        self.index = index
        self.field = field
        self.errors = list(errors)

    def __reduce__(self):  # type: ignore[override]
        return (type(self), (str(self), self.index, self.field, self.errors))



class EvaluationError(RuntimeError):
    """A rule whose evaluation failed on a trace (its instruction budget ran out).

    Raised rather than reporting "no violation" for that rule and trace.
    """

    rule_id: str
    trace_id: str

    def __init__(self, message: str, rule_id: str, trace_id: str) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.trace_id = trace_id

    def __reduce__(self):  # type: ignore[override]
        return (type(self), (str(self), self.rule_id, self.trace_id))
