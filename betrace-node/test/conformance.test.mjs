// The DSL conformance corpora (the shared one and testing/conformance-extra.jsonl) through
// `check`: every case gives the result the Rust engine and `betrace test` give
// (../shared/conformance/README.md, "Expectations").
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { check } from 'betrace'
import { readCorpus, ruleText } from './support/corpus.mjs'

const cases = readCorpus()

/** Span ids ordered by (start time, span id), the order of DSL.md §7.3. */
function ids(refs) {
  return refs.map((r) => r.spanId)
}

function outcome(violations) {
  if (violations.length === 0) {
    return { violated: false, failedClause: null, triggerSpans: [], offendingSpans: [] }
  }
  assert.equal(violations.length, 1, 'one trace and one rule give at most one violation')
  const [v] = violations
  assert.equal(v.ruleId, 'check')
  assert.equal(v.completionReason, 'direct')
  return {
    violated: true,
    failedClause: v.failedClause,
    triggerSpans: ids(v.triggerSpans),
    offendingSpans: ids(v.offendingSpans),
  }
}

test('the corpus is there and not trivial', () => {
  assert.ok(cases.length >= 200, `expected the whole corpus, found ${cases.length} cases`)
  assert.ok(
    cases.some((c) => c.id.startsWith('x-')),
    'the project corpus (testing/conformance-extra.jsonl) is read',
  )
})

for (const c of cases) {
  test(`${c.id} (${c.area})`, () => {
    const rule = ruleText(c)
    if ('error' in c.expect) {
      assert.throws(
        () => check(rule, c.spans),
        (err) => {
          assert.equal(err.code, 'BETRACE_INVALID_RULE', err.message)
          const codes = err.diagnostics.map((d) => d.code)
          const want = c.expect.error
          assert.ok(
            want === 'E2' ? codes.some((code) => /^E2\d\d$/.test(code)) : codes.includes(want),
            `expected ${want} among ${codes.join(', ')}`,
          )
          for (const d of err.diagnostics) {
            assert.ok(d.line >= 1 && d.column >= 1 && d.start <= d.end, JSON.stringify(d))
          }
          assert.match(err.message, new RegExp(`error\\[${codes[0]}\\]`))
          return true
        },
      )
    } else if ('malformedSpan' in c.expect) {
      assert.throws(
        () => check(rule, c.spans),
        (err) => {
          assert.equal(err.code, 'BETRACE_INVALID_SPAN', err.message)
          assert.equal(err.spanIndex, c.expect.malformedSpan)
          assert.match(err.message, new RegExp(`span ${c.expect.malformedSpan}\\b`))
          return true
        },
      )
    } else {
      assert.deepEqual(outcome(check(rule, c.spans)), c.expect)
    }
  })
}
