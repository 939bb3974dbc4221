// Reads the DSL conformance corpora: the shared ../shared/conformance/dsl.jsonl beside the
// repository (BETRACE_CONFORMANCE overrides it), then the project's
// testing/conformance-extra.jsonl (BETRACE_CONFORMANCE_EXTRA overrides it).
//
// JSON.parse would round integers beyond 2^53 (Unix-nanosecond times, the corpus's i64 edge
// cases) to the nearest double; those become BigInts instead, which BeTrace reads exactly.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))

export const CORPUS = process.env.BETRACE_CONFORMANCE ?? join(HERE, '../../../../shared/conformance/dsl.jsonl')

export const CORPUS_EXTRA =
  process.env.BETRACE_CONFORMANCE_EXTRA ?? join(HERE, '../../../testing/conformance-extra.jsonl')

const BIGINT_MARK = '\u0000bigint:'

/** JSON text with every integer literal beyond Number.MAX_SAFE_INTEGER turned into a marked string. */
function markBigIntegers(text) {
  let out = ''
  let i = 0
  while (i < text.length) {
    const c = text[i]
    if (c === '"') {
      let j = i + 1
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      out += text.slice(i, j + 1)
      i = j + 1
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      const match = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 64))
      const token = match[0]
      const integral = match[1] === undefined && match[2] === undefined
      out += integral && !Number.isSafeInteger(Number(token)) ? JSON.stringify(BIGINT_MARK + token) : token
      i += token.length
    } else {
      out += c
      i += 1
    }
  }
  return out
}

/** One case of the corpus, integers beyond 2^53 as BigInts. */
export function parseCase(line) {
  return JSON.parse(markBigIntegers(line), (_key, value) =>
    typeof value === 'string' && value.startsWith(BIGINT_MARK) ? BigInt(value.slice(BIGINT_MARK.length)) : value,
  )
}

function readFile(path) {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(parseCase)
}

/** Every case of both corpora, the shared one first, each in file order; ids are unique. */
export function readCorpus() {
  const cases = [...readFile(CORPUS), ...readFile(CORPUS_EXTRA)]
  const seen = new Set()
  for (const c of cases) {
    if (seen.has(c.id)) throw new Error(`conformance case id ${c.id} appears twice`)
    seen.add(c.id)
  }
  return cases
}

/** The rule text of a case (`rule`, or `generate`: prefix + repeat × times + suffix). */
export function ruleText(c) {
  if (typeof c.rule === 'string') return c.rule
  const g = c.generate
  return g.prefix + g.repeat.repeat(g.times) + g.suffix
}
