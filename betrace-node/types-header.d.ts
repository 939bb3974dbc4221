/* The shapes BeTrace accepts; the declarations after them are generated from the Rust definitions. */

/** Severity of a rule and of its violations. */
export type Severity = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW'

/**
 * A rule given to `new Engine` (ENGINE.md §3). Unknown keys are errors.
 * `id` defaults to `name` when that is a slug; `name` to the id.
 */
export interface RuleDefinition {
  /** Unique slug `[A-Za-z0-9._-]{1,128}`. */
  id?: string
  /** Rule text in the BeTrace DSL. */
  expression?: string
  /** Accepted instead of `expression`. */
  condition?: string
  /** Any case; default `MEDIUM`. */
  severity?: Severity | Lowercase<Severity> | (string & {})
  name?: string
  description?: string
  tags?: string[]
  /** Default `true`. */
  enabled?: boolean
}

/** An attribute value as the OpenTelemetry JS API allows it, plus `bigint` and byte arrays. */
export type AttributeValue =
  | string
  | number
  | boolean
  | bigint
  | Uint8Array
  | Array<string | number | boolean | bigint | null | undefined>
  | null
  | undefined

/**
 * The fields BeTrace reads from an OpenTelemetry JS `ReadableSpan` (SDK 2.x, e.g. from
 * `InMemorySpanExporter.getFinishedSpans()`; the 1.x names `parentSpanId` and
 * `instrumentationLibrary` are read too).
 */
export interface ReadableSpanLike {
  spanContext(): { traceId: string; spanId: string }
  parentSpanContext?: { spanId: string } | null
  parentSpanId?: string
  name: string
  /** The JS `SpanKind`: 0 INTERNAL, 1 SERVER, 2 CLIENT, 3 PRODUCER, 4 CONSUMER. */
  kind: number
  /** `SpanStatusCode`: 0 UNSET, 1 OK, 2 ERROR. */
  status?: { code: number; message?: string }
  /** hrtime `[seconds, nanoseconds]`. */
  startTime: [number, number]
  endTime: [number, number]
  attributes?: Record<string, AttributeValue>
  resource?: { attributes: Record<string, AttributeValue> }
  instrumentationScope?: { name: string }
}

/** A span in the simple JSON shape (ENGINE.md §2; the shape of the conformance corpus). */
export interface SimpleSpan {
  /** 32 hex digits used as is; other text is hashed. */
  traceId: string
  /** 16 hex digits used as is; other text is hashed. */
  spanId: string
  parentSpanId?: string | null
  name?: string
  serviceName?: string
  /** `server`, `SERVER`, `SPAN_KIND_SERVER` or the OTLP number 0–5. */
  kind?: string | number
  status?: string | { code: string | number; message?: string }
  /** Unix nanoseconds: a number, a `bigint` or a string of digits. */
  startTime: number | bigint | string
  endTime?: number | bigint | string
  /** Nanoseconds. */
  duration?: number | bigint | string
  durationMs?: number
  attributes?: Record<string, AttributeValue>
}

/** An OTLP/JSON `ExportTraceServiceRequest` (e.g. `JSON.parse` of an OTLP/HTTP JSON body). */
export interface OtlpJsonRequest {
  resourceSpans: unknown[]
}

/** One element of a span array. */
export type SpanLike = ReadableSpanLike | SimpleSpan | OtlpJsonRequest | Uint8Array

/**
 * What `evaluate`, `evaluateAsync` and `check` accept: an array of spans (mixed kinds allowed),
 * one OTLP/JSON request, a `Buffer`/`Uint8Array` of OTLP protobuf, or `{ spans: SimpleSpan[] }`.
 */
export type SpanInput =
  | ReadonlyArray<SpanLike>
  | OtlpJsonRequest
  | Uint8Array
  | { spans: SimpleSpan[] }

/** The error codes of the `Error`s BeTrace throws. */
export type BetraceErrorCode =
  | 'BETRACE_INVALID_RULE'
  | 'BETRACE_INVALID_SPAN'
  | 'BETRACE_EVALUATION_FAILED'
  | 'BETRACE_INVALID_OPTION'

/** A rule that does not compile (`diagnostics`) or a rule object with bad fields (`ruleProblems`). */
export interface InvalidRuleError extends Error {
  code: 'BETRACE_INVALID_RULE'
  diagnostics: Diagnostic[]
  ruleProblems: RuleProblem[]
}

/** Malformed spans: the first one's `spanIndex` and `field`, and all of them in `spanErrors`. */
export interface InvalidSpanError extends Error {
  code: 'BETRACE_INVALID_SPAN'
  spanIndex: number | null
  field: string
  spanErrors: SpanProblem[]
}

/** A rule whose evaluation failed on a trace; `violations` holds what the other rules found. */
export interface EvaluationFailedError extends Error {
  code: 'BETRACE_EVALUATION_FAILED'
  evaluationErrors: EvaluationError[]
  violations: Violation[]
}

