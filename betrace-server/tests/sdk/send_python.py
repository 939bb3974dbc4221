#!/usr/bin/env python3
"""Send traces to `betrace serve` with the real OpenTelemetry Python SDK exporters.

In: --endpoint (OTLP/HTTP base URL, or host:port for gRPC), --protocol http|grpc, optional
--token, --gzip, --traces N (extra clean traces, for volume). Out: JSON on standard output
naming the traces sent, so the calling test can check the violations the server reports:

  {"fraud": {"trace_id", "checkout_span_id"},   # checkout over 1000 without fraud_check
   "clean": {"trace_id"},                       # checkout over 1000 with fraud_check
   "payment": {"trace_id", "payment_span_id"}}  # a payment span with status ERROR

Exit 1 when the exporter reports a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

for _key in [k for k in os.environ if k.startswith("OTEL_")]:
    del os.environ[_key]

from opentelemetry.context import Context  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context  # noqa: E402


class CountingExporter:
    """Wraps an exporter and remembers whether every export succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.failed = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.failed += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def exporter_for(args):
    headers = {"authorization": f"Bearer {args.token}"} if args.token else None
    if args.protocol == "http":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=args.endpoint.rstrip("/") + "/v1/traces",
            headers=headers,
            compression=Compression.Gzip if args.gzip else Compression.NoCompression,
            timeout=10,
        )
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=args.endpoint,
        insecure=True,
        headers=headers,
        compression=grpc.Compression.Gzip if args.gzip else grpc.Compression.NoCompression,
        timeout=10,
    )


def hexid(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--protocol", choices=["http", "grpc"], required=True)
    p.add_argument("--token")
    p.add_argument("--gzip", action="store_true")
    p.add_argument("--traces", type=int, default=0)
    args = p.parse_args()

    exporter = CountingExporter(exporter_for(args))
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512))
    tracer = provider.get_tracer("betrace-tests", "1.0")
    out = {}

    def checkout(amount: float, with_fraud_check: bool):
        root = tracer.start_span("checkout", kind=SpanKind.SERVER, context=Context())
        root.set_attribute("order.amount", amount)
        ctx = set_span_in_context(root, Context())
        if with_fraud_check:
            tracer.start_span("fraud_check", kind=SpanKind.CLIENT, context=ctx).end()
        tracer.start_span("payment", kind=SpanKind.CLIENT, context=ctx).end()
        root.end()
        sc = root.get_span_context()
        return hexid(sc.trace_id, 32), hexid(sc.span_id, 16)

    trace_id, span_id = checkout(1500.0, False)
    out["fraud"] = {"trace_id": trace_id, "checkout_span_id": span_id}
    trace_id, _ = checkout(1500.0, True)
    out["clean"] = {"trace_id": trace_id}

    root = tracer.start_span("checkout", kind=SpanKind.SERVER, context=Context())
    root.set_attribute("order.amount", 20)
    pay = tracer.start_span("payment", kind=SpanKind.CLIENT, context=set_span_in_context(root, Context()))
    pay.set_status(Status(StatusCode.ERROR, "card declined"))
    pay.end()
    root.end()
    out["payment"] = {
        "trace_id": hexid(root.get_span_context().trace_id, 32),
        "payment_span_id": hexid(pay.get_span_context().span_id, 16),
    }
    for _ in range(args.traces):
        checkout(10.0, False)

    provider.force_flush()
    provider.shutdown()
    if exporter.failed:
        print(f"{exporter.failed} export(s) failed", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
