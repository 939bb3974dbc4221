#!/usr/bin/env python3
"""A test OTLP receiver: decodes `ExportTraceServiceRequest`s with the `opentelemetry-proto`
package and appends one JSON line per received span to --out.

In: --protocol http|grpc, --out FILE, optional --fail-first N (answer the first N requests
with HTTP 503 / gRPC UNAVAILABLE, to exercise the sender's retries) and --delay-ms N (wait
before answering each request, to catch the sender mid-export). Out: "listening PORT" on
standard output once bound (port chosen by the system on 127.0.0.1); per span a line
{"name", "trace_id", "span_id", "parent_span_id", "status_code", "resource": {...},
 "attributes": {...}, "links": [{"trace_id", "span_id"}]}. Runs until killed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

LOCK = threading.Lock()


def value_of(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    x = getattr(v, kind)
    if kind == "array_value":
        return [value_of(i) for i in x.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in x.values}
    if kind == "bytes_value":
        return x.hex()
    return x


def record(request: trace_service_pb2.ExportTraceServiceRequest, out: str) -> None:
    lines = []
    for rs in request.resource_spans:
        resource = {kv.key: value_of(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                lines.append(json.dumps({
                    "name": s.name,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "status_code": s.status.code,
                    "start_time_unix_nano": s.start_time_unix_nano,
                    "resource": resource,
                    "attributes": {kv.key: value_of(kv.value) for kv in s.attributes},
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()} for l in s.links],
                }))
    with LOCK, open(out, "a", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
        f.flush()


class Failer:
    def __init__(self, n: int):
        self.left = n

    def should_fail(self) -> bool:
        with LOCK:
            if self.left > 0:
                self.left -= 1
                return True
            return False


def serve_http(args, failer: Failer) -> None:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            time.sleep(args.delay_ms / 1000)
            if failer.should_fail():
                self.send_response(503)
                self.end_headers()
                return
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            record(req, args.out)
            resp = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(resp)))
            self.end_headers()
            self.wfile.write(resp)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


def serve_grpc(args, failer: Failer) -> None:
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            time.sleep(args.delay_ms / 1000)
            if failer.should_fail():
                context.abort(grpc.StatusCode.UNAVAILABLE, "failing on purpose")
            record(request, args.out)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", choices=["http", "grpc"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--delay-ms", type=int, default=0)
    args = p.parse_args()
    failer = Failer(args.fail_first)
    (serve_http if args.protocol == "http" else serve_grpc)(args, failer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
