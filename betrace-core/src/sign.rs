//! Violation signatures (ENGINE.md §7).
//!
//! In: a [`Violation`] (or its raw JSON object) and a key (any bytes, supplied by the caller;
//! the server's key handling is in SERVER.md). Out: a signature string, or whether one
//! verifies.
//!
//! # Scheme
//!
//! ```text
//! signature = "v1:" + lowercase hex( HMAC-SHA256(key, canonical) )
//! canonical = RFC 8785 canonical JSON (UTF-8) of the violation's JSON object
//!             without its "signature" key
//! ```
//!
//! RFC 8785 (JSON Canonicalization Scheme) means: object keys sorted, no whitespace, strings
//! escaped minimally (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as
//! `\u00xx` in lower case, everything else as literal UTF-8), numbers in their shortest
//! ECMAScript form. Verification canonicalizes the object as received, minus `signature`, so a
//! violation written by a newer version with additional keys still verifies.
//!
//! A violation contains no JSON numbers and only ASCII keys, so Python's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` produces
//! exactly the RFC 8785 bytes for it: Python sorts keys by code point and RFC 8785 by UTF-16
//! code unit, which agree on ASCII keys, and both escape the same characters in the same way.
//! (Should a later version add integer fields, Python prints integers below 2^53 as RFC 8785
//! does; floats are never used.) A third party can therefore verify a violation with the
//! Python standard library alone:
//!
//! ```python
#![doc = include_str!("../docs/verify_signature.py")]
//! ```
//!
//! The key is the exact byte string given to [`sign`]; `verify_signature.py KEY_FILE
//! VIOLATION.json…` reads it raw from `KEY_FILE` and prints `ok` or `BAD` per file.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::violation::Violation;

/// The scheme prefix of every signature this version produces.
pub const SIGNATURE_PREFIX: &str = "v1:";

/// The Python verifier of the module docs (standard library only), as shipped in
/// `betrace-core/docs/verify_signature.py`.
pub const PYTHON_VERIFIER: &str = include_str!("../docs/verify_signature.py");

type HmacSha256 = Hmac<Sha256>;

/// The JSON object of `v` without `signature`.
fn unsigned_object(v: &Violation) -> Value {
    let mut value = crate::json::to_value(v);
    if let Value::Object(map) = &mut value {
        map.remove("signature");
    }
    value
}

/// The RFC 8785 canonical bytes that are signed for `v` (its JSON without `signature`).
pub fn canonical_bytes(v: &Violation) -> Vec<u8> {
    canonical_of(&unsigned_object(v)).unwrap_or_default()
}

fn canonical_of(value: &Value) -> Option<Vec<u8>> {
    serde_json_canonicalizer::to_vec(value).ok()
}

fn mac_over(key: &[u8], canonical: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (longer ones are hashed, shorter ones padded):
    // `new_from_slice` cannot fail for it.
    #[expect(
        clippy::expect_used,
        reason = "HMAC-SHA256 accepts keys of every length"
    )]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(canonical);
    mac
}

/// The signature of `v` under `key`: `"v1:"` + 64 lowercase hex digits. Any existing
/// `signature` of `v` is ignored.
pub fn sign(v: &Violation, key: &[u8]) -> String {
    let tag = mac_over(key, &canonical_bytes(v)).finalize().into_bytes();
    format!("{SIGNATURE_PREFIX}{}", hex::encode(tag))
}

/// Sets `v.signature` to [`sign`]`(v, key)`.
pub fn sign_in_place(v: &mut Violation, key: &[u8]) {
    v.signature = Some(sign(v, key));
}

/// True when `v.signature` is a valid `v1` signature of `v` under `key`. The comparison of the
/// MAC is constant-time. An absent or malformed signature is false. For a violation read
/// from JSON, prefer [`verify_json`]: fields a newer version added are lost when the JSON is
/// read into a [`Violation`], and the signature covers them.
pub fn verify(v: &Violation, key: &[u8]) -> bool {
    match &v.signature {
        Some(sig) => check(&unsigned_object(v), sig, key),
        None => false,
    }
}

/// [`verify`] on a violation's raw JSON object, as stored or received: the object minus
/// `signature` is canonicalized as it is, keys unknown to this version included. False when
/// `value` is not an object, or has no string `signature`, or the signature does not match.
pub fn verify_json(value: &Value, key: &[u8]) -> bool {
    let Value::Object(map) = value else {
        return false;
    };
    let Some(Value::String(sig)) = map.get("signature") else {
        return false;
    };
    let mut body = map.clone();
    body.remove("signature");
    check(&Value::Object(body), sig, key)
}

fn check(body: &Value, signature: &str, key: &[u8]) -> bool {
    let Some(hex_tag) = signature.strip_prefix(SIGNATURE_PREFIX) else {
        return false;
    };
    if hex_tag.len() != 64
        || !hex_tag
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return false;
    }
    let Ok(tag) = hex::decode(hex_tag) else {
        return false;
    };
    let Some(canonical) = canonical_of(body) else {
        return false;
    };
    mac_over(key, &canonical).verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::TraceId;
    use crate::violation::{
        ClauseTexts, CompletionReason, FailedClause, Severity, SpanRef, ViolationParts,
    };

    fn violation() -> Violation {
        Violation::new(
            ViolationParts {
                rule_id: "r1",
                rule_name: "r1",
                expression: "never { debug }",
                severity: Severity::Low,
                clauses: ClauseTexts {
                    never: Some("debug"),
                    ..Default::default()
                },
                trace_id: TraceId([7; 16]),
                failed_clause: FailedClause::Never,
                trigger_spans: vec![],
                offending_spans: vec![SpanRef {
                    trace_id: TraceId([7; 16]),
                    span_id: crate::span::SpanId([1; 8]),
                    name: "debug".into(),
                    service: "svc".into(),
                }],
                truncated: false,
                completion_reason: CompletionReason::Flush,
                partial: false,
            },
            1_700_000_000_000_000_000,
        )
    }

    #[test]
    fn canonical_is_sorted_compact_and_omits_signature() {
        let mut v = violation();
        v.signature = Some("v1:whatever".into());
        let text = String::from_utf8(canonical_bytes(&v)).unwrap();
        assert!(text.starts_with("{\"completionReason\":\"flush\",\"createdAt\":"));
        assert!(!text.contains("signature"));
        assert!(!text.contains(' ') || v.message.contains(' '));
        assert!(!text.contains('\n'));
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let key = b"k3y";
        let mut v = violation();
        assert!(!verify(&v, key), "unsigned never verifies");
        sign_in_place(&mut v, key);
        let sig = v.signature.clone().unwrap();
        assert!(sig.starts_with("v1:"));
        assert_eq!(sig.len(), 3 + 64);
        assert!(verify(&v, key));
        assert!(!verify(&v, b"other key"));

        let mut t = v.clone();
        t.severity = Severity::Critical;
        assert!(!verify(&t, key));
        let mut t = v.clone();
        t.offending_spans[0].name = "debug2".into();
        assert!(!verify(&t, key));
        let mut t = v.clone();
        t.signature = Some(sig.to_uppercase());
        assert!(!verify(&t, key), "the prefix and hex are lower case");
        let mut t = v.clone();
        t.signature = Some(sig.replace("v1:", "v2:"));
        assert!(!verify(&t, key));
        let mut t = v.clone();
        t.signature = Some(sig[..20].to_owned());
        assert!(!verify(&t, key));
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256 over canonical bytes, computed independently of `sign`.
        let v = violation();
        let canonical = canonical_bytes(&v);
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(&canonical);
        let expect = format!("v1:{}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(sign(&v, b"key"), expect);
        // RFC 4231 test case 2, to pin the primitive.
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_json_matches_verify_and_accepts_unknown_keys() {
        let key = b"secret";
        let mut v = violation();
        sign_in_place(&mut v, key);
        let json = serde_json::to_value(&v).unwrap();
        assert!(verify_json(&json, key));

        // A newer version adds a key and signs the whole object.
        let mut newer = json.clone();
        let obj = newer.as_object_mut().unwrap();
        obj.remove("signature");
        obj.insert("evaluationMs".into(), serde_json::json!(12));
        let canonical = serde_json_canonicalizer::to_vec(&newer).unwrap();
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(&canonical);
        let sig = format!("v1:{}", hex::encode(mac.finalize().into_bytes()));
        newer["signature"] = serde_json::Value::String(sig);
        assert!(verify_json(&newer, key));
        newer["evaluationMs"] = serde_json::json!(13);
        assert!(!verify_json(&newer, key));

        assert!(!verify_json(&serde_json::json!([1]), key));
        let mut no_sig = json.clone();
        no_sig["signature"] = serde_json::Value::Null;
        assert!(!verify_json(&no_sig, key));
    }
}
