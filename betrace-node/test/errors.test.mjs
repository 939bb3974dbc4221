// Errors are Error objects with a stable `code`; rule errors carry `diagnostics`, span errors
// name every malformed span; the rendered report is the message.
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { test } from 'node:test'

import { Engine, check, format, validate } from 'betrace'
import { otlpJson, otlpProtobuf, recordCheckouts } from './support/otel.mjs'

const { spans } = recordCheckouts()
const simple = (spanId, extra = {}) => ({
  traceId: '0000000000000000000000005eed0001',
  spanId,
  name: 'payment',
  serviceName: 'shop',
  startTime: 1_700_000_000_000_000_000n,
  endTime: 1_700_000_000_500_000_000n,
  ...extra,
})

/** Asserts `fn` throws (or rejects with) an Error with `code`, and returns it. */
function thrown(fn, code) {
  let error
  try {
    fn()
  } catch (e) {
    error = e
  }
  assert.ok(error instanceof Error, `expected an Error, got ${error}`)
  assert.equal(error.code, code, error.message)
  return error
}

test('a rule that does not compile: code, diagnostics per rule, rendered report', () => {
  const e = thrown(
    () =>
      new Engine([
        { id: 'ok', expression: 'never { x }' },
        { id: 'no-clause', expression: 'when { payment }' },
        { id: 'typo', expression: 'span.durration > 1s' },
      ]),
    'BETRACE_INVALID_RULE',
  )
  assert.deepEqual(
    e.diagnostics.map((d) => [d.ruleId, d.code]),
    [
      ['no-clause', 'E301'],
      ['typo', 'E306'],
    ],
  )
  const typo = e.diagnostics[1]
  assert.deepEqual([typo.line, typo.column, typo.start, typo.end], [1, 6, 5, 14])
  assert.equal(typo.help, 'did you mean `duration`?')
  assert.deepEqual(e.ruleProblems, [])
  // The message is the rendered report: origin, source line and caret.
  assert.match(e.message, /error\[E301\]/)
  assert.match(e.message, /rule `typo`/)
  assert.match(e.message, /span\.durration > 1s\n.*  \^{9}\n/)
})

test('rule objects with bad fields: every problem, by index and field', () => {
  const e = thrown(
    () =>
      new Engine([
        { id: 'a', expression: 'never { x }' },
        { id: 'a', expression: 'never { y }' },
        { id: 'b', expression: 'never { z }', severty: 'HIGH' },
        { id: 'c', expression: 'never { z }', severity: 'urgent' },
        { id: 'd' },
        'never { w }',
      ]),
    'BETRACE_INVALID_RULE',
  )
  assert.deepEqual(
    e.ruleProblems.map((p) => [p.index, p.ruleId, p.field]),
    [
      [1, 'a', 'id'],
      [2, 'b', 'severty'],
      [3, 'c', 'severity'],
      [4, 'd', 'expression'],
      [5, null, null],
    ],
  )
  assert.deepEqual(e.diagnostics, [])
  assert.match(e.message, /duplicate id `a`/)
  assert.match(e.message, /unknown severity `urgent`/)
  thrown(() => new Engine('never { x }'), 'BETRACE_INVALID_RULE')
  thrown(() => new Engine([{ id: 'n', expression: 'never { x }', tags: [NaN] }]), 'BETRACE_INVALID_RULE')
})

test('engine options: signing key and span list length', () => {
  const key = 'test-signing-key'
  const [v] = new Engine([{ id: 'fraud', expression: 'when { checkout } never { payment }' }], {
    signingKey: key,
  }).evaluate(spans.slice(0, 3))
  // ENGINE.md §7: v1: + hex HMAC-SHA256 over the RFC 8785 JSON of the violation without
  // `signature` (a violation holds no numbers, so sorted keys + JSON.stringify is RFC 8785).
  const canonical = (x) =>
    Array.isArray(x)
      ? `[${x.map(canonical).join(',')}]`
      : x !== null && typeof x === 'object'
        ? `{${Object.keys(x)
            .sort()
            .map((k) => `${JSON.stringify(k)}:${canonical(x[k])}`)
            .join(',')}}`
        : JSON.stringify(x)
  const { signature, ...unsigned } = v
  assert.equal(signature, `v1:${createHmac('sha256', key).update(canonical(unsigned)).digest('hex')}`)
  const [same] = new Engine([{ id: 'fraud', expression: 'when { checkout } never { payment }' }], {
    signingKey: Buffer.from(key),
  }).evaluate(spans.slice(0, 3))
  assert.match(same.signature, /^v1:[0-9a-f]{64}$/)
  thrown(() => new Engine([], { signingKey: '' }), 'BETRACE_INVALID_OPTION')

  const many = Array.from({ length: 5 }, (_, i) => simple(`00000000000000a${i}`))
  const [cut] = new Engine([{ id: 'p', expression: 'span.name == "payment"' }], { maxSpanRefs: 2 }).evaluate(many)
  assert.equal(cut.triggerSpans.length, 2)
  assert.equal(cut.truncated, true)
})

test('check, validate and format report diagnostics', () => {
  const e = thrown(() => check('when { payment }', spans), 'BETRACE_INVALID_RULE')
  assert.deepEqual(
    e.diagnostics.map((d) => [d.code, d.ruleId]),
    [['E301', undefined]],
  )
  assert.ok(!('ruleId' in e.diagnostics[0]))
  assert.match(e.message, /expression:1:1/)

  assert.deepEqual(validate('when { payment.amount > 1000 } always { fraud_check }'), [])
  const diagnostics = validate('when { payment.where(amount > ) }\nalways { span.durration > 1s }')
  assert.ok(diagnostics.length >= 1)
  for (const d of diagnostics) {
    assert.match(d.code, /^E\d{3}$/)
    assert.equal(typeof d.message, 'string')
    assert.ok('help' in d)
  }

  assert.equal(format('when{a.where(x>1)}always{b}'), 'when { a.where(x > 1) }\nalways { b }')
  const f = thrown(() => format('when { a } always'), 'BETRACE_INVALID_RULE')
  assert.ok(f.diagnostics.length >= 1)
})

test('violations and diagnostics are the server JSON shapes', () => {
  const [v] = check('never { payment }', [simple('00000000000000a1')])
  assert.deepEqual(Object.keys(v), [
    'id',
    'ruleId',
    'ruleName',
    'ruleVersion',
    'severity',
    'message',
    'traceId',
    'spanId',
    'failedClause',
    'completionReason',
    'partial',
    'triggerSpans',
    'offendingSpans',
    'truncated',
    'createdAt',
    'signature',
  ])
  assert.equal(v.spanId, '00000000000000a1')
  assert.match(v.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.deepEqual(v.offendingSpans, [
    { traceId: '0000000000000000000000005eed0001', spanId: '00000000000000a1', name: 'payment', service: 'shop' },
  ])
  const [whole] = check('trace.duration > 1ms', [simple('00000000000000a1')])
  assert.equal(whole.spanId, '')

  const [d] = validate('when { a } always { b } always { c }')
  assert.deepEqual(d.labels, [{ message: 'first written here', line: 1, column: 12, start: 11, end: 17 }])
  const e = thrown(() => new Engine([{ id: 'twice', expression: 'when { a } always { b } always { c }' }]), 'BETRACE_INVALID_RULE')
  assert.deepEqual(Object.keys(e.diagnostics[0]), ['code', 'message', 'line', 'column', 'start', 'end', 'help', 'ruleId', 'labels'])
  assert.equal(e.diagnostics[0].ruleId, 'twice')
})

test('malformed spans: every one named by index and field, neighbours do not hide them', () => {
  const [sdkSpan] = spans
  const badKind = {
    spanContext: () => sdkSpan.spanContext(),
    name: 'checkout',
    kind: 9,
    startTime: [1_700_000_000, 0],
    endTime: [1_700_000_001, 0],
  }
  const e = thrown(
    () => new Engine([]).evaluate([sdkSpan, badKind, simple('00000000000000b1', { startTime: 'soon' }), 42]),
    'BETRACE_INVALID_SPAN',
  )
  assert.equal(e.spanIndex, 1)
  assert.equal(e.field, 'kind')
  assert.deepEqual(
    e.spanErrors.map((p) => [p.index, p.field]),
    [
      [1, 'kind'],
      [2, 'startTime'],
      [3, ''],
    ],
  )
  assert.match(e.message, /^3 invalid spans:/)
  assert.match(e.message, /span 1: field `kind`: `9` is not a span kind \(expected a SpanKind number 0 to 4/)

  const badTime = { ...badKind, kind: 1, endTime: [1, -5] }
  assert.equal(thrown(() => check('never { x }', [badTime]), 'BETRACE_INVALID_SPAN').field, 'endTime[1]')
  const badId = { ...badKind, kind: 1, spanContext: () => ({ traceId: 'xyz', spanId: '00f067aa0ba902b7' }) }
  assert.equal(
    thrown(() => check('never { x }', [badId]), 'BETRACE_INVALID_SPAN').field,
    'spanContext().traceId',
  )
  const badAttribute = { ...badKind, kind: 1, attributes: { ok: 1, bad: () => 1 } }
  assert.equal(thrown(() => check('never { x }', [badAttribute]), 'BETRACE_INVALID_SPAN').field, 'attributes.bad')
})

test('malformed OTLP input', () => {
  const json = otlpJson(spans.slice(0, 3))
  json.resourceSpans[0].scopeSpans[0].spans[1].kind = 42
  const inArray = thrown(() => check('never { x }', [simple('00000000000000c1'), json]), 'BETRACE_INVALID_SPAN')
  assert.deepEqual(
    inArray.spanErrors.map((p) => [p.index, p.requestSpanIndex, p.field]),
    [[1, 1, 'kind']],
  )
  assert.match(inArray.message, /spans\[1\], span 1 of the OTLP request/)
  const alone = thrown(() => check('never { x }', json), 'BETRACE_INVALID_SPAN')
  assert.equal(alone.spanIndex, 1)

  const garbage = thrown(() => check('never { x }', Buffer.from([0x0a, 0xff, 0xff, 0xff])), 'BETRACE_INVALID_SPAN')
  assert.equal(garbage.spanIndex, null)
  const truncated = otlpProtobuf(spans).subarray(0, 40)
  thrown(() => check('never { x }', truncated), 'BETRACE_INVALID_SPAN')
  assert.equal(thrown(() => check('never { x }', 42), 'BETRACE_INVALID_SPAN').spanIndex, null)
  thrown(() => check('never { x }', 'spans'), 'BETRACE_INVALID_SPAN')

  const cyclic = simple('00000000000000d1')
  cyclic.attributes = { self: {} }
  cyclic.attributes.self.again = cyclic.attributes
  assert.match(thrown(() => check('never { x }', [cyclic]), 'BETRACE_INVALID_SPAN').message, /nested deeper/)
})

test('an exception thrown while reading a span reaches the caller unchanged', () => {
  const boom = new Error('boom')
  const span = {
    spanContext() {
      throw boom
    },
  }
  assert.throws(() => check('never { x }', [span]), (e) => e === boom)
})

test('evaluateAsync rejects with the same errors', async () => {
  const engine = new Engine([{ id: 'x', expression: 'never { x }' }])
  await assert.rejects(engine.evaluateAsync([simple('00000000000000e1'), { name: 'no ids' }]), (e) => {
    assert.ok(e instanceof Error)
    assert.equal(e.code, 'BETRACE_INVALID_SPAN')
    assert.equal(e.spanIndex, 1)
    assert.equal(e.field, 'startTime')
    return true
  })
  await assert.rejects(engine.evaluateAsync(Buffer.from([0xff])), { code: 'BETRACE_INVALID_SPAN' })
})
