// The CommonJS and ES module entry points load the same binding.
const assert = require('node:assert/strict')
const path = require('node:path')
const { test } = require('node:test')

test('require() of the package directory and of the package name', () => {
  const byPath = require(path.join(__dirname, '..'))
  const byName = require('betrace')
  assert.equal(byPath, byName)
  for (const name of ['Engine', 'check', 'validate', 'format']) {
    assert.equal(typeof byName[name], 'function', name)
  }
  const [v] = byName.check('span.name == "a"', [
    { traceId: 'trace-1', spanId: 'span-1', name: 'a', startTime: 1, endTime: 2 },
  ])
  assert.equal(v.ruleId, 'check')
})

test('import() gives the same functions, named and default', async () => {
  const esm = await import('betrace')
  const cjs = require('betrace')
  for (const name of ['Engine', 'check', 'validate', 'format']) {
    assert.equal(esm[name], cjs[name], name)
    assert.equal(esm.default[name], cjs[name], name)
  }
})
