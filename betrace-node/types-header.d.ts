/*
 * The shapes BeTrace accepts, and the JSON shapes it returns (violations and diagnostics are
 * the serde shapes of betrace-core and betrace-dsl, as the server writes them); the
 * declarations after these are generated from the Rust definitions.
 */

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

/** A reference to one span named by a violation. */
export interface SpanRef {
  /** Lowercase hex, 32 characters. */
  traceId: string
  /** Lowercase hex, 16 characters. */
  spanId: string
  /** Span name. */
  name: string
  /** `service.name` of the span's resource, `""` when absent. */
  service: string
}

/** One violation of one rule by one trace (ENGINE.md §6), as the server stores and returns it. */
export interface Violation {
  /** UUIDv7, hyphenated lower case. */
  id: string
  ruleId: string
  ruleName: string
  /** First 16 hex digits of SHA-256 of the rule's expression text. */
  ruleVersion: string
  severity: Severity
  /** Human-readable, self-contained description. */
  message: string
  /** Lowercase hex, 32 characters. */
  traceId: string
  /** The first trigger span, else the first offending span, else `""`. */
  spanId: string
  /** The clause that made the rule fail. */
  failedClause: 'always' | 'never' | 'expression'
  /** `direct` for spans given to `evaluate`/`check`. */
  completionReason: string
  /** True when the trace was an incomplete fragment. */
  partial: boolean
  /**
   * Spans that made `when` true, or that matched an expression-form rule; ordered by
   * (start time, span id), at most `maxSpanRefs`.
   */
  triggerSpans: SpanRef[]
  /** Spans matched by `never`, ordered and cut like `triggerSpans`. */
  offendingSpans: SpanRef[]
  /** True when either span list was cut at `maxSpanRefs`. */
  truncated: boolean
  /** RFC 3339, UTC, millisecond precision (`2024-05-01T12:00:00.123Z`). */
  createdAt: string
  /** `v1:<hex>` HMAC-SHA256 (ENGINE.md §7) when the engine has a signing key, else `null`. */
  signature: string | null
  /** Which evaluation of the trace produced the record, n ≥ 2 (ENGINE.md §5); absent for the first. */
  evaluation?: number
  /** The id of the earlier violation this record replaces; absent when none. */
  supersedes?: string
  /** `true` when the record withdraws the violation `supersedes`; absent otherwise. */
  retraction?: true
}

/** A secondary range of a diagnostic (context such as "first written here"). */
export interface DiagnosticLabel {
  /** Text shown under the range; may be empty. */
  message: string
  /** 1-based line of the start. */
  line: number
  /** 1-based column, counted in Unicode code points. */
  column: number
  /** Byte offset of the start into the UTF-8 rule text. */
  start: number
  /** End (exclusive), a byte offset. */
  end: number
}

/** One compile error of a rule (DSL.md §4), the shape of the server's `diagnostics`. */
export interface Diagnostic {
  /** Stable code, e.g. `E301`. */
  code: string
  /** Lower case, user text in backticks. */
  message: string
  /** 1-based line of the start of the problem. */
  line: number
  /** 1-based column, counted in Unicode code points. */
  column: number
  /** Start of the problem, a byte offset into the UTF-8 rule text. */
  start: number
  /** End (exclusive), a byte offset into the UTF-8 rule text. */
  end: number
  /** How to fix it, when known. */
  help: string | null
  /** The rule the diagnostic belongs to (errors of `new Engine`); absent for lone rule text. */
  ruleId?: string
  /** Secondary ranges; absent when there are none. */
  labels?: DiagnosticLabel[]
}

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

