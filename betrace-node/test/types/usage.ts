// A TypeScript program using the package's declarations; `tsc -p test/types` type-checks it
// (it is not run).
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base'
import {
  Engine,
  check,
  format,
  validate,
  type Diagnostic,
  type InvalidRuleError,
  type InvalidSpanError,
  type RuleDefinition,
  type Severity,
  type SimpleSpan,
  type SpanRef,
  type Violation,
} from 'betrace'

const exporter = new InMemorySpanExporter()

const rules: RuleDefinition[] = [
  { id: 'slow', expression: 'span.duration > 1s', severity: 'HIGH' },
  { id: 'fraud', expression: 'when { checkout } always { fraud_check }', severity: 'critical', tags: ['payments'] },
]
const engine = new Engine(rules, { signingKey: 'key', maxSpanRefs: 10 })

// ReadableSpans from the SDK are accepted as they are.
const violations: Violation[] = engine.evaluate(exporter.getFinishedSpans())
const severities: Severity[] = violations.map((v) => v.severity)
const names: string[] = violations.flatMap((v) => v.triggerSpans.map((r: SpanRef) => r.name))
const signature: string | null = violations[0]?.signature ?? null

async function later(): Promise<number> {
  const found = await engine.evaluateAsync(Buffer.from([]))
  return found.length
}

const simple: SimpleSpan = { traceId: 't', spanId: 's', name: 'checkout', startTime: 1n, durationMs: 5 }
const fromCheck: Violation[] = check('never { payment }', [simple, { resourceSpans: [] }])
const diagnostics: Diagnostic[] = validate('when { payment }')
const lines: number[] = diagnostics.map((d) => d.line)
const canonical: string = format('never{x}')
const clause: 'always' | 'never' | 'expression' | undefined = fromCheck[0]?.failedClause

try {
  new Engine([{ id: 'bad', expression: 'when { x }' }])
} catch (e) {
  const error = e as InvalidRuleError | InvalidSpanError
  if (error.code === 'BETRACE_INVALID_RULE') {
    const codes: string[] = error.diagnostics.map((d) => d.code)
    void codes
  } else {
    const index: number | null = error.spanIndex
    void index
  }
}

// @ts-expect-error severity values are checked
const wrongSeverity: Severity = 'URGENT'
// @ts-expect-error evaluate needs spans
engine.evaluate()

void [severities, names, signature, later, lines, canonical, clause, wrongSeverity]
