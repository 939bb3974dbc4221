// Spans from the real OpenTelemetry JS SDK, evaluated as ReadableSpans, as the OTLP/JSON object
// and the OTLP protobuf buffer the SDK's exporters produce: the same violations every way.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { Engine, check } from 'betrace'
import { RULES, normalized, otlpJson, otlpProtobuf, recordCheckouts } from './support/otel.mjs'

const { spans, traces } = recordCheckouts()
const engine = new Engine(RULES)

test('the SDK recorded the instrumented checkouts', () => {
  assert.equal(spans.length, 9)
  assert.equal(typeof spans[0].spanContext, 'function')
  assert.ok(Array.isArray(spans[0].startTime), 'hrtime start')
  assert.ok(spans.some((s) => s.parentSpanContext), 'SDK 2.x parentSpanContext')
})

test('violations of ReadableSpans name the rules, traces and SDK spans', () => {
  const violations = engine.evaluate(spans)
  const found = violations.map((v) => `${v.ruleId}@${v.traceId}`).sort()
  assert.deepEqual(
    found,
    [
      `large-order-fraud@${traces.unchecked}`,
      `payment-failure@${traces.declined}`,
      `declined-card@${traces.declined}`,
      `slow-api@${traces.slow}`,
    ].sort(),
  )
  const byRule = Object.fromEntries(violations.map((v) => [v.ruleId, v]))
  const spanId = (traceId, name) =>
    spans.find((s) => s.spanContext().traceId === traceId && s.name === name).spanContext().spanId

  const fraud = byRule['large-order-fraud']
  assert.equal(fraud.severity, 'HIGH')
  assert.equal(fraud.failedClause, 'always')
  assert.deepEqual(fraud.triggerSpans, [
    { traceId: traces.unchecked, spanId: spanId(traces.unchecked, 'checkout'), name: 'checkout', service: 'shop' },
  ])
  assert.deepEqual(fraud.offendingSpans, [])
  assert.equal(fraud.spanId, spanId(traces.unchecked, 'checkout'))
  assert.equal(fraud.completionReason, 'direct')
  assert.equal(fraud.signature, null)
  assert.match(fraud.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  assert.match(fraud.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.match(fraud.message, /large-order-fraud/)

  const failure = byRule['payment-failure']
  assert.equal(failure.ruleName, 'Payment failure')
  assert.equal(failure.severity, 'CRITICAL')
  assert.equal(failure.failedClause, 'never')
  assert.deepEqual(
    failure.offendingSpans.map((r) => r.spanId),
    [spanId(traces.declined, 'payment')],
  )

  assert.equal(byRule['declined-card'].failedClause, 'expression')
  assert.deepEqual(byRule['declined-card'].triggerSpans.map((r) => r.name), ['payment'])
  assert.equal(byRule['slow-api'].severity, 'MEDIUM')
  assert.deepEqual(byRule['slow-api'].triggerSpans.map((r) => r.spanId), [spanId(traces.slow, 'checkout')])
})

test('ReadableSpans, OTLP/JSON and OTLP protobuf give identical violations', () => {
  const fromSdk = normalized(engine.evaluate(spans))
  assert.equal(fromSdk.length, 4)
  assert.deepEqual(normalized(engine.evaluate(otlpJson(spans))), fromSdk)
  assert.deepEqual(normalized(engine.evaluate(otlpProtobuf(spans))), fromSdk)
  // A Uint8Array (not a Buffer) of protobuf, and a request inside an array.
  assert.deepEqual(normalized(engine.evaluate(new Uint8Array(otlpProtobuf(spans)))), fromSdk)
  assert.deepEqual(normalized(engine.evaluate([otlpJson(spans)])), fromSdk)
})

test('a mixed list evaluates like one batch', () => {
  const half = spans.length >> 1
  const mixed = [...spans.slice(0, half), otlpProtobuf(spans.slice(half, half + 2)), otlpJson(spans.slice(half + 2))]
  assert.deepEqual(normalized(engine.evaluate(mixed)), normalized(engine.evaluate(spans)))
})

test('spans read property by property evaluate like spans read in one pass', () => {
  // A BigInt attribute is not JSON: such a span is read one property at a time, through
  // Node-API, instead of in the single pass that reads plain SDK spans.
  const forced = spans.map((span) =>
    Object.create(span, { attributes: { value: { ...span.attributes, 'test.big': 2n ** 40n } } }),
  )
  assert.equal(typeof forced[0].spanContext, 'function')
  const expected = normalized(engine.evaluate(spans))
  assert.deepEqual(normalized(engine.evaluate(forced)), expected)
  // Half and half, and one span given alone (always read property by property).
  const mixed = spans.map((span, i) => (i % 2 ? forced[i] : span))
  assert.deepEqual(normalized(engine.evaluate(mixed)), expected)
  const [root] = spans.filter((s) => s.name === 'checkout' && s.spanContext().traceId === traces.slow)
  assert.deepEqual(
    normalized(new Engine([RULES[3]]).evaluate(root)),
    expected.filter((v) => v.ruleId === 'slow-api'),
  )
  const [big] = check('span.name == "checkout" and test.big == 1099511627776', forced)
  assert.equal(big.ruleId, 'check')
})

test('evaluateAsync resolves to the violations evaluate returns', async () => {
  const pending = engine.evaluateAsync(spans)
  assert.ok(pending instanceof Promise)
  const [fromSdk, fromJson, fromProtobuf] = await Promise.all([
    pending,
    engine.evaluateAsync(otlpJson(spans)),
    engine.evaluateAsync(otlpProtobuf(spans)),
  ])
  const expected = normalized(engine.evaluate(spans))
  assert.deepEqual(normalized(fromSdk), expected)
  assert.deepEqual(normalized(fromJson), expected)
  assert.deepEqual(normalized(fromProtobuf), expected)
})

test('check evaluates one expression over SDK spans', () => {
  const violations = check('when { checkout } always { fraud_check }', spans)
  assert.deepEqual(
    violations.map((v) => v.traceId).sort(),
    [traces.unchecked, traces.declined, traces.fine].sort(),
  )
  assert.ok(violations.every((v) => v.ruleId === 'check' && v.severity === 'MEDIUM'))
  assert.deepEqual(check('when { checkout } always { payment }', spans), [])
})

test('spans of a trace given in any order give the same violations', () => {
  const reversed = [...spans].reverse()
  assert.deepEqual(normalized(engine.evaluate(reversed)), normalized(engine.evaluate(spans)))
})
