//! OTLP protobuf requests cut down to what prost can decode, for attribute values nested past
//! its recursion limit.
//!
//! prost decodes nested messages recursively and refuses a message nested deeper than 100
//! levels (every `AnyValue` level is two: the value and its `ArrayValue` or `KeyValueList`),
//! which would fail a whole `ExportTraceServiceRequest` for one attribute. prost has no public
//! way to skip such a field, so this pass walks the protobuf wire format (protobuf
//! "Encoding": varint keys, length-delimited submessages) itself, bounded by
//! [`MAX_VALUE_DEPTH`], never recursing further.
//!
//! In: the bytes of an `ExportTraceServiceRequest`. Out: the same request without every
//! resource and span attribute whose value nests deeper than [`MAX_VALUE_DEPTH`], without
//! scope attributes, span events and span links holding such values (the converter reads none
//! of them), and with one [`SpanError`] per attribute removed (span index in document order,
//! `resource.attributes.<key>` or `attributes.<key>`). `None` when the bytes are not
//! well-formed protobuf.

use super::{MAX_VALUE_DEPTH, SpanError, deep_attribute};

/// Field numbers of `opentelemetry.proto` messages (trace/v1, common/v1, resource/v1).
mod tag {
    pub const REQUEST_RESOURCE_SPANS: u32 = 1;
    pub const RESOURCE_SPANS_RESOURCE: u32 = 1;
    pub const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
    /// Pre-1.0 `instrumentation_library_spans`, laid out like `ScopeSpans`.
    pub const RESOURCE_SPANS_LEGACY_SCOPE_SPANS: u32 = 1000;
    pub const RESOURCE_ATTRIBUTES: u32 = 1;
    pub const SCOPE_SPANS_SCOPE: u32 = 1;
    pub const SCOPE_SPANS_SPANS: u32 = 2;
    pub const SCOPE_ATTRIBUTES: u32 = 3;
    pub const SPAN_ATTRIBUTES: u32 = 9;
    pub const SPAN_EVENTS: u32 = 11;
    pub const SPAN_LINKS: u32 = 13;
    pub const KEY_VALUE_KEY: u32 = 1;
    pub const KEY_VALUE_VALUE: u32 = 2;
    pub const ANY_VALUE_ARRAY: u32 = 5;
    pub const ANY_VALUE_KVLIST: u32 = 6;
    pub const LIST_VALUES: u32 = 1;
}

const LEN: u8 = 2;

/// One field of a message: its number, wire type, the whole field as encoded (key included)
/// and, for a length-delimited field, its payload.
struct Field<'a> {
    number: u32,
    wire_type: u8,
    raw: &'a [u8],
    payload: &'a [u8],
}

impl Field<'_> {
    fn is_message(&self, number: u32) -> bool {
        self.number == number && self.wire_type == LEN
    }
}

/// The fields of a message, in order; `None` for malformed bytes.
fn fields(mut buf: &[u8]) -> impl Iterator<Item = Option<Field<'_>>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let start = buf;
        let field = (|| {
            let key = varint(&mut buf)?;
            let wire_type = (key & 7) as u8;
            let number = u32::try_from(key >> 3).ok()?;
            let payload = match wire_type {
                0 => {
                    varint(&mut buf)?;
                    &[][..]
                }
                1 => take(&mut buf, 8)?,
                5 => take(&mut buf, 4)?,
                LEN => {
                    let n = usize::try_from(varint(&mut buf)?).ok()?;
                    take(&mut buf, n)?
                }
                // Groups (3, 4) do not occur in OTLP.
                _ => return None,
            };
            let used = start.len() - buf.len();
            Some(Field {
                number,
                wire_type,
                raw: &start[..used],
                payload,
            })
        })();
        if field.is_none() {
            buf = &[];
        }
        Some(field)
    })
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_message(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | u64::from(LEN));
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// The request without the attributes nested deeper than [`MAX_VALUE_DEPTH`] (module docs).
pub(crate) fn without_deep_values(bytes: &[u8]) -> Option<(Vec<u8>, Vec<SpanError>)> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut dropped = Vec::new();
    let mut index = 0usize;
    for f in fields(bytes) {
        let f = f?;
        if f.is_message(tag::REQUEST_RESOURCE_SPANS) {
            let rs = resource_spans(f.payload, &mut index, &mut dropped)?;
            put_message(&mut out, f.number, &rs);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    Some((out, dropped))
}

fn resource_spans(buf: &[u8], index: &mut usize, dropped: &mut Vec<SpanError>) -> Option<Vec<u8>> {
    let first_span = *index;
    let mut out = Vec::with_capacity(buf.len());
    let mut resource_deep = Vec::new();
    let mut span_drops = Vec::new();
    for f in fields(buf) {
        let f = f?;
        if f.is_message(tag::RESOURCE_SPANS_RESOURCE) {
            let r = with_attributes(f.payload, tag::RESOURCE_ATTRIBUTES, &[], &mut resource_deep)?;
            put_message(&mut out, f.number, &r);
        } else if f.is_message(tag::RESOURCE_SPANS_SCOPE_SPANS)
            || f.is_message(tag::RESOURCE_SPANS_LEGACY_SCOPE_SPANS)
        {
            let ss = scope_spans(f.payload, index, &mut span_drops)?;
            put_message(&mut out, f.number, &ss);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    // As the converter reports them: the resource's attributes (on its first span) first.
    if *index > first_span {
        dropped.extend(
            resource_deep
                .iter()
                .map(|key| deep_attribute(first_span, &format!("resource.attributes.{key}"))),
        );
    }
    dropped.extend(span_drops);
    Some(out)
}

fn scope_spans(buf: &[u8], index: &mut usize, dropped: &mut Vec<SpanError>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(buf.len());
    for f in fields(buf) {
        let f = f?;
        if f.is_message(tag::SCOPE_SPANS_SCOPE) {
            let scope = with_attributes(f.payload, tag::SCOPE_ATTRIBUTES, &[], &mut Vec::new())?;
            put_message(&mut out, f.number, &scope);
        } else if f.is_message(tag::SCOPE_SPANS_SPANS) {
            let mut deep = Vec::new();
            let span = with_attributes(
                f.payload,
                tag::SPAN_ATTRIBUTES,
                &[tag::SPAN_EVENTS, tag::SPAN_LINKS],
                &mut deep,
            )?;
            dropped.extend(
                deep.iter()
                    .map(|key| deep_attribute(*index, &format!("attributes.{key}"))),
            );
            *index += 1;
            put_message(&mut out, f.number, &span);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    Some(out)
}

/// A message holding `KeyValue`s at field `attributes`: those nested too deep are left out
/// (their keys pushed to `deep`), and so are the fields numbered in `omit`.
fn with_attributes(
    buf: &[u8],
    attributes: u32,
    omit: &[u32],
    deep: &mut Vec<String>,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(buf.len());
    for f in fields(buf) {
        let f = f?;
        if omit.contains(&f.number) {
            continue;
        }
        if f.is_message(attributes) && key_value_too_deep(f.payload, 0)? {
            deep.push(key_of(f.payload)?);
            continue;
        }
        out.extend_from_slice(f.raw);
    }
    Some(out)
}

fn key_of(key_value: &[u8]) -> Option<String> {
    let mut key = String::new();
    for f in fields(key_value) {
        let f = f?;
        if f.is_message(tag::KEY_VALUE_KEY) {
            key = String::from_utf8_lossy(f.payload).into_owned();
        }
    }
    Some(key)
}

/// Whether the value of a `KeyValue` at value depth `depth` nests past [`MAX_VALUE_DEPTH`],
/// with the depth rule of the converter: an array or key-value list at depth
/// `MAX_VALUE_DEPTH` is too deep. Recursion stops there.
fn key_value_too_deep(key_value: &[u8], depth: usize) -> Option<bool> {
    for f in fields(key_value) {
        let f = f?;
        if f.is_message(tag::KEY_VALUE_VALUE) && any_value_too_deep(f.payload, depth)? {
            return Some(true);
        }
    }
    Some(false)
}

fn any_value_too_deep(any_value: &[u8], depth: usize) -> Option<bool> {
    for f in fields(any_value) {
        let f = f?;
        let array = f.is_message(tag::ANY_VALUE_ARRAY);
        if !array && !f.is_message(tag::ANY_VALUE_KVLIST) {
            continue;
        }
        if depth >= MAX_VALUE_DEPTH {
            return Some(true);
        }
        for item in fields(f.payload) {
            let item = item?;
            if !item.is_message(tag::LIST_VALUES) {
                continue;
            }
            let deep = if array {
                any_value_too_deep(item.payload, depth + 1)?
            } else {
                key_value_too_deep(item.payload, depth + 1)?
            };
            if deep {
                return Some(true);
            }
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut buf = &out[..];
            assert_eq!(varint(&mut buf), Some(v));
            assert!(buf.is_empty());
        }
        assert_eq!(varint(&mut &[0x80u8, 0x80][..]), None);
    }

    #[test]
    fn malformed_bytes_are_none() {
        assert!(without_deep_values(&[0x0a, 0x05, 0x01]).is_none());
        assert!(without_deep_values(&[0x0b]).is_none());
        assert_eq!(without_deep_values(&[]), Some((vec![], vec![])));
    }
}
