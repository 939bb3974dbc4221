// Spans recorded by the real OpenTelemetry JS SDK (@opentelemetry/sdk-trace-base 2.x) for an
// instrumented checkout, and the same spans as the SDK's OTLP exporters encode them.
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base'

const BASE_SECONDS = 1_700_000_000

/** hrtime `[seconds, nanoseconds]` at `ms` milliseconds after the base time. */
const at = (ms) => [BASE_SECONDS + Math.floor(ms / 1000), (ms % 1000) * 1_000_000 + 123]

/** A tracer provider exporting to memory, with resource attributes of a `shop` service. */
export function inMemoryProvider() {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'shop', 'deployment.environment': 'test' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  })
  return { exporter, provider, tracer: provider.getTracer('checkout-instrumentation', '1.2.3') }
}

/**
 * One checkout, instrumented like a service would be: a server span `checkout` with a
 * `fraud_check` (optional) and a `payment` client span below it.
 */
export function checkout(tracer, { startMs, amount, fraudCheck = false, paymentFails = false, durationMs = 120 }) {
  const root = tracer.startSpan(
    'checkout',
    {
      kind: SpanKind.SERVER,
      startTime: at(startMs),
      attributes: {
        'http.route': '/api/checkout',
        'order.amount': amount,
        'order.discount': 0.25,
        'order.vip': false,
        'cart.tags': ['gift', 'toys'],
      },
    },
    context.active(),
  )
  const inside = trace.setSpan(context.active(), root)
  if (fraudCheck) {
    tracer.startSpan('fraud_check', { kind: SpanKind.CLIENT, startTime: at(startMs + 10) }, inside).end(at(startMs + 40))
  }
  const payment = tracer.startSpan(
    'payment',
    { kind: SpanKind.CLIENT, startTime: at(startMs + 50), attributes: { 'payment.currency': 'EUR' } },
    inside,
  )
  if (paymentFails) payment.setStatus({ code: SpanStatusCode.ERROR, message: 'card declined' })
  payment.end(at(startMs + 90))
  root.end(at(startMs + durationMs))
  return root.spanContext().traceId
}

/** Four checkouts; the comments say which rule of `RULES` each one violates. */
export function recordCheckouts() {
  const { exporter, provider, tracer } = inMemoryProvider()
  const traces = {
    unchecked: checkout(tracer, { startMs: 0, amount: 1500 }), // large-order-fraud
    declined: checkout(tracer, { startMs: 1000, amount: 200, paymentFails: true }), // payment-failure, declined-card
    slow: checkout(tracer, { startMs: 2000, amount: 5000, fraudCheck: true, durationMs: 2500 }), // slow-api
    fine: checkout(tracer, { startMs: 6000, amount: 50 }),
  }
  const spans = exporter.getFinishedSpans()
  return { spans, traces, provider }
}

/** Rules over the checkouts, reading span kinds, status, durations, typed and resource attributes. */
export const RULES = [
  {
    id: 'large-order-fraud',
    expression: 'when { checkout.where(order.amount > 1000) } always { fraud_check }',
    severity: 'HIGH',
  },
  {
    id: 'payment-failure',
    name: 'Payment failure',
    expression: 'when { checkout.where(span.kind == server and span.is_root) } never { payment.where(span.status == error) }',
    severity: 'critical',
  },
  {
    id: 'declined-card',
    expression:
      'span.kind == client and span.status_message contains "declined" and payment.currency in [EUR, USD] and deployment.environment == "test"',
    severity: 'LOW',
  },
  {
    id: 'slow-api',
    expression: 'span.kind == server and http.route starts_with "/api/" and span.duration > 2s and span.service == "shop"',
  },
  {
    id: 'typed-attributes',
    expression:
      'never { checkout.where(order.vip == true or order.discount != 0.25 or not (cart.tags contains "gift")) }',
    severity: 'HIGH',
  },
]

/** The spans as the SDK's OTLP/HTTP JSON exporter sends them, parsed: an OTLP/JSON object. */
export function otlpJson(spans) {
  return JSON.parse(Buffer.from(JsonTraceSerializer.serializeRequest(spans)).toString('utf8'))
}

/** The spans as the SDK's OTLP/HTTP protobuf exporter sends them. */
export function otlpProtobuf(spans) {
  return Buffer.from(ProtobufTraceSerializer.serializeRequest(spans))
}

/** A violation without the fields that differ between two evaluations (`id`, `createdAt`). */
export function stable(v) {
  const { id: _id, createdAt: _createdAt, ...rest } = v
  return rest
}

/** Stable violations in a fixed order (trace id, rule id). */
export function normalized(violations) {
  return violations
    .map(stable)
    .sort((a, b) => (a.traceId + a.ruleId).localeCompare(b.traceId + b.ruleId))
}
