"""Benchmark of the Python binding (issue: "a full check through the binding costs less than the
SDK's own export encoding of the same spans").

Workload: 10 000 spans recorded with the real OpenTelemetry SDK (500 traces of 20 spans, five
services each with its own TracerProvider and resource, about 10 attributes per span of every
attribute type), read back from an InMemorySpanExporter, and the 10 rules of `rules.yaml`
beside this script.

Timed in one run, each the best and the median of `--repeat` runs:
- `betrace`: `Engine.evaluate(sdk_spans)` — the full check: reading the SDK objects, grouping
  by trace, evaluating the rules, building the Violation objects;
- `encode_spans`: the SDK's own export encoding,
  `opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans(sdk_spans)`, and the
  same followed by `SerializeToString()` (what the OTLP/protobuf exporters send);
- `betrace (OTLP bytes)`: `Engine.evaluate(body)` on that protobuf body.

The Rust-only evaluation time of the same workload (decoded spans, no Python) is the
criterion benchmark `binding/evaluate` in `benches/benches/binding_workload.rs`, which reads the
workload this script writes (`--write-workload DIR`, default `target/binding-workload/`) and
the same `rules.yaml`; with `--rust` this script runs it and prints its estimates.

Usage (with a release build of the extension, e.g. `BETRACE_PY_PROFILE=release
betrace-py/run-tests.sh` or `pip install ./betrace-py`):

    .venv/bin/python betrace-py/bench/bench_binding.py [--repeat 15] [--rust]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

import betrace

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MS = 1_000_000
BASE = 1_700_000_000_000_000_000
TRACES = 500
SPANS_PER_TRACE = 20


class CountingIds(IdGenerator):
    """Deterministic ids, so two runs write the same workload."""

    def __init__(self) -> None:
        self.n = 0

    def generate_span_id(self) -> int:
        self.n += 1
        return (0x5BA0 << 48) | self.n

    def generate_trace_id(self) -> int:
        self.n += 1
        return (0x7ACE << 112) | self.n


def record() -> list:
    """The 10 000 spans, in the order they ended."""
    exporter = InMemorySpanExporter()
    ids = CountingIds()
    tracers = {}
    for service in ("frontend", "checkout", "payment", "inventory", "catalog"):
        provider = TracerProvider(
            id_generator=ids,
            resource=Resource.create(
                {
                    "service.name": service,
                    "service.version": "2.3.1",
                    "deployment.environment": "production",
                    "host.name": f"{service}-7d9f-1",
                }
            ),
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracers[service] = provider.get_tracer(f"shop.{service}", "1.0")

    made = 0

    def span(service, name, parent, start, end, kind=SpanKind.INTERNAL, attrs=None, error=None):
        nonlocal made
        made += 1
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        s = tracers[service].start_span(name, context=ctx, kind=kind, attributes=attrs, start_time=start)
        if error:
            s.set_status(Status(StatusCode.ERROR, error))
        s.end(end_time=end)
        return s

    def common(i: int, j: int) -> dict:
        return {
            "http.request.method": "POST" if j % 2 else "GET",
            "net.peer.name": f"10.0.{i % 250}.{j}",
            "user.id": f"user-{i % 97}",
            "cache.hit": j % 3 == 0,
            "retry": j % 4,
            "latency.budget_ms": 250.0 + j,
        }

    for i in range(TRACES):
        t0 = BASE + i * 10_000 * MS
        made = 1
        amount = 100 + (i * 37) % 2000
        root = tracers["frontend"].start_span(
            "POST /api/checkout",
            kind=SpanKind.SERVER,
            start_time=t0,
            attributes={
                **common(i, 0),
                "http.route": "/api/checkout",
                "http.response.status_code": 500 if i % 50 == 7 else 200,
                "auth.user": f"user-{i}" if i % 40 != 3 else "",
                "tags": ("web", "eu"),
            },
        )
        checkout = span(
            "checkout", "checkout", root, t0 + 2 * MS, t0 + 900 * MS, SpanKind.SERVER,
            {
                **common(i, 1),
                "order.amount": float(amount),
                "order.items": 1 + i % 7,
                "order.currency": "EUR" if i % 3 else "USD",
                "tags": ("gift",) if i % 11 == 0 else ("std",),
            },
        )
        if amount <= 1800 or i % 5:
            span("checkout", "fraud_check", checkout, t0 + 5 * MS, t0 + 30 * MS,
                 attrs={**common(i, 2), "score": (i * 13) % 100, "model": "v3", "rules.matched": 2, "decision": "allow"})
        fails = i % 25 == 4
        payment = span(
            "payment", "payment", checkout, t0 + 40 * MS, t0 + 300 * MS, SpanKind.CLIENT,
            {**common(i, 3), "payment.provider": "psp", "card.saved": i % 2 == 0, "fee": 1.5 + i % 3, "amount.cents": amount * 100},
            "card declined" if fails else None,
        )
        for r in range(3 if i % 30 == 9 else 1):
            span("payment", "payment.attempt", payment, t0 + (50 + 60 * r) * MS, t0 + (100 + 60 * r) * MS, SpanKind.CLIENT,
                 {**common(i, 4 + r), "attempt": r + 1, "gateway": "eu-1", "timeout_ms": 5000, "idempotent": True})
        span("inventory", "inventory.reserve", checkout, t0 + 310 * MS, t0 + 330 * MS, SpanKind.PRODUCER,
             {**common(i, 7), "sku.count": 1 + i % 7, "warehouse": "eu-1", "queue": "reserve", "partition": i % 8})
        if fails and i % 50 != 4:
            span("inventory", "inventory.release", checkout, t0 + 400 * MS, t0 + 420 * MS, SpanKind.CONSUMER,
                 {**common(i, 8), "sku.count": 1, "warehouse": "eu-1", "queue": "release", "partition": i % 8})
        span("frontend", "render", root, t0 + 910 * MS, t0 + 950 * MS, attrs={**common(i, 19), "template": "receipt", "bytes": 18_000 + i})
        q = 0
        while made < SPANS_PER_TRACE:
            slow = i % 45 == 1 and q == 0
            span("catalog", "db.query", checkout, t0 + (500 + 10 * q) * MS, t0 + (505 + 10 * q + (700 if slow else 0)) * MS, SpanKind.CLIENT,
                 {**common(i, 9 + q), "db.system": "postgresql", "db.statement": "SELECT price FROM items WHERE sku = $1", "db.rows": q})
            q += 1
        root.end(end_time=t0 + 960 * MS)
    return list(exporter.get_finished_spans())


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def line(label: str, seconds: list[float], spans: int) -> str:
    best, median = min(seconds), statistics.median(seconds)
    return f"{label:<44} best {best * 1e3:8.2f} ms   median {median * 1e3:8.2f} ms   {spans / best / 1e6:6.2f} M spans/s"


def criterion_estimate(name: str) -> float | None:
    path = ROOT / "target" / "criterion" / "binding" / name / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"] / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--write-workload", type=Path, default=ROOT / "target" / "binding-workload")
    parser.add_argument("--rust", action="store_true", help="also run the criterion benchmark binding/evaluate")
    args = parser.parse_args()

    spans = record()
    traces = {s.context.trace_id for s in spans}
    attrs = sum(len(s.attributes) for s in spans) / len(spans)
    engine = betrace.Engine.from_file(HERE / "rules.yaml")
    body = encode_spans(spans).SerializeToString()
    args.write_workload.mkdir(parents=True, exist_ok=True)
    (args.write_workload / "spans.pb").write_bytes(body)

    violations = engine.evaluate(spans)
    by_rule: dict[str, int] = {}
    for v in violations:
        by_rule[v.rule_id] = by_rule.get(v.rule_id, 0) + 1
    assert len(engine.evaluate(body)) == len(violations)

    print(f"workload: {len(spans)} SDK spans, {len(traces)} traces, {attrs:.1f} attributes per span, {len(engine)} rules")
    print(f"          {len(body)} bytes of OTLP protobuf; {len(violations)} violations: {json.dumps(by_rule, sort_keys=True)}")
    print(f"python {sys.version.split()[0]}, betrace extension: {Path(betrace._native.__file__).name}")
    print()
    check = timed(lambda: engine.evaluate(spans), args.repeat)
    encode = timed(lambda: encode_spans(spans), args.repeat)
    encode_bytes = timed(lambda: encode_spans(spans).SerializeToString(), args.repeat)
    from_bytes = timed(lambda: engine.evaluate(body), args.repeat)
    print(line("betrace Engine.evaluate(sdk spans)", check, len(spans)))
    print(line("SDK encode_spans(sdk spans)", encode, len(spans)))
    print(line("SDK encode_spans(...).SerializeToString()", encode_bytes, len(spans)))
    print(line("betrace Engine.evaluate(OTLP protobuf bytes)", from_bytes, len(spans)))
    print()
    print(f"full check / SDK encode_spans:           {min(check) / min(encode):.2f}")
    print(f"full check / SDK encode + serialize:     {min(check) / min(encode_bytes):.2f}")

    if args.rust:
        env = dict(os.environ, BETRACE_BINDING_WORKLOAD=str(args.write_workload), CARGO_BUILD_JOBS=os.environ.get("CARGO_BUILD_JOBS", "2"))
        subprocess.run(
            ["cargo", "bench", "-p", "betrace-benches", "--bench", "binding_workload", "--", "--noplot"],
            cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
        )
    rust = {n: criterion_estimate(n) for n in ("evaluate", "group_and_evaluate", "decode_group_evaluate")}
    if any(v is not None for v in rust.values()):
        print()
        print("Rust only (criterion binding/*, median of its last run):")
        for name, seconds in rust.items():
            if seconds is not None:
                print(f"  {name:<24} {seconds * 1e3:8.2f} ms   {len(spans) / seconds / 1e6:6.2f} M spans/s")
        if rust["group_and_evaluate"] is not None:
            print(f"  Python-side share of the full check: {(min(check) - rust['group_and_evaluate']) / min(check):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
