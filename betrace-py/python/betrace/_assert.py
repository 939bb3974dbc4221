"""``assert_no_violations``: rules over spans as a test assertion (BINDINGS.md, Python)."""

from __future__ import annotations

import os
from typing import Any

from ._native import Engine, Rule, Violation


def engine_of(rules: Any) -> Engine:
    """An ``Engine`` for ``rules``: an ``Engine``; a rules-file path (``str`` or
    ``os.PathLike``); a ``Rule``; or an iterable of ``Rule`` objects and expression strings."""
    if isinstance(rules, Engine):
        return rules
    if isinstance(rules, (str, os.PathLike)):
        return Engine.from_file(rules)
    if isinstance(rules, Rule):
        return Engine([rules])
    return Engine(rules)


def describe(violations: list[Violation]) -> str:
    """The text of the ``AssertionError``: each violation with its rule, severity, failed
    clause, message and the names of its trigger and offending spans."""
    count = len(violations)
    lines = [f"{count} BeTrace rule violation{'s' if count != 1 else ''}:"]
    for v in violations:
        lines.append(
            f"- rule {v.rule_id!r} ({v.severity}), failed clause: {v.failed_clause}, trace {v.trace_id}"
        )
        lines.append(f"    {v.message}")
        for label, spans in (("trigger spans", v.trigger_spans), ("offending spans", v.offending_spans)):
            if spans:
                names = ", ".join(
                    f"{s.name} ({s.service}, {s.span_id})" if s.service else f"{s.name} ({s.span_id})"
                    for s in spans
                )
                lines.append(f"    {label}: {names}")
    return "\n".join(lines)


def assert_no_violations(spans: Any, rules: Any) -> None:
    """Evaluates ``rules`` (an ``Engine``, a rules-file path, a ``Rule``, or a list of ``Rule``
    objects and expression strings) against ``spans`` (anything ``Engine.evaluate`` takes) and
    raises ``AssertionError`` listing every violation.

    Bad rules raise ``RuleError``, bad spans ``SpanError``, as ``Engine.evaluate`` does.
    """
    __tracebackhide__ = True
    violations = engine_of(rules).evaluate(spans)
    if violations:
        raise AssertionError(describe(violations))
