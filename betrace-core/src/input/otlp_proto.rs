//! OTLP protobuf input (ENGINE.md §2 item 1): `ExportTraceServiceRequest` → [`SpanDraft`]s →
//! [`Span`]s.
//!
//! In: protobuf bytes (OTLP/HTTP `application/x-protobuf`) or a request prost already decoded
//! (the gRPC receiver's). Out: [`Decoded`]. Every span gets the `Arc<Resource>` of its
//! `ResourceSpans` and the name of its instrumentation scope; ids, kind and status code are
//! checked by [`SpanDraft::into_span`], with the protobuf field names (`trace_id`,
//! `status.code`). Pre-1.0 senders are read too: `ResourceSpans` field 1000 where field 2 is
//! empty (opentelemetry-proto v0.16–v0.19 asks receivers to).

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message as _;

use super::draft::{EnumDraft, IdDraft, InputFormat, SpanDraft};
use super::{
    Decoded, KeyInterner, MAX_VALUE_DEPTH, OtlpError, SpanError, dedup_attributes, deep_attribute,
};
use crate::span::{AttrValue, Attributes, Resource, Span};

/// Decodes an OTLP protobuf `ExportTraceServiceRequest` (the body of OTLP/HTTP
/// `application/x-protobuf`) and converts its spans with [`decode_otlp_request`]. A resource
/// spans without scope spans takes those of the pre-1.0 field
/// `instrumentation_library_spans` (number 1000, the wire layout of `ScopeSpans`), as
/// `trace.proto` v0.16–v0.19 asks receivers to.
///
/// A request that prost refuses because an attribute value nests past its recursion limit
/// is decoded again without the attributes nested deeper than [`MAX_VALUE_DEPTH`] (and
/// without span events and links, which are not converted): those attributes go to
/// [`Decoded::dropped_attributes`], the rest of the request is kept.
pub fn decode_otlp_protobuf(bytes: &[u8]) -> Result<Decoded, OtlpError> {
    match ExportTraceServiceRequest::decode(bytes) {
        Ok(request) => Ok(decode_otlp_request(with_legacy_spans(request, bytes))),
        Err(e) => {
            let Some((trimmed, dropped)) = super::otlp_wire::without_deep_values(bytes) else {
                return Err(e.into());
            };
            let Ok(request) = ExportTraceServiceRequest::decode(&trimmed[..]) else {
                return Err(e.into());
            };
            let mut decoded = decode_otlp_request(with_legacy_spans(request, &trimmed));
            // As the converter reports them: a rejected span's attributes are not listed.
            let rejected: Vec<usize> = decoded.rejected.iter().map(|e| e.index).collect();
            decoded.dropped_attributes = dropped
                .into_iter()
                .filter(|d| {
                    d.field.starts_with("resource.") || rejected.binary_search(&d.index).is_err()
                })
                .collect();
            Ok(decoded)
        }
    }
}

/// `request` with the pre-1.0 scope spans of `bytes` where it has none.
fn with_legacy_spans(
    mut request: ExportTraceServiceRequest,
    bytes: &[u8],
) -> ExportTraceServiceRequest {
    if request
        .resource_spans
        .iter()
        .any(|rs| rs.scope_spans.is_empty())
        && let Ok(legacy) = LegacyRequest::decode(bytes)
    {
        for (rs, old) in request.resource_spans.iter_mut().zip(legacy.resource_spans) {
            if rs.scope_spans.is_empty() {
                rs.scope_spans = old.instrumentation_library_spans;
            }
        }
    }
    request
}

/// `ExportTraceServiceRequest` as pre-1.0 senders could fill it: only what
/// [`decode_otlp_protobuf`] needs of it.
#[derive(Clone, PartialEq, prost::Message)]
struct LegacyRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<LegacyResourceSpans>,
}

/// `ResourceSpans.instrumentation_library_spans` (field 1000, deprecated in v0.16, removed in
/// 1.0); `InstrumentationLibrarySpans` and `InstrumentationLibrary` have the field numbers and
/// types of `ScopeSpans` and `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
struct LegacyResourceSpans {
    #[prost(message, repeated, tag = "1000")]
    instrumentation_library_spans: Vec<pb::ScopeSpans>,
}

/// Converts the spans of a decoded request, moving its strings and values (nothing is
/// copied but the scope name, once per span). Per-span problems go to
/// [`Decoded::rejected`], with the protobuf field name (`trace_id`, `attributes.key`, …).
pub fn decode_otlp_request(request: ExportTraceServiceRequest) -> Decoded {
    let total: usize = request
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len())
        .sum();
    let mut out = Decoded {
        spans: Vec::with_capacity(total),
        ..Decoded::default()
    };
    let mut index = 0usize;
    let mut keys = KeyInterner::default();
    let mut deep = Vec::new();
    for rs in request.resource_spans {
        let attributes = match rs.resource {
            None => Vec::new(),
            Some(r) => dedup_attributes(key_values(r.attributes, &mut keys, &mut deep)),
        };
        if rs.scope_spans.iter().any(|ss| !ss.spans.is_empty()) {
            out.dropped_attributes.extend(
                deep.drain(..)
                    .map(|key| deep_attribute(index, &format!("resource.attributes.{key}"))),
            );
        }
        deep.clear();
        let resource = Arc::new(Resource { attributes });
        for ss in rs.scope_spans {
            let scope_name = keys.intern(ss.scope.as_ref().map(|s| s.name.as_str()).unwrap_or(""));
            for span in ss.spans {
                match proto_span(span, index, &resource, &scope_name, &mut keys, &mut deep) {
                    Ok(span) => {
                        out.spans.push(span);
                        out.dropped_attributes.extend(
                            deep.iter()
                                .map(|key| deep_attribute(index, &format!("attributes.{key}"))),
                        );
                    }
                    Err(e) => out.rejected.push(e),
                }
                deep.clear();
                index += 1;
            }
        }
    }
    out
}

fn proto_span(
    s: pb::Span,
    index: usize,
    resource: &Arc<Resource>,
    scope_name: &Arc<str>,
    keys: &mut KeyInterner,
    deep: &mut Vec<String>,
) -> Result<Span, SpanError> {
    SpanDraft {
        trace_id: IdDraft::Bytes(Cow::Owned(s.trace_id)),
        span_id: IdDraft::Bytes(Cow::Owned(s.span_id)),
        parent_span_id: IdDraft::Bytes(Cow::Owned(s.parent_span_id)),
        name: s.name,
        kind: EnumDraft::Number(i64::from(s.kind)),
        status_code: s.status.as_ref().map_or(EnumDraft::Absent, |st| {
            EnumDraft::Number(i64::from(st.code))
        }),
        status_message: s.status.map(|st| st.message).unwrap_or_default(),
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: key_values(s.attributes, keys, deep),
        ..SpanDraft::new(
            InputFormat::OtlpProtobuf,
            Arc::clone(resource),
            Arc::clone(scope_name),
        )
    }
    .into_span(index)
}

/// A key-value list as attributes (keys may repeat); the keys of attributes whose value nests
/// deeper than [`MAX_VALUE_DEPTH`] go to `deep` instead.
fn key_values(kvs: Vec<KeyValue>, keys: &mut KeyInterner, deep: &mut Vec<String>) -> Attributes {
    let mut out = Vec::with_capacity(kvs.len());
    for kv in kvs {
        let Some(value) = kv.value else { continue };
        match proto_value(value, 0, keys) {
            Ok(Some(v)) => out.push((keys.intern(&kv.key), v)),
            Ok(None) => {}
            Err(TooDeep) => deep.push(kv.key),
        }
    }
    out
}

/// A value nested deeper than [`MAX_VALUE_DEPTH`].
#[derive(Debug)]
struct TooDeep;

fn proto_value(
    v: AnyValue,
    depth: usize,
    keys: &mut KeyInterner,
) -> Result<Option<AttrValue>, TooDeep> {
    use any_value::Value as V;
    Ok(Some(match v.value {
        None | Some(V::StringValueStrindex(_)) => return Ok(None),
        Some(V::StringValue(s)) => AttrValue::Str(s.into_boxed_str()),
        Some(V::BoolValue(b)) => AttrValue::Bool(b),
        Some(V::IntValue(i)) => AttrValue::Int(i),
        Some(V::DoubleValue(d)) => AttrValue::Float(d),
        Some(V::BytesValue(b)) => AttrValue::Bytes(b.into_boxed_slice()),
        Some(V::ArrayValue(a)) => {
            check_depth(depth)?;
            let mut out = Vec::with_capacity(a.values.len());
            for item in a.values {
                if let Some(v) = proto_value(item, depth + 1, keys)? {
                    out.push(v);
                }
            }
            AttrValue::Array(out.into_boxed_slice())
        }
        Some(V::KvlistValue(kvs)) => {
            check_depth(depth)?;
            let mut out = Vec::with_capacity(kvs.values.len());
            for kv in kvs.values {
                let Some(value) = kv.value else { continue };
                if let Some(v) = proto_value(value, depth + 1, keys)? {
                    out.push((keys.intern(&kv.key), v));
                }
            }
            AttrValue::KvList(out.into_boxed_slice())
        }
    }))
}

fn check_depth(depth: usize) -> Result<(), TooDeep> {
    if depth >= MAX_VALUE_DEPTH {
        return Err(TooDeep);
    }
    Ok(())
}
