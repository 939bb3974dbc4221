// Reads the DSL conformance corpus (../shared/conformance/dsl.jsonl beside the repository).
//
// JSON.parse would round integers beyond 2^53 (Unix-nanosecond times, the corpus's i64 edge
// cases) to the nearest double; those become BigInts instead, which BeTrace reads exactly.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const CORPUS = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../../../shared/conformance/dsl.jsonl',
)

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

/** Every case, in file order. */
export function readCorpus() {
  return readFileSync(CORPUS, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(parseCase)
}

/** The rule text of a case (`rule`, or `generate`: prefix + repeat × times + suffix). */
export function ruleText(c) {
  if (typeof c.rule === 'string') return c.rule
  const g = c.generate
  return g.prefix + g.repeat.repeat(g.times) + g.suffix
}
