#!/usr/bin/env python3
"""Shop traffic for the scale-out test, made with the OpenTelemetry Python SDK
(BatchSpanProcessor, OTLP/HTTP protobuf exporter) and sent to --endpoint.

Trace i (0 <= i < --traces, ids random): a `checkout` root (service `shop`, SERVER,
`order.amount` 1500 when i % 3 == 0 else 200), a `payment` child (service `pay`, status
ERROR when i % 5 == 0) and, for large orders with i % 2 == 1, a `fraud_check` child. So the
rules of `common::shop_rules` find `large-order-fraud` in traces with i % 6 == 0 and
`payment-must-not-fail` in traces with i % 5 == 0.

With --split N, after the first half of the traces, N more traces are started: their children
are ended and flushed, "children-sent" is printed, and their roots are ended only after a line
arrives on standard input (the caller stops an instance in between). Their payments all fail
(so `payment-must-not-fail` finds every one of them wherever its children were evaluated).
Then the second half follows.

Out (standard output, last line): {"traces": [trace id hex...], "split": [trace id hex...],
"spans": n, "seconds": s (time from the first span to the last flush), "failed": exports that
failed}. Exit 1 when an export failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

for _key in [k for k in os.environ if k.startswith("OTEL_")]:
    del os.environ[_key]

from opentelemetry.context import Context  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context  # noqa: E402


class CountingExporter:
    def __init__(self, inner):
        self.inner = inner
        self.failed = 0
        self.spans = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.failed += 1
        else:
            self.spans += len(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--traces", type=int, default=1000)
    p.add_argument("--split", type=int, default=0)
    args = p.parse_args()

    exporter = CountingExporter(OTLPSpanExporter(
        endpoint=args.endpoint.rstrip("/") + "/v1/traces", timeout=120))
    processor = BatchSpanProcessor(exporter, max_queue_size=100_000,
                                   max_export_batch_size=512, schedule_delay_millis=50)
    providers = {}
    for service in ["shop", "pay", "fraud"]:
        tp = TracerProvider(resource=Resource.create({"service.name": service}))
        tp.add_span_processor(processor)
        providers[service] = tp
    shop = providers["shop"].get_tracer("shop")
    pay = providers["pay"].get_tracer("pay")
    fraud = providers["fraud"].get_tracer("fraud")

    traces = []

    def start(i, failing=False):
        root = shop.start_span("checkout", kind=SpanKind.SERVER, context=Context())
        large = i % 3 == 0
        root.set_attribute("order.amount", 1500 if large else 200)
        ctx = set_span_in_context(root, Context())
        payment = pay.start_span("payment", kind=SpanKind.CLIENT, context=ctx)
        if failing or i % 5 == 0:
            payment.set_status(Status(StatusCode.ERROR, "card declined"))
        payment.end()
        if large and i % 2 == 1:
            fraud.start_span("fraud_check", context=ctx).end()
        traces.append(format(root.get_span_context().trace_id, "032x"))
        return root

    t0 = time.monotonic()
    half = args.traces // 2
    for i in range(half):
        start(i).end()
    split = []
    if args.split:
        roots = [start(i, failing=True) for i in range(half, half + args.split)]
        split = traces[-args.split:]
        processor.force_flush()
        print("children-sent", flush=True)
        sys.stdin.readline()
        for r in roots:
            r.end()
    for i in range(half + args.split, args.traces + args.split):
        start(i).end()
    processor.force_flush()
    seconds = time.monotonic() - t0
    for tp in providers.values():
        tp.shutdown()
    print(json.dumps({"traces": traces, "split": split, "spans": exporter.spans,
                      "seconds": seconds, "failed": exporter.failed}), flush=True)
    return 1 if exporter.failed else 0


if __name__ == "__main__":
    sys.exit(main())
