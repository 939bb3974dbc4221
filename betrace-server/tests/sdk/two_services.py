#!/usr/bin/env python3
"""Two services sending one distributed trace each way, with the real OpenTelemetry Python SDK
and its BatchSpanProcessor at its default schedule delay (5 s, OTEL_BSP_SCHEDULE_DELAY unset).

`frontend` (service.name=frontend) starts a `checkout` root span and calls `payments`
(service.name=payments) with the W3C trace context in the request headers; `payments`
extracts it and records `charge` as a child. The frontend flushes as soon as its root span
ends; the payments service leaves its batch to the processor's timer, so its span reaches the
server seconds after the root span, as in a deployment where each service exports on its own.

In: --endpoint (OTLP/HTTP base URL). Out: JSON on standard output:

  {"paid": {"trace_id"},                     # checkout -> charge, across the two services
   "unpaid": {"trace_id", "checkout_span_id"},  # checkout alone (payments never called)
   "frontend_export_s": float, "payments_export_s": float}  # when each export was sent,
                                                              # seconds after the start

Exit 1 when an export fails or the payments processor did not export within 20 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

for _key in [k for k in os.environ if k.startswith("OTEL_")]:
    del os.environ[_key]

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import (  # noqa: E402
    TraceContextTextMapPropagator,
)

START = time.monotonic()


class TimedExporter:
    """Wraps an exporter; records when the first export was sent and whether all succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.first_export_s = None
        self.failed = 0
        self.exported = threading.Event()

    def export(self, spans):
        if self.first_export_s is None:
            self.first_export_s = time.monotonic() - START
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.failed += 1
        self.exported.set()
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def provider(service: str, endpoint: str):
    exporter = TimedExporter(
        OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=10)
    )
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    # Defaults: schedule_delay 5000 ms, max_export_batch_size 512.
    p.add_span_processor(BatchSpanProcessor(exporter))
    return p, exporter


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    args = ap.parse_args()

    frontend, frontend_exp = provider("frontend", args.endpoint)
    payments, payments_exp = provider("payments", args.endpoint)
    ft = frontend.get_tracer("frontend")
    pt = payments.get_tracer("payments")
    propagator = TraceContextTextMapPropagator()

    def payments_handler(headers: dict) -> None:
        ctx = propagator.extract(headers)
        with pt.start_as_current_span("charge", context=ctx, kind=SpanKind.SERVER):
            time.sleep(0.01)

    with ft.start_as_current_span("checkout", kind=SpanKind.SERVER) as paid:
        headers: dict = {}
        propagator.inject(headers)
        payments_handler(headers)
    with ft.start_as_current_span("checkout", kind=SpanKind.SERVER) as unpaid:
        pass

    # The frontend exports now; payments waits for its processor's timer.
    frontend.force_flush()
    if not payments_exp.exported.wait(20):
        print("the payments processor did not export within 20 s", file=sys.stderr)
        return 1
    frontend.shutdown()
    payments.shutdown()
    if frontend_exp.failed or payments_exp.failed:
        print("an export failed", file=sys.stderr)
        return 1
    out = {
        "paid": {"trace_id": format(paid.get_span_context().trace_id, "032x")},
        "unpaid": {
            "trace_id": format(unpaid.get_span_context().trace_id, "032x"),
            "checkout_span_id": format(unpaid.get_span_context().span_id, "016x"),
        },
        "frontend_export_s": frontend_exp.first_export_s,
        "payments_export_s": payments_exp.first_export_s,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
