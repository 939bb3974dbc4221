#!/usr/bin/env python3
"""A test stand-in for the OpenTelemetry Collector's `loadbalancing` exporter with
`routing_key: traceID`, in front of several `betrace serve` instances (test-only code).

Routing reproduces opentelemetry-collector-contrib
`exporter/loadbalancingexporter/consistent_hashing.go`: the endpoints, sorted (the static
resolver sorts them), each take 100 positions (`defaultWeight`) on a ring of 36000
(`maxPositions`, "360 degrees with two decimal places"), position = crc32(endpoint name +
one byte i) % 36000, an occupied position is skipped; a trace goes to the first ring item at or
after crc32(trace id bytes) % 36000, wrapping around (`bsearch`). Each incoming
ExportTraceServiceRequest is split by trace id and the spans of one endpoint are sent together,
with their resource and scope, as the exporter does (`batchpersignal.SplitTraces`, then one
export per endpoint).

Retries follow the OTLP/HTTP exporter's `retry_on_failure`: 429, 502, 503, 504 and connection
failures are retried, waiting `Retry-After` seconds when the answer has it, else with
exponential back-off (50 ms doubling to 1 s here, instead of the Collector's 5 s to 30 s, to
keep the test short), for at most --max-elapsed seconds. The incoming request is answered 200
only once every part was accepted, 503 otherwise (the SDK exporter then retries).

In: --backends host:port,... (OTLP/HTTP addresses of the instances). Out: "listening PORT" on
standard output; `GET /stats` answers JSON counters: {"requests", "spans", "failed_requests",
"backends": {endpoint: {"spans", "requests", "retries", "refused_429", "refused_503",
"connection_errors"}}}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

MAX_POSITIONS = 36000
DEFAULT_WEIGHT = 100


class HashRing:
    def __init__(self, endpoints):
        used = set()
        items = []
        for endpoint in sorted(endpoints):
            for i in range(DEFAULT_WEIGHT):
                pos = zlib.crc32(endpoint.encode() + bytes([i & 0xFF])) % MAX_POSITIONS
                if pos in used:
                    continue
                used.add(pos)
                items.append((pos, endpoint))
        items.sort()
        self.items = items

    def endpoint_for(self, identifier: bytes) -> str:
        pos = zlib.crc32(identifier) % MAX_POSITIONS
        n = len(self.items)
        return bsearch(pos, self.items[: n // 2], self.items[n // 2 :])[1]


def bsearch(pos, left, right):
    # consistent_hashing.go `bsearch`: the closest "next" item, wrapping to the first.
    if left[-1][0] == pos:
        return left[-1]
    if right[0][0] == pos:
        return right[0]
    if pos > right[-1][0]:
        return left[0]
    if pos > left[-1][0]:
        if len(right) == 1:
            return right[0]
        half = len(right) // 2
        return bsearch(pos, right[:half], right[half:])
    if len(left) == 1:
        return left[0]
    half = len(left) // 2
    return bsearch(pos, left[:half], left[half:])


class Stats:
    def __init__(self, endpoints):
        self.lock = threading.Lock()
        self.requests = 0
        self.spans = 0
        self.failed_requests = 0
        self.backends = {
            e: {"spans": 0, "requests": 0, "retries": 0, "refused_429": 0, "refused_503": 0,
                "connection_errors": 0}
            for e in endpoints
        }

    def add(self, endpoint, key, n=1):
        with self.lock:
            self.backends[endpoint][key] += n

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "spans": self.spans,
                    "failed_requests": self.failed_requests,
                    "backends": json.loads(json.dumps(self.backends))}


def split(request, ring):
    """ExportTraceServiceRequest → {endpoint: (request, span count)}."""
    parts = {}
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                endpoint = ring.endpoint_for(bytes(span.trace_id))
                req, count, groups = parts.setdefault(
                    endpoint, [trace_service_pb2.ExportTraceServiceRequest(), 0, {}])
                key = (id(rs), id(ss))
                target = groups.get(key)
                if target is None:
                    out_rs = req.resource_spans.add()
                    out_rs.resource.CopyFrom(rs.resource)
                    out_rs.schema_url = rs.schema_url
                    target = out_rs.scope_spans.add()
                    target.scope.CopyFrom(ss.scope)
                    target.schema_url = ss.schema_url
                    groups[key] = target
                target.spans.add().CopyFrom(span)
                parts[endpoint][1] = count + 1
    return {e: (p[0], p[1]) for e, p in parts.items()}


LOCAL = threading.local()


def post(endpoint, body, timeout):
    conns = getattr(LOCAL, "conns", None)
    if conns is None:
        conns = LOCAL.conns = {}
    conn = conns.get(endpoint)
    if conn is None:
        host, port = endpoint.rsplit(":", 1)
        conn = conns[endpoint] = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", "/v1/traces", body=body,
                     headers={"Content-Type": "application/x-protobuf"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Retry-After")
    except (OSError, http.client.HTTPException):
        conn.close()
        del conns[endpoint]
        raise


def send(endpoint, body, spans, stats, max_elapsed):
    deadline = time.monotonic() + max_elapsed
    backoff = 0.05
    while True:
        try:
            status, retry_after = post(endpoint, body, timeout=30)
        except (OSError, http.client.HTTPException):
            status, retry_after = None, None
            stats.add(endpoint, "connection_errors")
        if status == 200:
            stats.add(endpoint, "spans", spans)
            stats.add(endpoint, "requests")
            return True
        if status == 429:
            stats.add(endpoint, "refused_429")
        elif status == 503:
            stats.add(endpoint, "refused_503")
        elif status is not None and status not in (502, 504):
            return False  # permanent (400, 413, ...): not retried, as by the exporter
        wait = backoff
        if retry_after is not None:
            try:
                wait = max(float(retry_after), 0.0)
            except ValueError:
                pass
        else:
            backoff = min(backoff * 2, 1.0)
        if time.monotonic() + wait > deadline:
            return False
        stats.add(endpoint, "retries")
        time.sleep(wait)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--backends", required=True)
    p.add_argument("--max-elapsed", type=float, default=60.0)
    args = p.parse_args()
    endpoints = [e for e in args.backends.split(",") if e]
    ring = HashRing(endpoints)
    stats = Stats(endpoints)
    pool = ThreadPoolExecutor(max_workers=4 * len(endpoints))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, status, body=b"", ctype="application/x-protobuf"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/stats":
                return self.answer(404)
            self.answer(200, json.dumps(stats.snapshot()).encode(), "application/json")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                return self.answer(404)
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            parts = split(request, ring)
            futures = [pool.submit(send, e, req.SerializeToString(), n, stats, args.max_elapsed)
                       for e, (req, n) in parts.items()]
            ok = all(f.result() for f in futures)
            with stats.lock:
                stats.requests += 1
                stats.spans += sum(n for _, n in parts.values())
                if not ok:
                    stats.failed_requests += 1
            if ok:
                self.answer(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())
            else:
                self.answer(503)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
