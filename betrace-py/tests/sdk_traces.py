"""Traces recorded with the real OpenTelemetry SDK, and the same spans in BeTrace's other
input forms (OTLP protobuf from the SDK's own encoder, OTLP/JSON, simple JSON).

In: a number of orders. Out: `ReadableSpan` objects of a small shop (storefront,
payment-service, inventory-service; one TracerProvider and resource per service, like three
processes), the rules the tests evaluate, and which orders break which rule by construction.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

MS = 1_000_000
BASE = 1_700_000_000_000_000_000

# Rules over the shop traces: block and expression forms, kinds, statuses, durations,
# attributes of every type, relations, counts, services.
RULES = {
    "large-order-fraud-check": "when { checkout.where(order.amount > 1000) } always { fraud_check }",
    "payment-must-not-fail": "never { payment.where(span.status == error) }",
    "failed-payment-releases-stock": (
        "never { payment.where(span.status == error and not followed_by(inventory.release, within 5s)) }"
    ),
    "api-requires-user": 'span.kind == server and http.route:starts_with("/api/") and not exists(auth.user)',
    "slow-db-query": "never { db.query.where(span.duration > 500ms) }",
    "gift-orders-in-eur": 'never { checkout.where(tags contains "gift" and order.currency != EUR) }',
    "saved-card-fee": "never { payment.where(card.saved == true and fee > 2.5) }",
    "payment-in-payment-service": 'never { payment.where(span.service != "payment-service") }',
    "fraud-check-below-checkout": "never { fraud_check.where(not has_ancestor(checkout)) }",
    "declined-message": 'span.kind == client and span.status_message contains "declined"',
}

# A rule on a resource attribute other than `service.name`: simple JSON has no such field.
RESOURCE_RULES = {
    "no-staging-inventory": (
        'never { *.where(resource.attributes["deployment.environment"] == "staging" and span.kind == consumer) }'
    ),
}


@dataclass(frozen=True)
class Order:
    """What one recorded order looks like; decides which rules it breaks."""

    amount: float
    currency: str
    gift: bool
    fraud_check: bool
    authenticated: bool
    payment_fails: bool
    releases_stock: bool
    slow_query: bool
    saved_card: bool
    fee: float


def orders(n: int) -> list[Order]:
    """`n` orders with properties varying by position, so every rule fires for some."""
    out = []
    for i in range(n):
        out.append(
            Order(
                amount=float(250 + 300 * (i % 5)) if i % 2 else 250 + 300 * (i % 5),
                currency="EUR" if i % 3 else "USD",
                gift=i % 4 == 1,
                fraud_check=i % 5 != 4,
                authenticated=i % 6 != 5,
                payment_fails=i % 7 == 3,
                releases_stock=i % 14 != 3,
                slow_query=i % 8 == 2,
                saved_card=i % 2 == 0,
                fee=1.5 + (i % 3),
            )
        )
    return out


def expected_violations(order_list: list[Order]) -> set[tuple[str, int]]:
    """(rule id, order index) of every violation the rules must report, from the orders."""
    out = set()
    for i, o in enumerate(order_list):
        if o.amount > 1000 and not o.fraud_check:
            out.add(("large-order-fraud-check", i))
        if o.payment_fails:
            out.add(("payment-must-not-fail", i))
            out.add(("declined-message", i))
            if not o.releases_stock:
                out.add(("failed-payment-releases-stock", i))
        if not o.authenticated:
            out.add(("api-requires-user", i))
        if o.slow_query:
            out.add(("slow-db-query", i))
        if o.gift and o.currency != "EUR":
            out.add(("gift-orders-in-eur", i))
        if o.saved_card and o.fee > 2.5:
            out.add(("saved-card-fee", i))
    return out


class Shop:
    """Three services, each with its own TracerProvider and resource, all spans going to one
    InMemorySpanExporter."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.providers = {}
        for service, env in (
            ("storefront", "production"),
            ("payment-service", "production"),
            ("inventory-service", "staging"),
        ):
            provider = TracerProvider(
                resource=Resource.create(
                    {"service.name": service, "deployment.environment": env, "service.version": "1.4.2"}
                )
            )
            provider.add_span_processor(SimpleSpanProcessor(self.exporter))
            self.providers[service] = provider
        self.tracers = {s: p.get_tracer(f"shop.{s}", "1.0") for s, p in self.providers.items()}

    def span(self, service, name, parent, start_ms, end_ms, base, kind=SpanKind.INTERNAL, attributes=None, status=None):
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        s = self.tracers[service].start_span(
            name, context=ctx, kind=kind, attributes=attributes, start_time=base + start_ms * MS
        )
        if status is not None:
            s.set_status(status)
        s.end(end_time=base + end_ms * MS)
        return s

    def record(self, order_list: list[Order]) -> list[ReadableSpan]:
        """One trace per order; returns the finished spans in the order they ended."""
        for i, o in enumerate(order_list):
            base = BASE + i * 60_000 * MS
            tags = ("gift", "express") if o.gift else ("standard",)
            checkout_attrs = {
                "http.route": "/api/checkout",
                "http.request.method": "POST",
                "order.amount": o.amount,
                "order.currency": o.currency,
                "order.items": 1 + i % 4,
                "tags": tags,
                "flags": (True, o.gift),
                "weights": (0.5, 1.25),
                "order.id": f"order-{i}",
            }
            if o.authenticated:
                checkout_attrs["auth.user"] = f"user-{i}"
            ctx_tracer = self.tracers["storefront"]
            checkout = ctx_tracer.start_span(
                "checkout", kind=SpanKind.SERVER, attributes=checkout_attrs, start_time=base
            )
            if o.fraud_check:
                self.span("storefront", "fraud_check", checkout, 5, 40, base, attributes={"score": 12 + i % 50, "model": "v3"})
            status = Status(StatusCode.ERROR, "card declined by issuer") if o.payment_fails else Status(StatusCode.OK)
            payment = self.span(
                "payment-service",
                "payment",
                checkout,
                50,
                180,
                base,
                kind=SpanKind.CLIENT,
                attributes={
                    "card.saved": o.saved_card,
                    "fee": o.fee,
                    "retry": i % 3,
                    "peer.service": "psp",
                    "amount.cents": int(o.amount * 100),
                },
                status=status,
            )
            del payment
            self.span(
                "inventory-service",
                "inventory.reserve",
                checkout,
                190,
                230,
                base,
                kind=SpanKind.PRODUCER,
                attributes={"sku.count": 1 + i % 4, "warehouse": "eu-1"},
            )
            if o.payment_fails and o.releases_stock:
                self.span("inventory-service", "inventory.release", checkout, 300, 320, base, kind=SpanKind.CONSUMER)
            self.span(
                "inventory-service",
                "db.query",
                checkout,
                240,
                240 + (900 if o.slow_query else 30),
                base,
                kind=SpanKind.CLIENT,
                attributes={"db.system": "postgresql", "db.statement": "SELECT stock FROM items WHERE sku = $1"},
            )
            checkout.end(end_time=base + 1500 * MS)
        return list(self.exporter.get_finished_spans())


def order_of_trace(spans: list[ReadableSpan]) -> dict[str, int]:
    """Trace id (hex) → order index, read from the checkout spans."""
    out = {}
    for s in spans:
        if s.name == "checkout":
            out[format(s.context.trace_id, "032x")] = int(s.attributes["order.id"].split("-")[1])
    return out


def to_protobuf(spans: list[ReadableSpan]) -> bytes:
    """The OTLP request body the SDK's exporters send."""
    return encode_spans(spans).SerializeToString()


def _hex_ids(node):
    if isinstance(node, dict):
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in node and isinstance(node[key], str):
                node[key] = base64.b64decode(node[key]).hex()
        for v in node.values():
            _hex_ids(v)
    elif isinstance(node, list):
        for v in node:
            _hex_ids(v)
    return node


def to_otlp_json(spans: list[ReadableSpan]) -> dict:
    """OTLP/JSON per the OTLP specification: the protobuf JSON mapping of the SDK's request
    with trace and span ids as hex (the one difference the specification makes)."""
    return _hex_ids(MessageToDict(encode_spans(spans)))


_STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}


def to_simple_json(spans: list[ReadableSpan]) -> list[dict]:
    """Simple-JSON span dicts (ENGINE.md §2) of the same spans."""
    out = []
    for s in spans:
        d = {
            "traceId": format(s.context.trace_id, "032x"),
            "spanId": format(s.context.span_id, "016x"),
            "name": s.name,
            "serviceName": s.resource.attributes["service.name"],
            "kind": s.kind.name,
            "status": {"code": _STATUS[s.status.status_code], "message": s.status.description or ""},
            "startTime": s.start_time,
            "endTime": s.end_time,
            "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in s.attributes.items()},
        }
        if s.parent is not None:
            d["parentSpanId"] = format(s.parent.span_id, "016x")
        out.append(d)
    return out


def comparable(violations) -> list[dict]:
    """Violations without the fields that differ between two evaluations (id, createdAt)."""
    out = []
    for v in violations:
        d = v.to_dict()
        del d["id"], d["createdAt"]
        out.append(d)
    return sorted(out, key=lambda d: (d["ruleId"], d["traceId"]))
