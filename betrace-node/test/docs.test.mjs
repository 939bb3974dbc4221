// The examples of docs/node.md run as written.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import { inMemoryProvider } from './support/otel.mjs'

const DOC = new URL('../../docs/node.md', import.meta.url)
const blocks = [...readFileSync(DOC, 'utf8').matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1])
const require = createRequire(import.meta.url)

test('the five-line example evaluates spans from the SDK', () => {
  const [example] = blocks
  assert.equal(example.trim().split('\n').length, 5)
  const { exporter, tracer } = inMemoryProvider()
  tracer.startSpan('checkout', { attributes: { 'order.amount': 1500 } }).end()
  tracer.startSpan('checkout', { attributes: { 'order.amount': 20 } }).end()
  const printed = []
  const console = { log: (...args) => printed.push(args.join(' ')) }
  new Function('require', 'exporter', 'console', example)(require, exporter, console)
  assert.equal(printed.length, 1)
  assert.match(printed[0], /^rule "fraud-check" \(HIGH\): when matched checkout [0-9a-f]{8}…; always \{ fraud_check \} did not hold$/)
})

test('the setup example gives a working in-memory exporter', () => {
  const setup = blocks.find((b) => b.includes('new InMemorySpanExporter()'))
  const exporter = new Function('require', `${setup}\nprovider.getTracer('shop').startSpan('a').end()\nreturn exporter`)(require)
  assert.equal(exporter.getFinishedSpans().length, 1)
})

test('the error example prints what it says', () => {
  const example = blocks.find((b) => b.includes('catch (e)'))
  const printed = []
  const console = { log: (...args) => printed.push(args.join(' ')) }
  new Function('require', 'console', `const { Engine } = require('betrace')\n${example}`)(require, console)
  assert.deepEqual(printed, [example.match(/\/\/ (.*)$/m)[1]])
})
