// Benchmark (issue: "Python and Node packages"): evaluate 10 000 spans recorded by the real
// OpenTelemetry JS SDK (500 traces of 20 spans, ~10 attributes each) with 10 rules through the
// binding, against what the SDK itself spends encoding the same spans for export
// (@opentelemetry/otlp-transformer's JsonTraceSerializer, the OTLP/HTTP JSON exporter's encoder).
//
// Measured in one run, interleaved, median and minimum of RUNS timed rounds after WARMUP untimed ones:
//   sdk/otlp-json-encode      JsonTraceSerializer.serializeRequest(spans)           (the baseline)
//   sdk/otlp-protobuf-encode  ProtobufTraceSerializer.serializeRequest(spans)       (for reference)
//   binding/evaluate          engine.evaluate(spans): read the ReadableSpans, group, evaluate
//   binding/evaluate-async    await engine.evaluateAsync(spans)
//   binding/read-only         the same with an engine of no rules: reading the spans and grouping
//   rust/decode+evaluate      engine.evaluate(protobuf buffer): decoding and evaluating in Rust,
//                             no JavaScript object read
//   rust/decode-only          the same with no rules
// Rust-only evaluation time = rust/decode+evaluate − rust/decode-only (median per round); the
// ratio to the SDK's encoding is the median of the per-round ratios.
//
// Usage: npm run build && node bench/bench.mjs [--runs N] [--json FILE]
import { writeFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'

import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'

import { Engine } from 'betrace'

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : fallback
}
const RUNS = Number(option('--runs', 15))
const WARMUP = 3
const TRACES = 500
const SPANS_PER_TRACE = 20

export const RULES = [
  { id: 'large-order-fraud', severity: 'HIGH', expression: 'when { checkout.where(order.amount > 1000) } always { fraud_check }' },
  { id: 'payment-failure', severity: 'CRITICAL', expression: 'when { checkout } never { payment.where(span.status == error) }' },
  { id: 'slow-api', expression: 'span.kind == server and http.route starts_with "/api/" and span.duration > 2s' },
  { id: 'client-5xx', severity: 'HIGH', expression: 'span.kind == client and http.status_code >= 500' },
  { id: 'slow-cache', severity: 'LOW', expression: 'never { cache_get.where(span.duration > 50ms) }' },
  { id: 'too-many-queries', expression: 'when { checkout } always { trace.count(span.name == "db_query") <= 6 }' },
  { id: 'email-after-payment', expression: 'when { email_send } always { payment.where(span.status != error) }' },
  { id: 'payment-under-checkout', severity: 'HIGH', expression: 'never { payment.where(not has_ancestor(checkout)) }' },
  { id: 'inventory-region', expression: 'never { inventory_check.where(region not in [eu-west, us-east, ap-south]) }' },
  { id: 'unauthenticated', severity: 'CRITICAL', expression: 'span.is_root and span.kind == server and not exists(user.id)' },
]

/** Records TRACES checkouts of SPANS_PER_TRACE spans with the SDK; deterministic variations. */
function recordSpans() {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': 'shop',
      'service.version': '4.2.0',
      'deployment.environment': 'bench',
      'host.name': 'shop-7f9c',
    }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  })
  const tracer = provider.getTracer('shop-instrumentation', '1.0.0')
  const base = 1_700_000_000
  const at = (t, ms) => [base + t + Math.floor(ms / 1000), (ms % 1000) * 1_000_000]
  const common = (i, j) => ({
    'http.method': 'POST',
    'net.peer.name': `backend-${j % 4}`,
    'thread.id': j,
    'code.function': `handler_${j}`,
    'feature.flags': ['fast-checkout', i % 2 ? 'new-pricing' : 'old-pricing'],
    'session.id': `session-${i % 211}`,
    'sampling.priority': 0.5,
  })
  for (let i = 0; i < TRACES; i++) {
    const amount = (i * 37) % 2000
    const root = tracer.startSpan(
      'checkout',
      {
        kind: SpanKind.SERVER,
        startTime: at(i, 0),
        attributes: {
          ...common(i, 0),
          'http.route': '/api/checkout',
          'http.status_code': 200,
          'order.amount': amount,
          'order.currency': 'EUR',
          ...(i % 50 === 7 ? {} : { 'user.id': `user-${i % 97}` }),
        },
      },
      context.active(),
    )
    const inside = trace.setSpan(context.active(), root)
    const child = (name, j, kind, attributes, startMs, endMs, status) => {
      const span = tracer.startSpan(name, { kind, startTime: at(i, startMs), attributes: { ...common(i, j), ...attributes } }, inside)
      if (status) span.setStatus(status)
      span.end(at(i, endMs))
    }
    const names = ['auth', 'cart_load', 'pricing', 'fraud_check', 'payment', 'email_send', 'audit']
    let j = 1
    for (const name of names) {
      if (name === 'fraud_check' && i % 3 === 0) {
        child('recommendations', j, SpanKind.INTERNAL, { 'rec.count': 5, 'rec.model': 'v2' }, 10 * j, 10 * j + 5)
      } else {
        const failed = name === 'payment' && i % 40 === 3
        child(
          name,
          j,
          name === 'payment' ? SpanKind.CLIENT : SpanKind.INTERNAL,
          { 'http.status_code': failed ? 502 : 200, 'retry.count': i % 3, 'order.amount': amount },
          10 * j,
          10 * j + 8,
          failed ? { code: SpanStatusCode.ERROR, message: 'gateway timeout' } : { code: SpanStatusCode.OK },
        )
      }
      j++
    }
    for (let k = 0; k < 3; k++, j++) {
      child('inventory_check', j, SpanKind.CLIENT, { region: i % 25 === 1 && k === 0 ? 'mars-1' : 'eu-west', 'sku.count': k + 1, 'http.status_code': 200 }, 10 * j, 10 * j + 4)
    }
    const queries = i % 10 === 5 ? 7 : 6
    for (let k = 0; k < queries; k++, j++) {
      child('db_query', j, SpanKind.CLIENT, { 'db.system': 'postgresql', 'db.statement': 'SELECT * FROM orders WHERE id = $1', 'db.rows': k }, 10 * j, 10 * j + 3)
    }
    for (; j < SPANS_PER_TRACE; j++) {
      child('cache_get', j, SpanKind.CLIENT, { 'cache.hit': j % 2 === 0, 'cache.key': `order:${i}:${j}` }, 10 * j, 10 * j + (i % 100 === 42 ? 80 : 1))
    }
    root.end(at(i, i % 60 === 11 ? 2500 : 10 * j + 20))
  }
  return exporter.getFinishedSpans()
}

/**
 * Times every case RUNS times, interleaved (case 1, 2, …, then again), so that the load of a
 * shared machine falls on all cases alike; WARMUP untimed rounds first.
 */
async function measure(cases) {
  const samples = cases.map(() => [])
  const results = cases.map(() => undefined)
  for (let round = 0; round < WARMUP + RUNS; round++) {
    for (const [i, [, fn]] of cases.entries()) {
      globalThis.gc?.()
      const start = performance.now()
      results[i] = await fn()
      if (round >= WARMUP) samples[i].push(performance.now() - start)
    }
  }
  return cases.map(([name], i) => {
    const sorted = [...samples[i]].sort((a, b) => a - b)
    return { name, samples: samples[i], medianMs: median(sorted), minMs: sorted[0], result: results[i] }
  })
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[sorted.length >> 1]
}

const spans = recordSpans()
const attributesPerSpan = spans.reduce((n, s) => n + Object.keys(s.attributes).length, 0) / spans.length
const protobuf = Buffer.from(ProtobufTraceSerializer.serializeRequest(spans))
const engine = new Engine(RULES)
const noRules = new Engine([])

const results = await measure([
  ['sdk/otlp-json-encode', () => JsonTraceSerializer.serializeRequest(spans)],
  ['sdk/otlp-protobuf-encode', () => ProtobufTraceSerializer.serializeRequest(spans)],
  ['binding/evaluate', () => engine.evaluate(spans)],
  ['binding/evaluate-async', () => engine.evaluateAsync(spans)],
  ['binding/read-only', () => noRules.evaluate(spans)],
  ['rust/decode+evaluate', () => engine.evaluate(protobuf)],
  ['rust/decode-only', () => noRules.evaluate(protobuf)],
])
const by = Object.fromEntries(results.map((r) => [r.name, r]))
const violations = by['binding/evaluate'].result
if (violations.length !== by['rust/decode+evaluate'].result.length) {
  throw new Error('ReadableSpans and protobuf gave different violation counts')
}
const perRule = {}
for (const v of violations) perRule[v.ruleId] = (perRule[v.ruleId] ?? 0) + 1

console.log(`workload: ${spans.length} SDK spans, ${TRACES} traces, ${attributesPerSpan.toFixed(1)} attributes per span, ${RULES.length} rules`)
console.log(`violations: ${violations.length} (${Object.entries(perRule).map(([k, n]) => `${k} ${n}`).join(', ')})`)
console.log(`node ${process.version}, ${RUNS} runs after ${WARMUP} warm-up runs; median (min) in ms`)
for (const r of results) {
  console.log(`  ${r.name.padEnd(26)} ${r.medianMs.toFixed(2).padStart(8)} (${r.minMs.toFixed(2)})`)
}
/** Median over the rounds of a / b measured in the same round. */
const ratioOf = (a, b) => median(by[a].samples.map((x, i) => x / by[b].samples[i]))
const rustEval = median(by['rust/decode+evaluate'].samples.map((x, i) => x - by['rust/decode-only'].samples[i]))
const ratio = ratioOf('binding/evaluate', 'sdk/otlp-json-encode')
const asyncRatio = ratioOf('binding/evaluate-async', 'sdk/otlp-json-encode')
console.log(`  ${'rust evaluation only'.padEnd(26)} ${rustEval.toFixed(2).padStart(8)}   (decode+evaluate − decode-only, per round)`)
console.log(`binding/evaluate ÷ sdk/otlp-json-encode = ${ratio.toFixed(2)}, evaluate-async ÷ it = ${asyncRatio.toFixed(2)} (median of per-round ratios; target: below 1)`)

const json = option('--json')
if (json) {
  writeFileSync(
    json,
    JSON.stringify(
      {
        spans: spans.length,
        traces: TRACES,
        rules: RULES.length,
        violations: violations.length,
        node: process.version,
        runs: RUNS,
        results: results.map(({ name, medianMs, minMs }) => ({ name, medianMs, minMs })),
        rustEvaluationMs: rustEval,
        ratioToSdkJsonEncode: ratio,
        asyncRatioToSdkJsonEncode: asyncRatio,
      },
      null,
      2,
    ),
  )
}
