//! Span input of `Engine.evaluate` and `check` (BINDINGS.md, Python: "`spans` may be …").
//!
//! In: one Python value — OTLP protobuf `bytes` (also `bytearray`, `memoryview`), an OTLP/JSON
//! dict (`{"resourceSpans": …}`), a simple-JSON dict (`{"spans": [...]}` or one span), or an
//! iterable whose items are OpenTelemetry SDK `ReadableSpan` objects, simple-JSON span dicts,
//! OTLP/JSON dicts or protobuf bytes, mixed. Out: core [`Span`]s, or every [`SpanError`] in
//! input order.
//!
//! The work is split so that the interpreter lock is held only while Python objects are read:
//! [`collect`] (lock held) turns SDK span objects into [`Span`]s and copies dicts and bytes into
//! [`Piece`]s; [`decode`] (lock released) runs the core decoders on the pieces.
//!
//! Span indices count every span of the input in order, from 0: an SDK span or a simple-JSON
//! dict is one span, an OTLP item (dict or bytes) as many as it holds, in document order. An
//! OTLP item that cannot be read at all fails at the index its first span would have had, and
//! ends the input: the spans after it have no index to name them by.
//!
//! SDK span fields read (opentelemetry-sdk `ReadableSpan`) into a [`SpanDraft`], checked by
//! the core's [`SpanDraft::into_span`] (ids, kind, status code, with the core's wording):
//! `context.trace_id` / `context.span_id` (ints, 128 and 64 bits, not zero), `parent` (a span
//! context or `None`; span id 0 is a root, as in OTLP), `name`, `kind` (`SpanKind` member, by
//! name), `status` (`status_code` by name, `description`), `start_time` / `end_time` (Unix ns; a span that has
//! not ended is an error), `attributes`, `resource.attributes` (one shared resource per
//! resource object) and `instrumentation_scope.name`. Attribute values: `str`, `bool`, `int`
//! (beyond i64: a float, as in simple JSON), `float`, `bytes`, sequences of these (`None`
//! items dropped, as OTLP drops empty values) and mappings (key-value lists).

use std::collections::HashMap;
use std::sync::Arc;

use betrace_core::input::MAX_VALUE_DEPTH;
use betrace_core::{
    AttrValue, Attributes, Decoded, EnumDraft, IdDraft, InputFormat, JsonInputError, Resource,
    SimpleJsonDecoder, Span, SpanDraft, SpanError,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{
    PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMapping, PyMemoryView, PyString,
    PyTuple,
};
use pyo3::{PyTypeInfo, intern};
use serde_json::Value;

use crate::json::{self, type_name};

/// One item of the input, read while the interpreter lock is held.
#[derive(Debug)]
pub enum Piece {
    /// One converted SDK span.
    Span(Span),
    /// One simple-JSON span object.
    Simple(Value),
    /// A JSON document for [`betrace_core::decode_json`] (OTLP/JSON, `{"spans": [...]}`).
    Document(Value),
    /// OTLP protobuf bytes.
    Protobuf(Vec<u8>),
    /// A one-span item that could not be read; `index` is relative to the item (0).
    Invalid(SpanError),
    /// An OTLP item that could not be read at all (how many spans it holds is unknown).
    Unreadable(SpanError),
}

/// Reads `spans` into pieces. Errors: `TypeError` when `spans` is none of the accepted shapes
/// (a `str`, an `int`, …). A bad span becomes [`Piece::Invalid`]; an OTLP item that cannot be
/// read becomes [`Piece::Unreadable`] and ends the collection.
pub fn collect(spans: &Bound<'_, PyAny>) -> PyResult<Vec<Piece>> {
    let py = spans.py();
    if let Some(bytes) = bytes_of(spans)? {
        return Ok(vec![Piece::Protobuf(bytes)]);
    }
    if spans.is_instance_of::<PyDict>() {
        return Ok(vec![document_piece(spans)]);
    }
    if spans.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "spans must be OpenTelemetry ReadableSpan objects, dicts or OTLP protobuf bytes, not a str (parse JSON text with json.loads first)",
        ));
    }
    let iter = spans.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "spans must be an iterable of OpenTelemetry ReadableSpan objects or dicts, an OTLP/JSON dict, or OTLP protobuf bytes; found `{}`",
            type_name(spans)
        ))
    })?;
    let mut sdk = SdkReader::new(py);
    let mut out = Vec::new();
    for item in iter {
        let item = item?;
        let piece = if let Some(bytes) = bytes_of(&item)? {
            Piece::Protobuf(bytes)
        } else if let Ok(d) = item.cast::<PyDict>() {
            if d.contains(intern!(py, "resourceSpans"))?
                || d.contains(intern!(py, "resource_spans"))?
            {
                document_piece(&item)
            } else {
                simple_piece(&item)
            }
        } else {
            match item.getattr_opt(intern!(py, "context"))? {
                Some(context) => match sdk.span(&item, &context) {
                    Ok(span) => Piece::Span(span),
                    Err(e) => Piece::Invalid(e),
                },
                None if item.is_instance_of::<PyMapping>() => simple_piece(&item),
                None => Piece::Invalid(SpanError::new(
                    0,
                    "",
                    format!(
                        "expected an OpenTelemetry ReadableSpan, a dict or bytes, found `{}`",
                        type_name(&item)
                    ),
                )),
            }
        };
        let stop = matches!(piece, Piece::Unreadable(_));
        out.push(piece);
        if stop {
            break;
        }
    }
    Ok(out)
}

/// Decodes the pieces (no Python object involved; run it with the lock released). Errors:
/// every bad span in input order, indices counted over the whole input, up to and including
/// an OTLP item that cannot be read at all.
pub fn decode(pieces: Vec<Piece>) -> Result<Vec<Span>, Vec<SpanError>> {
    let mut spans = Vec::with_capacity(pieces.len());
    let mut errors = Vec::new();
    let mut simple = SimpleJsonDecoder::new();
    let mut offset = 0usize;
    for piece in pieces {
        match piece {
            Piece::Span(span) => {
                spans.push(span);
                offset += 1;
            }
            Piece::Simple(value) => {
                match simple.decode_span(offset, &value) {
                    Ok(span) => spans.push(span),
                    Err(e) => errors.push(e),
                }
                offset += 1;
            }
            Piece::Invalid(e) => {
                errors.push(shift(e, offset));
                offset += 1;
            }
            Piece::Unreadable(e) => {
                errors.push(shift(e, offset));
                break;
            }
            Piece::Protobuf(bytes) => match betrace_core::decode_otlp_protobuf(&bytes) {
                Ok(decoded) => offset = take(decoded, offset, &mut spans, &mut errors),
                Err(e) => {
                    errors.push(SpanError::new(offset, "", e.to_string()));
                    break;
                }
            },
            Piece::Document(value) => match betrace_core::decode_json(&value) {
                Ok(decoded) => offset = take(decoded, offset, &mut spans, &mut errors),
                Err(e) => {
                    errors.push(match e {
                        JsonInputError::Simple(betrace_core::SimpleJsonError::Span(e)) => {
                            shift(e, offset)
                        }
                        other => SpanError::new(offset, "", other.to_string()),
                    });
                    break;
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(spans)
    } else {
        Err(errors)
    }
}

fn shift(mut e: SpanError, offset: usize) -> SpanError {
    e.index += offset;
    e
}

/// Appends the spans and the rejected spans of one decoded item. Returns the offset after the
/// item.
fn take(
    decoded: Decoded,
    offset: usize,
    spans: &mut Vec<Span>,
    errors: &mut Vec<SpanError>,
) -> usize {
    let total = decoded.total();
    errors.extend(decoded.rejected.into_iter().map(|e| shift(e, offset)));
    spans.extend(decoded.spans);
    offset + total
}

fn bytes_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Some(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Some(b.to_vec()));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        let bytes = PyBytes::type_object(obj.py()).call1((obj,))?;
        return Ok(Some(bytes.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    Ok(None)
}

fn document_piece(obj: &Bound<'_, PyAny>) -> Piece {
    match json::to_json(obj, &mut String::new()) {
        Ok(v) => Piece::Document(v),
        Err(e) => Piece::Unreadable(SpanError::new(0, e.path, e.message)),
    }
}

fn simple_piece(obj: &Bound<'_, PyAny>) -> Piece {
    match json::to_json(obj, &mut String::new()) {
        Ok(v) => Piece::Simple(v),
        Err(e) => Piece::Invalid(SpanError::new(0, e.path, e.message)),
    }
}

/// Converts SDK span objects, sharing one `Arc<Resource>` per resource object.
struct SdkReader<'py> {
    py: Python<'py>,
    /// By object address; the object is kept so the address is not reused meanwhile.
    resources: HashMap<usize, (Bound<'py, PyAny>, Arc<Resource>)>,
    scopes: HashMap<usize, (Bound<'py, PyAny>, String)>,
}

impl<'py> SdkReader<'py> {
    fn new(py: Python<'py>) -> SdkReader<'py> {
        SdkReader {
            py,
            resources: HashMap::new(),
            scopes: HashMap::new(),
        }
    }

    /// One SDK span; errors are relative to the item (index 0).
    fn span(
        &mut self,
        obj: &Bound<'py, PyAny>,
        context: &Bound<'py, PyAny>,
    ) -> Result<Span, SpanError> {
        let py = self.py;
        if context.is_none() {
            return Err(err("context", "the span has no span context"));
        }
        let trace_id: u128 = get(context, intern!(py, "trace_id"), "context.trace_id")?
            .extract()
            .map_err(|_| err("context.trace_id", "expected an int of 128 bits"))?;
        let span_id = read_span_id(context, "context.span_id")?;
        let parent = get(obj, intern!(py, "parent"), "parent")?;
        let parent_span_id = if parent.is_none() {
            IdDraft::Absent
        } else {
            read_span_id(&parent, "parent.span_id")?
        };
        let name = string(&get(obj, intern!(py, "name"), "name")?, "name")?;
        let kind =
            EnumDraft::Name(member_name(&get(obj, intern!(py, "kind"), "kind")?, "kind")?.into());
        let (status_code, status_message) = status(&get(obj, intern!(py, "status"), "status")?)?;
        let start = nanos(
            &get(obj, intern!(py, "start_time"), "start_time")?,
            "start_time",
        )?;
        let end = nanos(&get(obj, intern!(py, "end_time"), "end_time")?, "end_time")?;
        let attributes = attributes(
            &get(obj, intern!(py, "attributes"), "attributes")?,
            "attributes",
        )?;
        let resource = self.resource(&get(obj, intern!(py, "resource"), "resource")?)?;
        let scope_name = match obj.getattr_opt(intern!(py, "instrumentation_scope")) {
            Ok(Some(scope)) => self.scope_name(scope)?,
            _ => String::new(),
        };
        SpanDraft {
            trace_id: IdDraft::Bytes(trace_id.to_be_bytes().to_vec().into()),
            span_id,
            parent_span_id,
            name,
            kind,
            status_code,
            status_message,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            ..SpanDraft::new(InputFormat::PythonSdk, resource, scope_name.into())
        }
        .into_span(0)
    }

    fn resource(&mut self, obj: &Bound<'py, PyAny>) -> Result<Arc<Resource>, SpanError> {
        if obj.is_none() {
            return Ok(Arc::new(Resource::default()));
        }
        let key = obj.as_ptr() as usize;
        if let Some((_, r)) = self.resources.get(&key) {
            return Ok(r.clone());
        }
        let attrs = get(obj, intern!(self.py, "attributes"), "resource.attributes")?;
        let resource = Arc::new(Resource {
            attributes: attributes(&attrs, "resource.attributes")?,
        });
        self.resources.insert(key, (obj.clone(), resource.clone()));
        Ok(resource)
    }

    fn scope_name(&mut self, scope: Bound<'py, PyAny>) -> Result<String, SpanError> {
        if scope.is_none() {
            return Ok(String::new());
        }
        let key = scope.as_ptr() as usize;
        if let Some((_, name)) = self.scopes.get(&key) {
            return Ok(name.clone());
        }
        let name = get(
            &scope,
            intern!(self.py, "name"),
            "instrumentation_scope.name",
        )?;
        let name = if name.is_none() {
            String::new()
        } else {
            string(&name, "instrumentation_scope.name")?
        };
        self.scopes.insert(key, (scope, name.clone()));
        Ok(name)
    }
}

fn err(field: &str, message: impl Into<String>) -> SpanError {
    SpanError::new(0, field, message)
}

/// `obj.<attr>`; a missing attribute or one whose getter raises is an error naming `field`.
fn get<'py>(
    obj: &Bound<'py, PyAny>,
    attr: &Bound<'py, PyString>,
    field: &str,
) -> Result<Bound<'py, PyAny>, SpanError> {
    obj.getattr(attr)
        .map_err(|e| err(field, format!("cannot be read: {e}")))
}

fn read_span_id(context: &Bound<'_, PyAny>, field: &str) -> Result<IdDraft<'static>, SpanError> {
    let id: u64 = get(context, intern!(context.py(), "span_id"), field)?
        .extract()
        .map_err(|_| err(field, "expected an int of 64 bits"))?;
    Ok(IdDraft::Bytes(id.to_be_bytes().to_vec().into()))
}

fn string(obj: &Bound<'_, PyAny>, field: &str) -> Result<String, SpanError> {
    match obj.cast::<PyString>() {
        Ok(s) => s
            .to_cow()
            .map(|s| s.into_owned())
            .map_err(|e| err(field, format!("not valid Unicode: {e}"))),
        Err(_) => Err(err(
            field,
            format!("expected a str, found `{}`", type_name(obj)),
        )),
    }
}

fn nanos(obj: &Bound<'_, PyAny>, field: &str) -> Result<u64, SpanError> {
    if obj.is_none() {
        return Err(err(
            field,
            "missing: the span has not ended (end it before evaluating)",
        ));
    }
    obj.extract::<u64>().map_err(|_| {
        err(
            field,
            format!(
                "expected Unix nanoseconds as a non-negative int, found `{}`",
                obj.repr().map(|r| r.to_string()).unwrap_or_default()
            ),
        )
    })
}

/// The name of an enum member (`SpanKind.SERVER` → `SERVER`).
fn member_name(obj: &Bound<'_, PyAny>, field: &str) -> Result<String, SpanError> {
    let name = get(obj, intern!(obj.py(), "name"), field)?;
    string(&name, field)
}

fn status(obj: &Bound<'_, PyAny>) -> Result<(EnumDraft<'static>, String), SpanError> {
    if obj.is_none() {
        return Ok((EnumDraft::Absent, String::new()));
    }
    let py = obj.py();
    let code = get(obj, intern!(py, "status_code"), "status.status_code")?;
    let code = EnumDraft::Name(member_name(&code, "status.status_code")?.into());
    let description = get(obj, intern!(py, "description"), "status.description")?;
    let message = if description.is_none() {
        String::new()
    } else {
        string(&description, "status.description")?
    };
    Ok((code, message))
}

/// A mapping of attributes (`None` = no attributes); `field` prefixes the key in errors.
fn attributes(obj: &Bound<'_, PyAny>, field: &str) -> Result<Attributes, SpanError> {
    if obj.is_none() {
        return Ok(Attributes::new());
    }
    let mut out = Attributes::new();
    let mut add = |k: Bound<'_, PyAny>, v: Bound<'_, PyAny>| -> Result<(), SpanError> {
        let key = string(&k, field)?;
        let path = || format!("{field}.{key}");
        match attr_value(&v, 0) {
            Ok(Some(value)) => out.push((key.into(), value)),
            Ok(None) => {}
            Err(message) => return Err(err(&path(), message)),
        }
        Ok(())
    };
    if let Ok(d) = obj.cast::<PyDict>() {
        for (k, v) in d.iter() {
            add(k, v)?;
        }
        return Ok(out);
    }
    let mapping = obj.cast::<PyMapping>().map_err(|_| {
        err(
            field,
            format!("expected a mapping, found `{}`", type_name(obj)),
        )
    })?;
    let items = mapping
        .items()
        .map_err(|e| err(field, format!("cannot be read: {e}")))?;
    for pair in items.iter() {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair
            .extract()
            .map_err(|e| err(field, format!("cannot be read: {e}")))?;
        add(k, v)?;
    }
    Ok(out)
}

/// One attribute value; `None` for a `None` value (dropped).
fn attr_value(v: &Bound<'_, PyAny>, depth: usize) -> Result<Option<AttrValue>, String> {
    if v.is_none() {
        return Ok(None);
    }
    if let Ok(s) = v.cast::<PyString>() {
        return s
            .to_cow()
            .map(|s| Some(AttrValue::Str(s.into_owned().into())))
            .map_err(|e| format!("a string that is not valid Unicode: {e}"));
    }
    if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        return Ok(Some(AttrValue::Bool(b.is_true())));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Some(AttrValue::Int(i)));
        }
        return v
            .extract::<f64>()
            .map(|f| Some(AttrValue::Float(f)))
            .map_err(|_| "an integer beyond the range of a float".to_owned());
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Some(AttrValue::Float(f.value())));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(Some(AttrValue::Bytes(b.as_bytes().into())));
    }
    if depth >= MAX_VALUE_DEPTH {
        return Err(format!(
            "values are nested deeper than {MAX_VALUE_DEPTH} levels"
        ));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in v.try_iter().map_err(|e| e.to_string())? {
            let item = item.map_err(|e| e.to_string())?;
            if let Some(value) = attr_value(&item, depth + 1)? {
                out.push(value);
            }
        }
        return Ok(Some(AttrValue::Array(out.into())));
    }
    if let Ok(m) = v.cast::<PyMapping>() {
        let mut out = Vec::new();
        for pair in m.items().map_err(|e| e.to_string())?.iter() {
            let (k, item): (String, Bound<'_, PyAny>) = pair
                .extract()
                .map_err(|_| "a mapping value needs string keys".to_owned())?;
            if let Some(value) = attr_value(&item, depth + 1)? {
                out.push((k.into(), value));
            }
        }
        return Ok(Some(AttrValue::KvList(out.into())));
    }
    Err(format!(
        "a value of type `{}` is not a valid attribute value",
        type_name(v)
    ))
}
