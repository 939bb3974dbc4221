#!/usr/bin/env node
// Send traces to `betrace serve` with the real OpenTelemetry JavaScript SDK and its OTLP/HTTP
// JSON exporter (@opentelemetry/exporter-trace-otlp-http).
//
// Usage: node send_node.mjs URL [TOKEN]   (URL: the server's base URL; /v1/traces is added)
// Out: JSON on standard output, the same shape as send_python.py:
//   {"fraud": {"trace_id", "checkout_span_id"}, "clean": {"trace_id"},
//    "payment": {"trace_id", "payment_span_id"}}
// Exit 1 when an export fails.

for (const key of Object.keys(process.env)) {
  if (key.startsWith('OTEL_')) delete process.env[key];
}

// ES modules ignore NODE_PATH: resolve the packages from the node_modules it names.
import { createRequire } from 'node:module';
import { join } from 'node:path';

if (!process.env.NODE_PATH) {
  console.error('NODE_PATH must name tools/otel-fixtures/node_modules');
  process.exit(2);
}
const require = createRequire(join(process.env.NODE_PATH.split(':')[0], 'resolve-from-here.js'));
const api = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');

const [url, token] = process.argv.slice(2);
if (!url) {
  console.error('usage: send_node.mjs URL [TOKEN]');
  process.exit(2);
}

const inner = new OTLPTraceExporter({
  url: `${url.replace(/\/$/, '')}/v1/traces`,
  headers: token ? { authorization: `Bearer ${token}` } : {},
});
let failures = 0;
const exporter = {
  export(spans, done) {
    inner.export(spans, (result) => {
      if (result.code !== 0) {
        failures += 1;
        console.error(`export failed: ${result.error}`);
      }
      done(result);
    });
  },
  shutdown: () => inner.shutdown(),
  forceFlush: () => inner.forceFlush(),
};
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'shop' }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
const tracer = provider.getTracer('betrace-tests', '1.0');

function checkout(amount, withFraudCheck) {
  const root = tracer.startSpan('checkout', { kind: api.SpanKind.SERVER, attributes: { 'order.amount': amount } }, api.ROOT_CONTEXT);
  const ctx = api.trace.setSpan(api.ROOT_CONTEXT, root);
  if (withFraudCheck) tracer.startSpan('fraud_check', { kind: api.SpanKind.CLIENT }, ctx).end();
  tracer.startSpan('payment', { kind: api.SpanKind.CLIENT }, ctx).end();
  root.end();
  return root.spanContext();
}

const out = {};
const fraud = checkout(1500, false);
out.fraud = { trace_id: fraud.traceId, checkout_span_id: fraud.spanId };
out.clean = { trace_id: checkout(1500, true).traceId };
const root = tracer.startSpan('checkout', { kind: api.SpanKind.SERVER, attributes: { 'order.amount': 20 } }, api.ROOT_CONTEXT);
const pay = tracer.startSpan('payment', { kind: api.SpanKind.CLIENT }, api.trace.setSpan(api.ROOT_CONTEXT, root));
pay.setStatus({ code: api.SpanStatusCode.ERROR, message: 'card declined' });
pay.end();
root.end();
out.payment = { trace_id: root.spanContext().traceId, payment_span_id: pay.spanContext().spanId };

await provider.forceFlush();
await provider.shutdown();
if (failures > 0) process.exit(1);
console.log(JSON.stringify(out));
