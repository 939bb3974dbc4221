"""The pytest plugin of BeTrace (entry point ``pytest11``; BINDINGS.md, Python).

- Fixture ``betrace_spans``: captures, for the duration of one test, every span that ends on
  the global OpenTelemetry tracer provider, and yields them as a live sequence of SDK
  ``ReadableSpan`` objects. When no SDK tracer provider is set yet, one is installed; an SDK
  provider set by the code under test is used as it is (the capture is one more span
  processor on it).
- Marker ``@pytest.mark.betrace("rules.yaml")``: when the test has passed, evaluates the rules
  on the spans the test produced and fails the test with the list of violations (the text of
  ``assert_no_violations``). Arguments are rules-file paths (relative paths are looked up
  beside the test file, then in the rootdir), ``Engine`` or ``Rule`` objects, or lists of
  rules and expression strings.

Needs the ``opentelemetry-sdk`` package when the fixture or the marker is used, and pytest 8
or newer.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import pytest

from ._assert import describe, engine_of
from ._native import Engine, Violation

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_MARKER = "betrace"
_MARKED = pytest.StashKey["tuple[pytest.Mark, CapturedSpans]"]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "betrace(*rules): when the test has passed, assert that the spans it produced (captured "
        "as by the betrace_spans fixture) violate none of the rules; rules are rules-file paths "
        "(relative to the test file or the rootdir), Engine or Rule objects, or lists of rules "
        "and expression strings",
    )


class _Exporters:
    """The in-memory exporters of the tests running now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exporters: list[InMemorySpanExporter] = []

    def add(self, exporter: InMemorySpanExporter) -> None:
        with self._lock:
            self._exporters.append(exporter)

    def remove(self, exporter: InMemorySpanExporter) -> None:
        with self._lock:
            self._exporters = [e for e in self._exporters if e is not exporter]

    def export(self, span: ReadableSpan) -> None:
        with self._lock:
            exporters = list(self._exporters)
        for exporter in exporters:
            exporter.export((span,))


def _capture_processor(exporters: _Exporters) -> Any:
    """An SDK span processor handing every ended span to `exporters` (the SDK is imported
    only when the plugin is used)."""
    from opentelemetry.sdk.trace import SpanProcessor

    class _Capture(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            exporters.export(span)

    return _Capture()


_install_lock = threading.Lock()
_captures: weakref.WeakKeyDictionary[Any, _Exporters] = weakref.WeakKeyDictionary()


def _sdk_provider() -> TracerProvider:
    """The global SDK tracer provider, installed when none is set."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError as e:
        raise pytest.UsageError(
            "the betrace_spans fixture and the betrace marker need the opentelemetry-sdk "
            f"package (pip install opentelemetry-sdk): {e}"
        ) from e
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise pytest.UsageError(
            "the global tracer provider is a "
            f"{type(provider).__module__}.{type(provider).__qualname__}, not an "
            "opentelemetry-sdk TracerProvider, so betrace_spans cannot capture its spans"
        )
    return provider


def _install() -> tuple[TracerProvider, _Exporters]:
    """The global SDK provider and the exporters it feeds, installing both on first use."""
    with _install_lock:
        provider = _sdk_provider()
        exporters = _captures.get(provider)
        if exporters is None:
            exporters = _Exporters()
            provider.add_span_processor(_capture_processor(exporters))
            _captures[provider] = exporters
        return provider, exporters


class CapturedSpans(Sequence["ReadableSpan"]):
    """The spans that ended during the test, in the order they ended; a live view (it grows
    as the test goes on). Anything that takes spans (``Engine.evaluate``, ``betrace.check``,
    ``assert_no_violations``) takes it."""

    def __init__(self, exporter: InMemorySpanExporter, tracer_provider: TracerProvider) -> None:
        self._exporter = exporter
        self._tracer_provider = tracer_provider

    @property
    def exporter(self) -> InMemorySpanExporter:
        """The test's ``InMemorySpanExporter``."""
        return self._exporter

    @property
    def tracer_provider(self) -> TracerProvider:
        """The SDK tracer provider the spans are captured from (the global one)."""
        return self._tracer_provider

    def _spans(self) -> tuple[ReadableSpan, ...]:
        return self._exporter.get_finished_spans()

    def __getitem__(self, index: Any) -> Any:
        return self._spans()[index]

    def __len__(self) -> int:
        return len(self._spans())

    def __iter__(self) -> Iterator[ReadableSpan]:
        return iter(self._spans())

    def clear(self) -> None:
        """Forgets the spans captured so far."""
        self._exporter.clear()

    def evaluate(self, rules: Any) -> list[Violation]:
        """The violations of ``rules`` (as ``assert_no_violations`` takes them) by the spans so
        far."""
        return engine_of(rules).evaluate(self._spans())

    def assert_no_violations(self, rules: Any) -> None:
        """``betrace.assert_no_violations`` on the spans so far."""
        __tracebackhide__ = True
        violations = self.evaluate(rules)
        if violations:
            raise AssertionError(describe(violations))

    def __repr__(self) -> str:
        names = ", ".join(repr(s.name) for s in self._spans())
        return f"CapturedSpans([{names}])"


@pytest.fixture
def betrace_spans() -> Iterator[CapturedSpans]:
    """The spans that end during the test on the global OpenTelemetry tracer provider (an SDK
    ``TracerProvider``, installed when none is set), as ``ReadableSpan`` objects."""
    try:
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
    except ImportError as e:
        raise pytest.UsageError(
            "the betrace_spans fixture needs the opentelemetry-sdk package "
            f"(pip install opentelemetry-sdk): {e}"
        ) from e
    provider, capture = _install()
    exporter = InMemorySpanExporter()
    capture.add(exporter)
    try:
        yield CapturedSpans(exporter, provider)
    finally:
        capture.remove(exporter)
        exporter.clear()


@pytest.fixture(autouse=True)
def _betrace_marker(request: pytest.FixtureRequest) -> None:
    """Starts the capture for tests marked ``betrace``."""
    marker = request.node.get_closest_marker(_MARKER)
    if marker is None:
        return
    if not marker.args:
        pytest.fail("@pytest.mark.betrace needs at least one rules file or rule", pytrace=False)
    request.node.stash[_MARKED] = (marker, request.getfixturevalue("betrace_spans"))


def _resolve(arg: Any, item: pytest.Item) -> Engine:
    if isinstance(arg, (str, os.PathLike)):
        path = Path(arg)
        if not path.is_absolute():
            candidates = list(dict.fromkeys([item.path.parent / path, item.config.rootpath / path]))
            found = next((c for c in candidates if c.exists()), None)
            if found is None:
                tried = " or ".join(str(c) for c in candidates)
                pytest.fail(f"@pytest.mark.betrace: rules file `{arg}` not found (looked for {tried})", pytrace=False)
            path = found
        return Engine.from_file(path)
    return engine_of(arg)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    result = yield
    marked = item.stash.get(_MARKED, None)
    if marked is not None:
        marker, spans = marked
        spans_now = tuple(spans)
        violations: list[Violation] = []
        for arg in marker.args:
            violations.extend(_resolve(arg, item).evaluate(spans_now))
        if violations:
            pytest.fail(describe(violations), pytrace=False)
    return result
