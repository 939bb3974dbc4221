//! The JSON layer of violations (ENGINE.md §6): how the typed values of a [`Violation`] are
//! written and read, in one place.
//!
//! In: a [`Violation`] (typed ids and time), or the JSON text / [`Value`] of one. Out: the JSON
//! shape every interface returns — the server's stored body and REST responses, Python's
//! `to_dict()`, Node's objects — and the record read back from it.
//!
//! Spellings, fixed because the signature covers them (ENGINE.md §7):
//! - [`TraceId`]: 32 hexadecimal digits, lower case on output (either case read);
//! - [`SpanId`]: 16 hexadecimal digits, likewise; the violation's own `spanId` is `""` when it
//!   names no span ([`span_id_or_empty`]);
//! - [`UnixMillis`]: RFC 3339, UTC, millisecond precision, `Z` suffix
//!   (`2024-05-01T12:00:00.123Z`); any RFC 3339 time from 1970 on is read, finer digits
//!   dropped.
//!
//! Errors name the field: `traceId: expected 32 hexadecimal digits, found "xyz"`.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::span::{SpanId, TraceId};
use crate::violation::{UnixMillis, Violation};

/// Text that is not an id of `N` bytes as hexadecimal digits (either case).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {} hexadecimal digits, found {found:?}", 2 * .bytes)]
pub struct HexIdError {
    /// Bytes of the id: 16 for a trace id, 8 for a span id.
    pub bytes: usize,
    pub found: String,
}

fn decode_hex<const N: usize>(text: &str) -> Result<[u8; N], HexIdError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| HexIdError {
        bytes: N,
        found: text.to_owned(),
    })?;
    Ok(out)
}

impl std::str::FromStr for TraceId {
    type Err = HexIdError;

    /// 32 hexadecimal digits, either case.
    fn from_str(s: &str) -> Result<TraceId, HexIdError> {
        decode_hex(s).map(TraceId)
    }
}

impl std::str::FromStr for SpanId {
    type Err = HexIdError;

    /// 16 hexadecimal digits, either case.
    fn from_str(s: &str) -> Result<SpanId, HexIdError> {
        decode_hex(s).map(SpanId)
    }
}

/// Writes `N` bytes as lower-case hex without allocating.
fn serialize_hex<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    // 2 × 16 digits at most (a trace id).
    let mut buf = [0u8; 32];
    let out = &mut buf[..2 * N];
    // Infallible: `out` holds exactly two digits per byte.
    if hex::encode_to_slice(bytes, out).is_err() {
        return Err(serde::ser::Error::custom("hex buffer of the wrong length"));
    }
    s.serialize_str(std::str::from_utf8(out).unwrap_or_default())
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_hex(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for TraceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TraceId, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

impl Serialize for SpanId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_hex(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for SpanId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SpanId, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// `#[serde(with)]` codec of an optional span id: `""` for none, else 16 hex digits.
pub mod span_id_or_empty {
    use super::*;

    pub fn serialize<S: Serializer>(id: &Option<SpanId>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => id.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SpanId>, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(D::Error::custom)
    }
}

/// A time that is not RFC 3339, or before 1970.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected an RFC 3339 time from 1970 on (`2024-05-01T12:00:00.123Z`), found {found:?}")]
pub struct TimeError {
    pub found: String,
}

impl std::str::FromStr for UnixMillis {
    type Err = TimeError;

    /// Any RFC 3339 time at or after the Unix epoch; digits finer than a millisecond are
    /// dropped.
    fn from_str(s: &str) -> Result<UnixMillis, TimeError> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
            .map(UnixMillis)
            .ok_or_else(|| TimeError {
                found: s.to_owned(),
            })
    }
}

impl fmt::Display for UnixMillis {
    /// RFC 3339, UTC, milliseconds, `Z` suffix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = i64::try_from(self.0).unwrap_or(i64::MAX);
        let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(millis).unwrap_or_default();
        write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

impl Serialize for UnixMillis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UnixMillis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UnixMillis, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// The JSON object of `v` (keys in the order of the module docs of [`crate::violation`]).
pub fn to_value(v: &Violation) -> Value {
    // Strings, booleans, an integer, lists and plain structs with string keys: serializing a
    // violation has no failure case.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The JSON text of `v`, compact: the bytes the server stores.
pub fn to_string(v: &Violation) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A violation whose JSON cannot be read: where (`traceId`, `triggerSpans[0].spanId`; `.`
/// for the object itself) and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ViolationJsonError {
    pub path: String,
    #[source]
    pub source: serde_json::Error,
}

impl From<serde_path_to_error::Error<serde_json::Error>> for ViolationJsonError {
    fn from(e: serde_path_to_error::Error<serde_json::Error>) -> ViolationJsonError {
        ViolationJsonError {
            path: e.path().to_string(),
            source: e.into_inner(),
        }
    }
}

/// A violation read from its JSON object. Errors name the field (`traceId: expected 32
/// hexadecimal digits, found "x"`) or the missing key.
pub fn from_value(value: Value) -> Result<Violation, ViolationJsonError> {
    Ok(serde_path_to_error::deserialize(value)?)
}

/// A violation read from its JSON text (see [`from_value`]).
pub fn from_str(text: &str) -> Result<Violation, ViolationJsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = serde_path_to_error::deserialize(&mut de)?;
    de.end().map_err(|source| ViolationJsonError {
        path: ".".to_owned(),
        source,
    })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lower_hex_and_read_in_either_case() {
        let t: TraceId = "4BF92F3577B34DA6A3CE929D0E0E4736".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"4bf92f3577b34da6a3ce929d0e0e4736\""
        );
        let s: SpanId = serde_json::from_str("\"00f067aa0ba902b7\"").unwrap();
        assert_eq!(s, SpanId([0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]));
        let e = "abc".parse::<SpanId>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected 16 hexadecimal digits, found \"abc\""
        );
        assert!("zz".repeat(16).parse::<TraceId>().is_err());
    }

    #[test]
    fn created_at_keeps_milliseconds_and_the_z() {
        let t = UnixMillis::from_unix_nanos(1_714_564_800_123_456_789);
        assert_eq!(t.0, 1_714_564_800_123);
        assert_eq!(t.to_string(), "2024-05-01T12:00:00.123Z");
        assert_eq!(UnixMillis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!("2024-05-01T12:00:00.123Z".parse::<UnixMillis>(), Ok(t));
        assert_eq!(
            "2024-05-01T14:00:00.123999+02:00".parse::<UnixMillis>(),
            Ok(t)
        );
        assert!("1969-12-31T23:59:59Z".parse::<UnixMillis>().is_err());
        assert!("yesterday".parse::<UnixMillis>().is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        let r = crate::violation::SpanRef {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            name: "checkout".into(),
            service: "shop".into(),
        };
        let sample = Violation::new(
            crate::violation::ViolationParts {
                rule_id: "r",
                rule_name: "r",
                expression: "span.name == \"checkout\"",
                severity: crate::violation::Severity::Low,
                clauses: Default::default(),
                trace_id: TraceId([1; 16]),
                failed_clause: crate::violation::FailedClause::Expression,
                trigger_spans: vec![r],
                offending_spans: vec![],
                truncated: false,
                completion_reason: crate::violation::CompletionReason::Direct,
                partial: false,
            },
            0,
        );
        let mut v = to_value(&sample);
        assert_eq!(from_value(v.clone()).unwrap(), sample);
        v["traceId"] = "nope".into();
        let e = from_value(v.clone()).unwrap_err().to_string();
        assert_eq!(e, "traceId: expected 32 hexadecimal digits, found \"nope\"");
        v["traceId"] = "ab".repeat(16).into();
        v["triggerSpans"][0]["spanId"] = "x".into();
        let e = from_value(v.clone()).unwrap_err().to_string();
        assert!(e.starts_with("triggerSpans[0].spanId: expected 16"), "{e}");
        v["triggerSpans"][0]["spanId"] = "00".repeat(8).into();
        v["createdAt"] = "soon".into();
        let e = from_str(&v.to_string()).unwrap_err().to_string();
        assert!(e.starts_with("createdAt: expected an RFC 3339 time"), "{e}");
    }
}
