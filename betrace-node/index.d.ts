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


/**
 * Which binding artifact the generated loader actually loaded: `'native'` for
 * a native addon, otherwise the `platformArchABI` of the WASI flavor. Every
 * flavor napi-rs can build is listed, because `NAPI_RS_NATIVE_LIBRARY_PATH`
 * can point the loader at a WASI artifact this package does not build itself.
 */
export declare const __napiBindingTarget: 'native' | 'wasm32-wasi' | 'wasm32-wasip1'

/**
 * Compiled, immutable rules. Construct once and evaluate many span batches; evaluation
 * groups the spans by trace id and evaluates every rule against every trace.
 */
export declare class Engine {
  /**
   * Compiles `rules`: objects `{id, expression, severity?, name?, description?, tags?,
   * enabled?}` (ENGINE.md §3; `condition` is accepted for `expression`; severity
   * `CRITICAL`, `HIGH`, `MEDIUM` (default) or `LOW`, any case).
   *
   * Throws `BETRACE_INVALID_RULE` with `diagnostics` (every compile error of every rule,
   * each with its `ruleId`) and `ruleProblems` (missing, unknown or mistyped fields, ids
   * used twice); the message is the rendered report.
   */
  constructor(rules: RuleDefinition[], options?: EngineOptions | undefined | null)
  /**
   * Evaluates every rule against the spans, grouped by trace id, on the calling thread.
   * Violations come trace by trace (traces in the order their first span appears), rules
   * in the order given.
   *
   * Throws `BETRACE_INVALID_SPAN` naming every malformed span (`spanIndex`, `field`,
   * `spanErrors`), and `BETRACE_EVALUATION_FAILED` when a rule's evaluation fails.
   */
  evaluate(spans: SpanInput): Violation[]
  /**
   * `evaluate` off the JavaScript thread, for big batches: SDK spans are read on
   * the calling thread, decoding and evaluation run in the libuv thread pool. The promise
   * rejects with the errors `evaluate` throws.
   */
  evaluateAsync(spans: SpanInput): Promise<Violation[]>
  /** The rules, every default applied, in the order given. */
  get rules(): Array<Rule>
}

/**
 * Evaluates one rule expression (block or expression form) against the spans, grouped by
 * trace id: the violations of a rule with id `check` and severity `MEDIUM`.
 *
 * Throws `BETRACE_INVALID_RULE` with `diagnostics` when the expression does not compile, and
 * the span errors of `evaluate`.
 */
export declare function check(expression: string, spans: SpanInput): Violation[]

/** Settings of an `Engine` (DSL.md §3.6, ENGINE.md §7). */
export interface EngineOptions {
  /**
   * Signs every violation with HMAC-SHA256 under this key (`signature` = `v1:<hex>`,
   * ENGINE.md §7): the UTF-8 bytes of a string, or the bytes of a `Uint8Array`/`Buffer`.
   */
  signingKey?: string | Uint8Array
  /**
   * Longest span list of a violation (default 100); longer lists are cut and the violation
   * is marked `truncated`.
   */
  maxSpanRefs?: number
}

/**
 * A rule that failed to evaluate on a trace (property `evaluationErrors` of a
 * `BETRACE_EVALUATION_FAILED` error).
 */
export interface EvaluationError {
  ruleId: string
  traceId: string
  message: string
}

/**
 * The canonical text of one rule (DSL.md §5); a rule holding comments comes back unchanged.
 * Throws `BETRACE_INVALID_RULE` with `diagnostics` when it does not compile.
 */
export declare function format(text: string): string

/** A rule of an engine, every default applied (ENGINE.md §3). */
export interface Rule {
  id: string
  /** The id when not given. */
  name: string
  description: string
  /** Rule text in the BeTrace DSL. */
  expression: string
  severity: Severity
  tags: Array<string>
  enabled: boolean
}

/**
 * One rule object with a field problem (property `ruleProblems` of a `BETRACE_INVALID_RULE`
 * error).
 */
export interface RuleProblem {
  /** Position of the rule in the array given to `new Engine`. */
  index: number
  /** The rule's id, when known. */
  ruleId: string | null
  /** The field the problem is about, `null` for the rule as a whole. */
  field: string | null
  message: string
}

/** One malformed span (property `spanErrors` of a `BETRACE_INVALID_SPAN` error). */
export interface SpanProblem {
  /**
   * Position in the input: the array element, or the span of an OTLP request given alone;
   * `null` when the input as a whole cannot be read.
   */
  index: number | null
  /** For an OTLP request inside an array: the span's position within that request. */
  requestSpanIndex: number | null
  /** The offending field as written in the input, `""` when not one field. */
  field: string
  message: string
}

/**
 * Every diagnostic of one rule's text (DSL.md §4); empty when it compiles. Never throws for a
 * bad rule.
 */
export declare function validate(text: string): Diagnostic[]
