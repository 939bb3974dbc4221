#!/usr/bin/env python3
"""Capture the OTLP/HTTP protobuf bodies the real OpenTelemetry Python SDK exporter sends.

In: scenarios.json (README.md "Scenario file"), an output directory.
Out: OUTDIR/python-<scenario>.pb — for each scenario the exact body of the one request that
`opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter` POSTed to a receiver
on 127.0.0.1 — and OUTDIR/python-manifest.json, every span as the SDK saw it (README.md
"Manifest"). No network besides loopback.

Usage: gen_python.py OUTDIR [--scenarios FILE]
"""

from __future__ import annotations

import os
import sys

# The SDK reads OTEL_* variables (endpoint, compression, resource, sampler...) at import and
# construction time; a stray one would change the captured bodies.
for _key in [k for k in os.environ if k.startswith("OTEL_")]:
    del os.environ[_key]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402
from opentelemetry.context import Context  # noqa: E402
from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.sdk.trace.id_generator import IdGenerator  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario_model import (  # noqa: E402
    DEFAULT_SCENARIOS,
    MANIFEST_FORMAT,
    ScenarioError,
    dumps_manifest,
    iso_to_ns,
    load_scenarios,
    ms_to_ns,
    typed_map,
)

KIND = {
    "internal": SpanKind.INTERNAL,
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}


class FixtureError(RuntimeError):
    """The exporter did not send what a fixture needs (count, content type, encoding)."""


class ScenarioIdGenerator(IdGenerator):
    """Deterministic ids: SHA-256 of `<language>/<scenario>/<n>`, so regenerated files are
    byte-identical and ids never collide across languages or scenarios."""

    def __init__(self, language: str) -> None:
        self._language = language
        self.reset("")

    def reset(self, scenario: str) -> None:
        self._scenario = scenario
        self._counter = 0

    def _next(self, size: int) -> int:
        while True:
            self._counter += 1
            seed = f"{self._language}/{self._scenario}/{self._counter}".encode()
            value = int.from_bytes(hashlib.sha256(seed).digest()[:size], "big")
            if value:
                return value

    def generate_span_id(self) -> int:
        return self._next(8)

    def generate_trace_id(self) -> int:
        return self._next(16)


class Receiver:
    """A minimal OTLP/HTTP endpoint on 127.0.0.1 (free port) that records request bodies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = self.headers.get("Content-Length")
                if length is None:
                    self.send_error(411, "Content-Length required")
                    return
                body = self.rfile.read(int(length))
                with receiver._lock:
                    receiver._requests.append(
                        {
                            "path": self.path,
                            "content_type": self.headers.get("Content-Type", ""),
                            "content_encoding": self.headers.get("Content-Encoding", ""),
                            "body": body,
                        }
                    )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def take(self) -> list[dict]:
        with self._lock:
            taken, self._requests = self._requests, []
        return taken

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def emit(node: dict, parent, parent_service: str | None, base_ns: int, tracers: dict, refs: dict, ref: str) -> None:
    """Start, fill and end the span for `node`, its children inside it (README.md)."""
    service = node.get("service", parent_service)
    if parent is None:
        ctx = Context()
    elif service == parent_service:
        ctx = set_span_in_context(parent, Context())
    else:
        # Another service: carry the context over W3C `traceparent`, as an HTTP call would.
        headers: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(headers, context=set_span_in_context(parent, Context()))
        ctx = TraceContextTextMapPropagator().extract(headers, context=Context())
    span = tracers[service].start_span(
        node["name"],
        context=ctx,
        kind=KIND[node["kind"]],
        attributes=node.get("attributes", {}),
        start_time=base_ns + ms_to_ns(node["start_ms"], node["name"]),
    )
    refs[span.get_span_context().span_id] = ref
    for event in node.get("events", []):
        span.add_event(
            event["name"],
            attributes=event.get("attributes", {}),
            timestamp=base_ns + ms_to_ns(event["at_ms"], event["name"]),
        )
    for i, child in enumerate(node.get("children", [])):
        emit(child, span, service, base_ns, tracers, refs, f"{ref}.{i}")
    status = node.get("status", "unset")
    if status == "error":
        span.set_status(Status(StatusCode.ERROR, node.get("status_message")))
    elif status == "ok":
        span.set_status(Status(StatusCode.OK))
    span.end(end_time=base_ns + ms_to_ns(node["end_ms"], node["name"]))


def manifest_span(span, ref: str) -> dict:
    ctx = span.get_span_context()
    scope = span.instrumentation_scope
    return {
        "ref": ref,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "status": span.status.status_code.name.lower(),
        "status_message": span.status.description or None,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "service_name": span.resource.attributes.get("service.name"),
        "scope": {"name": scope.name, "version": scope.version},
        "attributes": typed_map(span.attributes or {}),
        "events": [
            {"name": e.name, "time_unix_nano": e.timestamp, "attributes": typed_map(e.attributes or {})}
            for e in span.events
        ],
    }


def generate(outdir: Path, scenarios_path: Path) -> dict:
    doc = load_scenarios(scenarios_path)
    outdir.mkdir(parents=True, exist_ok=True)
    receiver = Receiver()
    session = requests.Session()
    session.trust_env = False  # no proxy for loopback, whatever the environment says
    exporter = OTLPSpanExporter(
        endpoint=f"{receiver.url}/v1/traces", compression=Compression.NoCompression, session=session, timeout=10
    )
    # One batch processor shared by every service's provider: a flush sends all spans of a
    # scenario, grouped by resource, in one request. The long delay keeps the worker from
    # sending a partial batch on its own.
    batch = BatchSpanProcessor(
        exporter, max_queue_size=8192, schedule_delay_millis=3_600_000, max_export_batch_size=8192
    )
    memory = InMemorySpanExporter()
    simple = SimpleSpanProcessor(memory)
    ids = ScenarioIdGenerator("python")
    providers, tracers = {}, {}
    for name, svc in doc["services"].items():
        provider = TracerProvider(
            resource=Resource.create({"service.name": name, **svc.get("resource", {})}),
            id_generator=ids,
            shutdown_on_exit=False,
        )
        provider.add_span_processor(simple)
        provider.add_span_processor(batch)
        providers[name] = provider
        tracers[name] = provider.get_tracer(svc["scope"]["name"], svc["scope"]["version"])

    manifest = {
        "format": MANIFEST_FORMAT,
        "generator": "python",
        "sdk": {
            name: metadata.version(name)
            for name in (
                "opentelemetry-api",
                "opentelemetry-sdk",
                "opentelemetry-exporter-otlp-proto-http",
                "opentelemetry-proto",
            )
        },
        "scenarios_file": "scenarios.json",
        "resources": {name: typed_map(p.resource.attributes) for name, p in providers.items()},
        "scenarios": [],
    }
    try:
        for scenario in doc["scenarios"]:
            name = scenario["name"]
            ids.reset(name)
            memory.clear()
            refs: dict[int, str] = {}
            emit(scenario["root"], None, None, iso_to_ns(scenario["start"], name), tracers, refs, "0")
            if not batch.force_flush(30_000):
                raise FixtureError(f"{name}: BatchSpanProcessor.force_flush timed out")
            sent = receiver.take()
            if len(sent) != 1:
                raise FixtureError(f"{name}: expected 1 export request, the exporter sent {len(sent)}")
            req = sent[0]
            if (
                req["path"] != "/v1/traces"
                or req["content_type"] != "application/x-protobuf"
                or req["content_encoding"] not in ("", "identity")
            ):
                raise FixtureError(
                    f"{name}: unexpected request {req['path']} {req['content_type']!r} "
                    f"encoding {req['content_encoding']!r}"
                )
            file_name = f"python-{name}.pb"
            (outdir / file_name).write_bytes(req["body"])
            spans = [manifest_span(s, refs[s.get_span_context().span_id]) for s in memory.get_finished_spans()]
            spans.sort(key=lambda s: (s["start_time_unix_nano"], s["span_id"]))
            manifest["scenarios"].append(
                {
                    "name": name,
                    "description": scenario.get("description", ""),
                    "files": [
                        {
                            "path": file_name,
                            "encoding": "otlp-protobuf",
                            "content_type": req["content_type"],
                            "bytes": len(req["body"]),
                            "sha256": hashlib.sha256(req["body"]).hexdigest(),
                        }
                    ],
                    "trace_ids": sorted({s["trace_id"] for s in spans}),
                    "span_count": len(spans),
                    "spans": spans,
                }
            )
    finally:
        for provider in providers.values():
            provider.shutdown()
        receiver.close()
    (outdir / "python-manifest.json").write_text(dumps_manifest(manifest), encoding="utf-8")
    return manifest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_SCENARIOS)
    args = parser.parse_args(argv)
    try:
        generate(args.outdir, args.scenarios)
    except (ScenarioError, FixtureError, OSError) as err:
        print(f"gen_python.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
