//! Span input (BINDINGS.md, Node): JavaScript values → [`Span`]s.
//!
//! In: what `Engine.evaluate` and `check` accept — an array whose elements are OpenTelemetry
//! JS `ReadableSpan` objects (SDK 2.x, also the 1.x field names), simple-JSON span objects
//! (ENGINE.md §2 item 2), OTLP/JSON `ExportTraceServiceRequest` objects or `Buffer`s /
//! `Uint8Array`s of OTLP protobuf, mixed; or one such request, buffer, span, or a
//! `{spans: [...]}` object. Out: `SpanInput`, everything read from JavaScript that must be
//! read on the JavaScript thread (SDK spans are converted there, plain data is copied as
//! JSON, buffers as bytes), which `SpanInput::decode` turns into spans on any thread with
//! the decoders of `betrace-core`. Every malformed span is reported, each as a
//! `SpanProblem` naming its position and field.
//!
//! A `ReadableSpan` is recognised by its `spanContext` method and read as the OTLP exporter of
//! the JS SDK (`@opentelemetry/otlp-transformer`) would encode it, so that a span evaluates the
//! same whichever way it arrives, into a [`SpanDraft`] that the core checks
//! ([`SpanDraft::into_span`]: ids, kind, status code, with the core's wording):
//!
//! | field | span |
//! |---|---|
//! | `spanContext()` `.traceId`, `.spanId` | ids, 32 / 16 hex digits (either case), not all zeros |
//! | `parentSpanContext?.spanId` (2.x) or `parentSpanId` (1.x) | parent; absent, `""` or zeros = root |
//! | `name` | name |
//! | `kind` | the JS `SpanKind` number 0–4 (INTERNAL … CONSUMER), the OTLP kind minus one |
//! | `status` `{code, message}` | `SpanStatusCode` 0–2 (UNSET, OK, ERROR), the OTLP numbers |
//! | `startTime`, `endTime` | hrtime `[seconds, nanoseconds]` → Unix nanoseconds (fractions truncated) |
//! | `attributes`, `resource.attributes` | see below; spans sharing one resource object share one resource |
//! | `instrumentationScope.name` (2.x) or `instrumentationLibrary.name` (1.x) | scope name |
//!
//! Attribute values: strings, booleans, numbers (a finite number without a fraction in the range
//! of i64 is an integer, any other a float, like the exporter's `intValue`/`doubleValue`),
//! `BigInt`s (integers), `Uint8Array`s (bytes), arrays of those (`null`/`undefined` elements are
//! left out), plain objects (key-value lists); `null` and `undefined` values are left out.

use std::fmt;
use std::sync::Arc;

use betrace_core::input::simple_json::SimpleJsonDecoder;
use betrace_core::{
    AttrValue, Attributes, Decoded, EnumDraft, IdDraft, InputFormat, Resource, Span, SpanDraft,
    SpanError, decode_json, decode_otlp_json_value, decode_otlp_protobuf,
};
use napi::bindgen_prelude::{FromNapiValue, Function, JsObjectValue, Object};
use napi::{Env, JsString, Unknown};
use serde_json::Value;

use crate::js::{Js, Problem, ReadError, bigint_i64, integral_i64, properties, to_json};

// Deepest nesting of an SDK attribute value (arrays, objects): the limit of `betrace-core`'s
// readers and of the Python binding.
use betrace_core::input::MAX_VALUE_DEPTH as MAX_ATTRIBUTE_DEPTH;

/// One malformed span, or an input that could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpanProblem {
    /// Position of the span in the input: the array element, or the span of a lone OTLP
    /// request (counted as `betrace-core` does). `None` when the input as a whole is wrong.
    pub index: Option<usize>,
    /// For an OTLP request that is one element of an array: the span's position within it.
    pub request_span: Option<usize>,
    /// The offending field as written in the input (`kind`, `attributes.user`); may be empty.
    pub field: String,
    /// What is wrong, lower case.
    pub message: String,
}

impl SpanProblem {
    fn input(message: impl Into<String>) -> SpanProblem {
        SpanProblem {
            index: None,
            request_span: None,
            field: String::new(),
            message: message.into(),
        }
    }

    fn at(index: usize, problem: Problem) -> SpanProblem {
        SpanProblem {
            index: Some(index),
            request_span: None,
            field: problem.path,
            message: problem.message,
        }
    }

    /// A core span error; `element` is set when the span came from a request inside an array.
    fn from_core(e: SpanError, element: Option<usize>) -> SpanProblem {
        match element {
            Some(i) => SpanProblem {
                index: Some(i),
                request_span: Some(e.index),
                field: e.field,
                message: e.message,
            },
            None => SpanProblem {
                index: Some(e.index),
                request_span: None,
                field: e.field,
                message: e.message,
            },
        }
    }
}

impl fmt::Display for SpanProblem {
    /// `span 2: field `kind`: …`, `spans[2], span 0 of the OTLP request: …`, or the message
    /// alone for the input as a whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, self.request_span) {
            (Some(i), Some(j)) => write!(f, "spans[{i}], span {j} of the OTLP request: ")?,
            (Some(i), None) => write!(f, "span {i}: ")?,
            (None, _) => {}
        }
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// One part of the input, in input order.
#[derive(Debug)]
enum Part {
    /// A converted SDK span.
    Span(Span),
    /// A simple-JSON span object, element `index` of an array.
    SimpleSpan {
        index: usize,
        value: Value,
    },
    /// An OTLP/JSON request; `element` is its array position, `None` when given alone.
    OtlpJson {
        element: Option<usize>,
        value: Value,
    },
    /// OTLP protobuf bytes; `element` as for `OtlpJson`.
    OtlpProtobuf {
        element: Option<usize>,
        bytes: Vec<u8>,
    },
    /// A JSON document given alone: a request, `{spans: [...]}` or one simple-JSON span.
    Json(Value),
    Invalid(SpanProblem),
}

/// Spans read from JavaScript, not yet decoded. `Send`: decoding may run off the JavaScript
/// thread.
#[derive(Debug)]
pub(crate) struct SpanInput {
    parts: Vec<Part>,
}

/// The result of [`SpanInput::decode`]: all spans, or every problem found.
pub(crate) type Decode = Result<Vec<Span>, Vec<SpanProblem>>;

impl SpanInput {
    /// Reads `value` (shapes in the module documentation). Errors are Node-API failures, such
    /// as an exception thrown by a getter; problems with the data are kept for
    /// [`SpanInput::decode`].
    pub(crate) fn read(env: &Env, value: Unknown<'_>) -> napi::Result<SpanInput> {
        let mut reader = SdkReader::new(env)?;
        let mut parts = Vec::new();
        match Js::read(value)? {
            Js::Array(array) => {
                let read = crate::batch::read(env, &array)?;
                let len = array.get_array_length()?;
                parts.reserve(len as usize);
                let mut read = read.map(Vec::into_iter);
                for i in 0..len {
                    parts.push(match read.as_mut().and_then(Iterator::next).flatten() {
                        Some(Ok(span)) => Part::Span(span),
                        Some(Err(p)) => Part::Invalid(SpanProblem::at(i as usize, p)),
                        None => reader.element(i as usize, array.get_element::<Unknown>(i)?)?,
                    });
                }
            }
            Js::Bytes(bytes) => parts.push(Part::OtlpProtobuf {
                element: None,
                bytes: bytes.to_vec(),
            }),
            Js::Object(object) => {
                if let Some(method) = reader.span_context_method(&object)? {
                    parts.push(reader.span_part(0, &object, method)?);
                } else {
                    parts.push(match to_json(value) {
                        Ok(v) => Part::Json(v),
                        Err(ReadError::Data(p)) => Part::Invalid(SpanProblem::input(format!(
                            "{}{}",
                            field_prefix(&p.path),
                            p.message
                        ))),
                        Err(ReadError::Napi(e)) => return Err(e),
                    });
                }
            }
            other => parts.push(Part::Invalid(SpanProblem::input(format!(
                "expected an array of spans, an OTLP/JSON request object or a Buffer of OTLP protobuf, found {}",
                other.describe()
            )))),
        }
        Ok(SpanInput { parts })
    }

    /// Decodes every part: all spans in input order, or every problem (of every part).
    pub(crate) fn decode(self) -> Decode {
        let mut spans = Vec::new();
        let mut problems = Vec::new();
        let mut simple = SimpleJsonDecoder::new();
        let mut take = |decoded: Decoded, element: Option<usize>, problems: &mut Vec<_>| {
            spans.extend(decoded.spans);
            problems.extend(
                decoded
                    .rejected
                    .into_iter()
                    .map(|e| SpanProblem::from_core(e, element)),
            );
        };
        for part in self.parts {
            let decoded = match part {
                Part::Span(span) => Ok((Decoded::one(span), None)),
                Part::SimpleSpan { index, value } => match simple.decode_span(index, &value) {
                    Ok(span) => Ok((Decoded::one(span), None)),
                    Err(e) => Err(SpanProblem::from_core(e, None)),
                },
                Part::OtlpJson { element, value } => decode_otlp_json_value(&value)
                    .map(|d| (d, element))
                    .map_err(|e| whole_request(element, e.to_string())),
                Part::OtlpProtobuf { element, bytes } => decode_otlp_protobuf(&bytes)
                    .map(|d| (d, element))
                    .map_err(|e| whole_request(element, e.to_string())),
                Part::Json(value) => decode_json(&value)
                    .map(|d| (d, None))
                    .map_err(|e| SpanProblem::input(e.to_string())),
                Part::Invalid(p) => Err(p),
            };
            match decoded {
                Ok((decoded, element)) => take(decoded, element, &mut problems),
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() {
            Ok(spans)
        } else {
            Err(problems)
        }
    }
}

trait DecodedExt {
    fn one(span: Span) -> Decoded;
}

impl DecodedExt for Decoded {
    fn one(span: Span) -> Decoded {
        Decoded {
            spans: vec![span],
            ..Decoded::default()
        }
    }
}

fn whole_request(element: Option<usize>, message: String) -> SpanProblem {
    SpanProblem {
        index: element,
        request_span: None,
        field: String::new(),
        message,
    }
}

fn field_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("field `{path}`: ")
    }
}

/// The property names an SDK span is read with, created once per call: looking a property up
/// by a JavaScript string is cheaper than by a C string, which is converted on every lookup.
struct Keys<'e> {
    span_context: JsString<'e>,
    trace_id: JsString<'e>,
    span_id: JsString<'e>,
    parent_span_context: JsString<'e>,
    parent_span_id: JsString<'e>,
    name: JsString<'e>,
    kind: JsString<'e>,
    status: JsString<'e>,
    code: JsString<'e>,
    message: JsString<'e>,
    start_time: JsString<'e>,
    end_time: JsString<'e>,
    attributes: JsString<'e>,
    resource: JsString<'e>,
    instrumentation_scope: JsString<'e>,
    instrumentation_library: JsString<'e>,
}

impl<'e> Keys<'e> {
    fn new(env: &'e Env) -> napi::Result<Keys<'e>> {
        Ok(Keys {
            span_context: env.create_string("spanContext")?,
            trace_id: env.create_string("traceId")?,
            span_id: env.create_string("spanId")?,
            parent_span_context: env.create_string("parentSpanContext")?,
            parent_span_id: env.create_string("parentSpanId")?,
            name: env.create_string("name")?,
            kind: env.create_string("kind")?,
            status: env.create_string("status")?,
            code: env.create_string("code")?,
            message: env.create_string("message")?,
            start_time: env.create_string("startTime")?,
            end_time: env.create_string("endTime")?,
            attributes: env.create_string("attributes")?,
            resource: env.create_string("resource")?,
            instrumentation_scope: env.create_string("instrumentationScope")?,
            instrumentation_library: env.create_string("instrumentationLibrary")?,
        })
    }
}

/// The property `key` of `object`, unread.
fn prop<'e>(object: &Object<'e>, key: JsString<'e>) -> napi::Result<Unknown<'e>> {
    object.get_property::<JsString, Unknown>(key)
}

/// `value` as a string, or what it is instead.
fn string_or<'e>(value: Unknown<'e>) -> napi::Result<Result<String, Js<'e>>> {
    match String::from_unknown(value) {
        Ok(s) => Ok(Ok(s)),
        Err(_) => Js::read(value).map(Err),
    }
}

/// `value` as a number, or what it is instead.
fn number_or<'e>(value: Unknown<'e>) -> napi::Result<Result<f64, Js<'e>>> {
    match f64::from_unknown(value) {
        Ok(n) => Ok(Ok(n)),
        Err(_) => Js::read(value).map(Err),
    }
}

/// `value` as an object (arrays included), `None` for `null`/`undefined`, or what it is.
fn object_or<'e>(value: Unknown<'e>) -> napi::Result<Result<Option<Object<'e>>, Js<'e>>> {
    match value.get_type()? {
        napi::ValueType::Object => Ok(Ok(Some(Object::from_unknown(value)?))),
        napi::ValueType::Undefined | napi::ValueType::Null => Ok(Ok(None)),
        _ => Js::read(value).map(Err),
    }
}

/// Reads SDK spans, remembering the last resource object to share its conversion.
struct SdkReader<'a> {
    env: &'a Env,
    keys: Keys<'a>,
    last_resource: Option<(Object<'a>, Arc<Resource>)>,
}

impl<'a> SdkReader<'a> {
    fn new(env: &'a Env) -> napi::Result<SdkReader<'a>> {
        Ok(SdkReader {
            env,
            keys: Keys::new(env)?,
            last_resource: None,
        })
    }

    /// The `spanContext` method of `object` when it is an SDK `ReadableSpan`.
    fn span_context_method(&self, object: &Object<'a>) -> napi::Result<Option<Unknown<'a>>> {
        let method = prop(object, self.keys.span_context)?;
        Ok((method.get_type()? == napi::ValueType::Function).then_some(method))
    }

    /// One array element.
    fn element(&mut self, index: usize, item: Unknown<'a>) -> napi::Result<Part> {
        let js = Js::read(item)?;
        let object = match js {
            Js::Object(object) => object,
            Js::Bytes(bytes) => {
                return Ok(Part::OtlpProtobuf {
                    element: Some(index),
                    bytes: bytes.to_vec(),
                });
            }
            other => {
                return Ok(Part::Invalid(SpanProblem::at(
                    index,
                    Problem::new(
                        "",
                        format!(
                            "expected a span object, an OTLP/JSON request or a Buffer of OTLP protobuf, found {}",
                            other.describe()
                        ),
                    ),
                )));
            }
        };
        if let Some(method) = self.span_context_method(&object)? {
            return self.span_part(index, &object, method);
        }
        let is_request = object.has_named_property("resourceSpans")?
            || object.has_named_property("resource_spans")?;
        Ok(match to_json(item) {
            Ok(value) if is_request => Part::OtlpJson {
                element: Some(index),
                value,
            },
            Ok(value) => Part::SimpleSpan { index, value },
            Err(ReadError::Data(p)) => Part::Invalid(SpanProblem::at(index, p)),
            Err(ReadError::Napi(e)) => return Err(e),
        })
    }

    fn span_part(
        &mut self,
        index: usize,
        object: &Object<'a>,
        span_context: Unknown<'a>,
    ) -> napi::Result<Part> {
        match self.sdk_span(object, span_context) {
            Ok(span) => Ok(Part::Span(span)),
            Err(ReadError::Data(p)) => Ok(Part::Invalid(SpanProblem::at(index, p))),
            Err(ReadError::Napi(e)) => Err(e),
        }
    }

    /// One `ReadableSpan` (fields in the module documentation).
    fn sdk_span(
        &mut self,
        span: &Object<'a>,
        span_context: Unknown<'a>,
    ) -> Result<Span, ReadError> {
        let k = &self.keys;
        let context = Function::<(), Unknown>::from_unknown(span_context)?.apply(span, ())?;
        let context = match object_or(context)? {
            Ok(Some(object)) => object,
            Ok(None) => return Err(type_problem("spanContext()", "an object", &Js::Undefined)),
            Err(other) => return Err(type_problem("spanContext()", "an object", &other)),
        };
        let trace_id = hex_id(prop(&context, k.trace_id)?, "spanContext().traceId")?;
        let span_id = hex_id(prop(&context, k.span_id)?, "spanContext().spanId")?;

        let (parent_field, parent_span_id) = match object_or(prop(span, k.parent_span_context)?)? {
            Ok(Some(parent)) => (
                "parentSpanContext.spanId",
                hex_id(prop(&parent, k.span_id)?, "parentSpanContext.spanId")?,
            ),
            Ok(None) => (
                "parentSpanId",
                hex_id(prop(span, k.parent_span_id)?, "parentSpanId")?,
            ),
            Err(other) => return Err(type_problem("parentSpanContext", "an object", &other)),
        };

        let name = match string_or(prop(span, k.name)?)? {
            Ok(s) => s,
            Err(Js::Undefined | Js::Null) => String::new(),
            Err(other) => return Err(type_problem("name", "a string", &other)),
        };
        let kind = match number_or(prop(span, k.kind)?)? {
            Ok(n) => span_kind(n),
            Err(Js::Undefined | Js::Null) => EnumDraft::Absent,
            Err(other) => return Err(type_problem("kind", "a SpanKind number", &other)),
        };
        let (status_code, status_message) = status(k, prop(span, k.status)?)?;
        let start = hrtime(prop(span, k.start_time)?, "startTime")?;
        let end = hrtime(prop(span, k.end_time)?, "endTime")?;
        let attributes = attributes(prop(span, k.attributes)?, "attributes")?;
        let scope_name = scope_name(k, span)?;
        let resource = self.resource(prop(span, self.keys.resource)?)?;

        let mut draft = SpanDraft {
            trace_id,
            span_id,
            parent_span_id,
            name,
            kind,
            status_code,
            status_message,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            ..SpanDraft::new(InputFormat::NodeSdk, resource, scope_name.into())
        };
        draft.fields.parent_span_id = parent_field;
        Ok(checked(draft)?)
    }

    /// The span's resource; the previous span's when it is the same object.
    fn resource(&mut self, value: Unknown<'a>) -> Result<Arc<Resource>, ReadError> {
        let object = match object_or(value)? {
            Ok(Some(object)) => object,
            Ok(None) => return Ok(Arc::new(Resource::default())),
            Err(other) => return Err(type_problem("resource", "a Resource object", &other)),
        };
        if let Some((last, resource)) = &self.last_resource
            && self.env.strict_equals(*last, object)?
        {
            return Ok(resource.clone());
        }
        let resource = Arc::new(Resource {
            attributes: attributes(prop(&object, self.keys.attributes)?, "resource.attributes")?,
        });
        self.last_resource = Some((object, resource.clone()));
        Ok(resource)
    }
}

fn type_problem(field: &str, expected: &str, found: &Js<'_>) -> ReadError {
    Problem::new(
        field,
        format!("expected {expected}, found {}", found.describe()),
    )
    .into()
}

/// An id written as hex digits; absent (`null`, `undefined`) for none.
fn hex_id(value: Unknown<'_>, field: &str) -> Result<IdDraft<'static>, ReadError> {
    match string_or(value)? {
        Ok(text) => Ok(IdDraft::Hex(text.into())),
        Err(Js::Undefined | Js::Null) => Ok(IdDraft::Absent),
        Err(other) => Err(type_problem(field, "a hex string", &other)),
    }
}

/// The span of a draft, checked by the core (ids, kind, status code).
pub(crate) fn checked(draft: SpanDraft<'_>) -> Result<Span, Problem> {
    draft
        .into_span(0)
        .map_err(|e| Problem::new(e.field, e.message))
}

/// A JS `SpanKind` number (0 INTERNAL … 4 CONSUMER, the OTLP number minus one).
pub(crate) fn span_kind(n: f64) -> EnumDraft<'static> {
    match integral_i64(n) {
        Some(k @ 0..=4) => EnumDraft::Number(k + 1),
        _ => EnumDraft::Unknown(format!("`{n}`")),
    }
}

/// A JS `SpanStatusCode` number (0 UNSET, 1 OK, 2 ERROR, as in OTLP).
pub(crate) fn status_code(n: f64) -> EnumDraft<'static> {
    match integral_i64(n) {
        Some(code) => EnumDraft::Number(code),
        None => EnumDraft::Unknown(format!("`{n}`")),
    }
}

/// `{code, message}`; absent = unset.
fn status(k: &Keys<'_>, value: Unknown<'_>) -> Result<(EnumDraft<'static>, String), ReadError> {
    let object = match object_or(value)? {
        Ok(Some(object)) => object,
        Ok(None) => return Ok((EnumDraft::Absent, String::new())),
        Err(other) => return Err(type_problem("status", "an object", &other)),
    };
    let code = match number_or(prop(&object, k.code)?)? {
        Ok(n) => status_code(n),
        Err(Js::Undefined | Js::Null) => EnumDraft::Absent,
        Err(other) => {
            return Err(type_problem(
                "status.code",
                "a SpanStatusCode number",
                &other,
            ));
        }
    };
    let message = match string_or(prop(&object, k.message)?)? {
        Ok(s) => s,
        Err(Js::Undefined | Js::Null) => String::new(),
        Err(other) => return Err(type_problem("status.message", "a string", &other)),
    };
    Ok((code, message))
}

/// An hrtime `[seconds, nanoseconds]` as Unix nanoseconds; fractions are truncated, as the
/// OTLP exporter does.
fn hrtime(value: Unknown<'_>, field: &str) -> Result<u64, ReadError> {
    let array = match Js::read(value)? {
        Js::Array(array) if array.get_array_length()? == 2 => array,
        other => {
            return Err(type_problem(
                field,
                "an hrtime [seconds, nanoseconds]",
                &other,
            ));
        }
    };
    let part = |i: u32| -> Result<f64, ReadError> {
        match number_or(array.get_element::<Unknown>(i)?)? {
            Ok(n) => Ok(n),
            Err(other) => Err(Problem::new(
                format!("{field}[{i}]"),
                format!("expected a non-negative number, found {}", other.describe()),
            )
            .into()),
        }
    };
    let (seconds, nanos) = (part(0)?, part(1)?);
    Ok(hrtime_parts(field, seconds, nanos)?)
}

/// Unix nanoseconds of the hrtime `[seconds, nanos]` read from `field`; fractions truncated.
pub(crate) fn hrtime_parts(field: &str, seconds: f64, nanos: f64) -> Result<u64, Problem> {
    for (i, n) in [seconds, nanos].into_iter().enumerate() {
        if !(n.is_finite() && n >= 0.0) {
            return Err(Problem::new(
                format!("{field}[{i}]"),
                format!("expected a non-negative number, found `{n}`"),
            ));
        }
    }
    hrtime_nanos(seconds.trunc(), nanos.trunc())
        .ok_or_else(|| Problem::new(field, "beyond the range of Unix nanoseconds (u64)"))
}

/// `seconds * 10^9 + nanos` for whole non-negative numbers, `None` past u64.
fn hrtime_nanos(seconds: f64, nanos: f64) -> Option<u64> {
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    if !(0.0..LIMIT).contains(&seconds) || !(0.0..LIMIT).contains(&nanos) {
        return None;
    }
    (seconds as u64)
        .checked_mul(1_000_000_000)?
        .checked_add(nanos as u64)
}

/// `instrumentationScope.name` (2.x) or `instrumentationLibrary.name` (1.x), `""` when absent.
fn scope_name(k: &Keys<'_>, span: &Object<'_>) -> Result<String, ReadError> {
    for (key, field) in [
        (k.instrumentation_scope, "instrumentationScope"),
        (k.instrumentation_library, "instrumentationLibrary"),
    ] {
        match object_or(prop(span, key)?)? {
            Ok(Some(scope)) => {
                return match string_or(prop(&scope, k.name)?)? {
                    Ok(s) => Ok(s),
                    Err(Js::Undefined | Js::Null) => Ok(String::new()),
                    Err(other) => Err(type_problem(&format!("{field}.name"), "a string", &other)),
                };
            }
            Ok(None) => {}
            Err(other) => return Err(type_problem(field, "an object", &other)),
        }
    }
    Ok(String::new())
}

/// An SDK attributes object; absent = none.
fn attributes(value: Unknown<'_>, field: &str) -> Result<Attributes, ReadError> {
    let object = match object_or(value)? {
        Ok(Some(object)) => object,
        Ok(None) => return Ok(Attributes::new()),
        Err(other) => return Err(type_problem(field, "an object", &other)),
    };
    let props = properties(&object)?;
    let mut out = Attributes::with_capacity(props.len());
    for (key, item) in props {
        match attr_value(item, 0) {
            Ok(Some(v)) => out.push((key.into(), v)),
            Ok(None) => {}
            Err(e) => return Err(e.under(&key).under(field)),
        }
    }
    Ok(out)
}

/// One attribute value (module documentation); `None` for `null`/`undefined`.
fn attr_value(value: Unknown<'_>, depth: usize) -> Result<Option<AttrValue>, ReadError> {
    Ok(Some(match Js::read(value)? {
        Js::Undefined | Js::Null => return Ok(None),
        Js::String(s) => AttrValue::Str(s.into()),
        Js::Bool(b) => AttrValue::Bool(b),
        Js::Number(n) => match integral_i64(n) {
            Some(i) => AttrValue::Int(i),
            None => AttrValue::Float(n),
        },
        Js::BigInt(b) => AttrValue::Int(
            bigint_i64(&b).ok_or_else(|| Problem::new("", "a BigInt beyond the range of i64"))?,
        ),
        Js::Bytes(bytes) => AttrValue::Bytes(bytes.to_vec().into()),
        Js::Array(array) => {
            check_depth(depth)?;
            let len = array.get_array_length()?;
            let mut items = Vec::with_capacity(len as usize);
            for i in 0..len {
                let item = array.get_element::<Unknown>(i)?;
                if let Some(v) =
                    attr_value(item, depth + 1).map_err(|e| e.under(&format!("[{i}]")))?
                {
                    items.push(v);
                }
            }
            AttrValue::Array(items.into())
        }
        Js::Object(object) => {
            check_depth(depth)?;
            let mut items = Vec::new();
            for (key, item) in properties(&object)? {
                if let Some(v) = attr_value(item, depth + 1).map_err(|e| e.under(&key))? {
                    items.push((key, v));
                }
            }
            AttrValue::KvList(items.into_iter().map(|(k, v)| (k.into(), v)).collect())
        }
        other => {
            return Err(Problem::new(
                "",
                format!("{} is not a valid attribute value", other.describe()),
            )
            .into());
        }
    }))
}

fn check_depth(depth: usize) -> Result<(), Problem> {
    if depth >= MAX_ATTRIBUTE_DEPTH {
        return Err(Problem::new(
            "",
            format!("values are nested deeper than {MAX_ATTRIBUTE_DEPTH} levels"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_nesting_stops_where_the_core_readers_stop() {
        assert_eq!(MAX_ATTRIBUTE_DEPTH, 30);
        assert!(check_depth(MAX_ATTRIBUTE_DEPTH - 1).is_ok());
        assert!(check_depth(MAX_ATTRIBUTE_DEPTH).is_err());
    }

    #[test]
    fn hrtime_to_unix_nanos() {
        assert_eq!(
            hrtime_nanos(1_700_000_000.0, 123_456_789.0),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(hrtime_nanos(0.0, 0.0), Some(0));
        assert_eq!(hrtime_nanos(1e12, 0.0), None);
        assert_eq!(hrtime_nanos(-1.0, 0.0), None);
    }

    #[test]
    fn problems_name_the_span_and_field() {
        let p = SpanProblem::at(2, Problem::new("kind", "unknown span kind `9`"));
        assert_eq!(p.to_string(), "span 2: field `kind`: unknown span kind `9`");
        let p = SpanProblem::from_core(SpanError::new(3, "", "bad id"), Some(1));
        assert_eq!(
            p.to_string(),
            "spans[1], span 3 of the OTLP request: bad id"
        );
        let p = SpanProblem::from_core(SpanError::new(3, "kind", "bad"), None);
        assert_eq!(p.to_string(), "span 3: field `kind`: bad");
        assert_eq!(SpanProblem::input("not spans").to_string(), "not spans");
    }

    #[test]
    fn decoding_keeps_order_and_reports_every_problem() {
        let simple = |id: &str| {
            serde_json::json!({
                "traceId": "0000000000000000000000000000000a", "spanId": id,
                "name": "x", "startTime": 1, "endTime": 2
            })
        };
        let input = SpanInput {
            parts: vec![
                Part::SimpleSpan {
                    index: 0,
                    value: simple("00000000000000a1"),
                },
                Part::SimpleSpan {
                    index: 1,
                    value: serde_json::json!({"spanId": "x"}),
                },
                Part::OtlpProtobuf {
                    element: Some(2),
                    bytes: vec![0xff, 0xff],
                },
                Part::SimpleSpan {
                    index: 3,
                    value: simple("00000000000000a2"),
                },
            ],
        };
        let problems = input.decode().unwrap_err();
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].index, Some(1));
        assert_eq!(problems[0].field, "startTime");
        assert_eq!(problems[1].index, Some(2));

        let input = SpanInput {
            parts: vec![
                Part::SimpleSpan {
                    index: 0,
                    value: simple("00000000000000b2"),
                },
                Part::SimpleSpan {
                    index: 1,
                    value: simple("00000000000000b1"),
                },
            ],
        };
        let spans = input.decode().unwrap();
        assert_eq!(spans[0].span_id.to_hex(), "00000000000000b2");
        assert_eq!(spans[1].span_id.to_hex(), "00000000000000b1");
    }
}
