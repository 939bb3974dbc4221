//! Runtime values and the rules that compare them (DSL.md §3.4 and §7.4–§7.10).
//!
//! In: span attribute values ([`AttrValue`], borrowed from the trace), typed literals of a
//! checked rule ([`Literal`], borrowed from the program), and intrinsic values. Out: [`Value`]
//! and every operation the rule language performs on values — comparison, `in`, the string
//! tests, truthiness, length and case mapping. The VM and the reference evaluator both use this
//! module, so the two can only differ in control flow, never in what a comparison means.

use std::borrow::Cow;
use std::cmp::Ordering;

use betrace_dsl::ir::{CmpOp, Literal, StrOp};
use regex::Regex;

use crate::span::{AttrValue, SpanKind, StatusCode};

/// A runtime value (DSL.md §3.4). Strings borrow from the trace or the program; only
/// `lower`/`upper` of a string that changes under case mapping own theirs.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// An absent attribute: every comparison with it is false, `== null` aside.
    Missing,
    /// The literal `null`: equal to a missing value only.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Nanoseconds; compares with numbers and numeric strings as an integer.
    Duration(i64),
    Str(Cow<'a, str>),
    /// `span.status`, OTLP `Status.StatusCode` number (0 unset, 1 ok, 2 error).
    Status(u8),
    /// `span.kind`, OTLP `Span.SpanKind` number (0 unspecified … 5 consumer).
    Kind(u8),
    /// An array attribute.
    Array(&'a [AttrValue]),
    /// A list literal used as a value (`x == [1, 2]`, `[[1, 2]]`); an array like
    /// [`Value::Array`].
    List(&'a [Literal]),
    /// A bytes attribute.
    Bytes(&'a [u8]),
    /// A key-value-list attribute; it equals nothing.
    Map(&'a [(crate::span::AttrKey, AttrValue)]),
}

impl<'a> Value<'a> {
    /// The value of an attribute, keeping its OTLP type.
    pub fn from_attr(v: &'a AttrValue) -> Value<'a> {
        match v {
            AttrValue::Str(s) => Value::Str(Cow::Borrowed(s)),
            AttrValue::Bool(b) => Value::Bool(*b),
            AttrValue::Int(i) => Value::Int(*i),
            AttrValue::Float(f) => Value::Float(*f),
            AttrValue::Bytes(b) => Value::Bytes(b),
            AttrValue::Array(a) => Value::Array(a),
            AttrValue::KvList(m) => Value::Map(m),
        }
    }

    /// The value of a present-or-absent attribute.
    pub fn from_opt_attr(v: Option<&'a AttrValue>) -> Value<'a> {
        match v {
            Some(v) => Value::from_attr(v),
            None => Value::Missing,
        }
    }

    /// The value of a typed literal.
    pub fn from_literal(l: &'a Literal) -> Value<'a> {
        match l {
            Literal::Str(s) => Value::Str(Cow::Borrowed(s)),
            Literal::Int(i) => Value::Int(*i),
            Literal::Float(f) => Value::Float(*f),
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Duration(d) => Value::Duration(*d),
            Literal::Null => Value::Null,
            Literal::Status(s) => Value::Status(*s),
            Literal::Kind(k) => Value::Kind(*k),
            Literal::List(items) => Value::List(items),
        }
    }

    /// A borrowed string value.
    pub fn str(s: &'a str) -> Value<'a> {
        Value::Str(Cow::Borrowed(s))
    }

    /// True unless the value is [`Value::Missing`].
    pub fn is_present(&self) -> bool {
        !matches!(self, Value::Missing)
    }
}

/// `span.start` / `span.end` (Unix ns) as an int; beyond `i64::MAX` (year 2262) a float.
pub fn time_value(ns: u64) -> Value<'static> {
    match i64::try_from(ns) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Float(ns as f64),
    }
}

/// A duration in ns (`span.duration`, `trace.duration`; negative when the end precedes the
/// start).
pub fn duration_value(ns: i64) -> Value<'static> {
    Value::Duration(ns)
}

/// A number after coercion: integers stay exact, everything else is an `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

/// Parses a strict decimal number `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?` (DSL.md §3.4, §7.6).
/// The integer form that fits `i64` is exact; every other strict decimal goes through `f64`.
/// Anything else (`+1`, `" 1"`, `1_000`, `NaN`, `0x10`) is `None`.
pub fn parse_strict_decimal(s: &str) -> Option<Num> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    let mut integral = true;
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
        integral = false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
        integral = false;
    }
    if i != b.len() {
        return None;
    }
    if integral && let Ok(v) = s.parse::<i64>() {
        return Some(Num::Int(v));
    }
    s.parse::<f64>().ok().map(Num::Float)
}

/// Compares an `i64` with an `f64` exactly (no rounding of either side); `None` for NaN.
pub fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    // 2^63: every f64 at or above it exceeds every i64, every f64 below −2^63 is less.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    // In range: the truncated value is an integer in [−2^63, 2^63), exact as i64.
    let ti = t as i64;
    Some(match i.cmp(&ti) {
        Ordering::Equal => {
            let frac = f - t;
            if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    })
}

/// Compares two numbers by value, exactly; `None` when either is NaN.
pub fn cmp_num(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y),
        (Num::Int(x), Num::Float(y)) => cmp_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(y, x).map(Ordering::reverse),
    }
}

/// How two values relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    /// A missing attribute is involved: every comparison is false.
    Missing,
    /// Only equality is defined (bool, enum, other type pairs, NaN); ordering is false.
    Eq(bool),
    /// Numbers or strings: all six operators apply.
    Ord(Ordering),
}

fn numeric(v: &Value<'_>) -> Option<Num> {
    match v {
        Value::Int(i) | Value::Duration(i) => Some(Num::Int(*i)),
        Value::Float(f) => Some(Num::Float(*f)),
        _ => None,
    }
}

fn num_rel(a: Num, b: Num) -> Rel {
    match cmp_num(a, b) {
        Some(o) => Rel::Ord(o),
        None => Rel::Eq(false),
    }
}

fn status_name(n: u8) -> &'static str {
    StatusCode::from_otlp(i64::from(n)).map_or("", StatusCode::as_str)
}

fn kind_name(n: u8) -> &'static str {
    SpanKind::from_otlp(i64::from(n)).map_or("", SpanKind::as_str)
}

fn bool_str_eq(b: bool, s: &str) -> bool {
    (b && s == "true") || (!b && s == "false")
}

fn relate(l: &Value<'_>, r: &Value<'_>) -> Rel {
    use Value::*;
    match (l, r) {
        (Missing, Null) | (Null, Missing) | (Null, Null) => Rel::Eq(true),
        (Missing, _) | (_, Missing) => Rel::Missing,
        (Null, _) | (_, Null) => Rel::Eq(false),
        (Str(a), Str(b)) => Rel::Ord(a.as_bytes().cmp(b.as_bytes())),
        (Str(s), n) => match (numeric(n), parse_strict_decimal(s)) {
            (Some(n), Some(s)) => num_rel(s, n),
            _ => match n {
                Bool(b) => Rel::Eq(bool_str_eq(*b, s)),
                Status(x) => Rel::Eq(status_name(*x).eq_ignore_ascii_case(s)),
                Kind(x) => Rel::Eq(kind_name(*x).eq_ignore_ascii_case(s)),
                _ => Rel::Eq(false),
            },
        },
        (_, Str(_)) => match relate(r, l) {
            Rel::Ord(o) => Rel::Ord(o.reverse()),
            other => other,
        },
        (Bool(a), Bool(b)) => Rel::Eq(a == b),
        (Status(a), Status(b)) | (Kind(a), Kind(b)) => Rel::Eq(a == b),
        // Arrays (attributes and list literals) fall under §3.4's "any other type pair", the
        // pair of two arrays included: unequal, ordering false.
        (Bytes(a), Bytes(b)) => Rel::Eq(a == b),
        _ => match (numeric(l), numeric(r)) {
            (Some(a), Some(b)) => num_rel(a, b),
            _ => Rel::Eq(false),
        },
    }
}

/// `l op r` with the rules of DSL.md §3.4 and §7:
/// a missing value makes every comparison false except `missing == null`;
/// `null` equals only a missing value; numbers (int, float, duration, and strict-decimal
/// strings facing a number) compare exactly by value, NaN only satisfies `!=`; strings compare
/// by bytes; a bool equals a bool or the lower-case string `"true"`/`"false"`; enum members
/// equal the same member or its name in any case; any other pair is unequal — two arrays
/// included, as DSL.md §3.4 defines no array comparison; ordering is false wherever only
/// equality is defined.
#[inline]
pub fn compare(l: &Value<'_>, op: CmpOp, r: &Value<'_>) -> bool {
    // Same-type pairs first: the general relation below gives the same answers.
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => return compare_ints(*a, op, *b),
        (Value::Str(a), Value::Str(b)) => return compare_strs(a, op, b),
        (Value::Kind(a), Value::Kind(b)) | (Value::Status(a), Value::Status(b)) => {
            return compare_members(*a, op, *b);
        }
        _ => {}
    }
    match relate(l, r) {
        Rel::Missing => false,
        Rel::Eq(eq) => match op {
            CmpOp::Eq => eq,
            CmpOp::Ne => !eq,
            _ => false,
        },
        Rel::Ord(o) => op.holds(o),
    }
}

/// [`compare`] of two ints.
#[inline]
pub fn compare_ints(a: i64, op: CmpOp, b: i64) -> bool {
    op.holds(a.cmp(&b))
}

/// [`compare`] of two strings: by UTF-8 bytes.
#[inline]
pub fn compare_strs(a: &str, op: CmpOp, b: &str) -> bool {
    op.holds(a.as_bytes().cmp(b.as_bytes()))
}

/// [`compare`] of two members of one enum (`span.status`, `span.kind`) by OTLP number:
/// equality only, ordering is false.
#[inline]
pub fn compare_members(a: u8, op: CmpOp, b: u8) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        _ => false,
    }
}

/// `l == r` (see [`compare`]).
pub fn equals(l: &Value<'_>, r: &Value<'_>) -> bool {
    compare(l, CmpOp::Eq, r)
}

/// `v in [items]`: true iff `v == item` for some item (DSL.md §7.5); a missing value is in a
/// list holding `null`.
pub fn in_list<'b>(v: &Value<'_>, items: impl IntoIterator<Item = Value<'b>>) -> bool {
    items.into_iter().any(|item| equals(v, &item))
}

/// `v not in [items]`: false for a missing value, else the negation of `in` (DSL.md §7.4).
pub fn not_in_list<'b>(v: &Value<'_>, items: impl IntoIterator<Item = Value<'b>>) -> bool {
    v.is_present() && !in_list(v, items)
}

/// Truthiness of a bare operand (DSL.md §3.4): missing and `null` are false; a bool is itself;
/// a string is false when empty or `"false"` in any case; a number or duration when zero; an
/// array, bytes or key-value list when empty; an enum member is true.
pub fn truthy(v: &Value<'_>) -> bool {
    match v {
        Value::Missing | Value::Null => false,
        Value::Bool(b) => *b,
        Value::Str(s) => !(s.is_empty() || s.eq_ignore_ascii_case("false")),
        Value::Int(i) | Value::Duration(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Array(a) => !a.is_empty(),
        Value::List(a) => !a.is_empty(),
        Value::Bytes(b) => !b.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Status(_) | Value::Kind(_) => true,
    }
}

/// `#v` / `v:len()`: a string's length in Unicode scalar values or an array's element count;
/// missing for anything else (DSL.md §3.4, §7.8).
pub fn len(v: &Value<'_>) -> Value<'static> {
    match v {
        Value::Str(s) => Value::Int(i64::try_from(s.chars().count()).unwrap_or(i64::MAX)),
        Value::Array(a) => Value::Int(i64::try_from(a.len()).unwrap_or(i64::MAX)),
        Value::List(a) => Value::Int(i64::try_from(a.len()).unwrap_or(i64::MAX)),
        _ => Value::Missing,
    }
}

/// `v:lower()`: Unicode lower case of a string; missing for anything else (§7.8). Allocates
/// only when the string changes.
pub fn lower(v: Value<'_>) -> Value<'_> {
    match v {
        Value::Str(s) => {
            if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
                Value::Str(s)
            } else {
                Value::Str(Cow::Owned(s.to_lowercase()))
            }
        }
        _ => Value::Missing,
    }
}

/// `v:upper()`: Unicode upper case of a string; missing for anything else (§7.8). Allocates
/// only when the string changes.
pub fn upper(v: Value<'_>) -> Value<'_> {
    match v {
        Value::Str(s) => {
            if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_lowercase()) {
                Value::Str(s)
            } else {
                Value::Str(Cow::Owned(s.to_uppercase()))
            }
        }
        _ => Value::Missing,
    }
}

/// The positive string test `v op arg` (DSL.md §3.4, §7.4, §7.8); `None` when it cannot
/// apply: `v` is not a string (for `contains`: nor an array), or `arg` is not a string (for
/// `contains` on an array: is missing). On an array, `contains` is membership with `==`.
/// `matches` searches `v` with `regexes[id]`, unanchored; an unknown id cannot apply.
pub fn string_test(op: StrOp, v: &Value<'_>, arg: &Value<'_>, regexes: &[Regex]) -> Option<bool> {
    match (op, v) {
        (StrOp::Matches(id), Value::Str(s)) => regexes.get(id.0 as usize).map(|re| re.is_match(s)),
        (StrOp::Matches(_), _) => None,
        (StrOp::Contains, Value::Array(items)) if arg.is_present() => Some(
            items
                .iter()
                .any(|item| equals(&Value::from_attr(item), arg)),
        ),
        (StrOp::Contains, Value::List(items)) if arg.is_present() => Some(
            items
                .iter()
                .any(|item| equals(&Value::from_literal(item), arg)),
        ),
        (_, Value::Str(s)) => match arg {
            Value::Str(a) => Some(match op {
                StrOp::Contains => s.contains(a.as_ref()),
                StrOp::StartsWith => s.starts_with(a.as_ref()),
                StrOp::EndsWith => s.ends_with(a.as_ref()),
                StrOp::Matches(_) => false,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// `v op arg` as a predicate: the positive test, false when it cannot apply; with `negated`
/// (`not contains`, `!~`, …) the negation of the positive test, still false when it cannot
/// apply (DSL.md §7.4).
#[inline]
pub fn string_pred(
    op: StrOp,
    v: &Value<'_>,
    arg: &Value<'_>,
    regexes: &[Regex],
    negated: bool,
) -> bool {
    match string_test(op, v, arg, regexes) {
        Some(r) => r != negated,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CmpOp::*;

    fn s(x: &str) -> Value<'_> {
        Value::str(x)
    }

    fn all_ops(l: &Value<'_>, r: &Value<'_>) -> [bool; 6] {
        [Eq, Ne, Lt, Le, Gt, Ge].map(|op| compare(l, op, r))
    }

    #[test]
    fn strict_decimals() {
        assert_eq!(parse_strict_decimal("1000"), Some(Num::Int(1000)));
        assert_eq!(parse_strict_decimal("-0"), Some(Num::Int(0)));
        assert_eq!(parse_strict_decimal("1000.0"), Some(Num::Float(1000.0)));
        assert_eq!(parse_strict_decimal("1e3"), Some(Num::Float(1000.0)));
        assert_eq!(parse_strict_decimal("2.5E-1"), Some(Num::Float(0.25)));
        assert_eq!(
            parse_strict_decimal("9223372036854775808"),
            Some(Num::Float(9_223_372_036_854_775_808.0))
        );
        for bad in [
            "", "-", "+1", " 1", "1 ", "1_000", "1.", ".5", "1e", "1e+", "NaN", "inf", "0x10",
            "--1", "1.5.2", "١",
        ] {
            assert_eq!(parse_strict_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn int_float_exact() {
        // 2^53 + 1 is not representable in f64; a lossy cast would call these equal.
        let i = Value::Int(9_007_199_254_740_993);
        let f = Value::Float(9_007_199_254_740_992.0);
        assert!(!compare(&i, Eq, &f));
        assert!(compare(&i, Gt, &f));
        assert!(compare(&f, Lt, &i));
        assert!(compare(&Value::Int(1), Eq, &Value::Float(1.0)));
        assert!(compare(&Value::Int(1), Lt, &Value::Float(1.5)));
        assert!(compare(&Value::Int(-2), Lt, &Value::Float(-1.5)));
        assert!(compare(&Value::Int(i64::MAX), Lt, &Value::Float(9.3e18)));
        assert!(compare(
            &Value::Int(i64::MIN),
            Eq,
            &Value::Float(-9_223_372_036_854_775_808.0)
        ));
        assert!(compare(
            &Value::Int(i64::MIN),
            Gt,
            &Value::Float(f64::NEG_INFINITY)
        ));
        assert!(compare(
            &Value::Int(i64::MAX),
            Lt,
            &Value::Float(f64::INFINITY)
        ));
    }

    #[test]
    fn nan_only_not_equal() {
        let nan = Value::Float(f64::NAN);
        assert_eq!(
            all_ops(&nan, &Value::Int(5)),
            [false, true, false, false, false, false]
        );
        assert_eq!(
            all_ops(&nan, &nan),
            [false, true, false, false, false, false]
        );
    }

    #[test]
    fn numeric_strings() {
        assert!(compare(&s("1000.0"), Eq, &Value::Int(1000)));
        assert!(compare(&Value::Int(201), Eq, &s("201")));
        assert!(compare(&s("2.50"), Eq, &Value::Float(2.5)));
        assert!(compare(&s("10"), Gt, &Value::Int(9)));
        // String vs string stays bytes: "10" < "9", "007" != "7".
        assert!(compare(&s("10"), Lt, &s("9")));
        assert!(!compare(&s("007"), Eq, &s("7")));
        assert!(compare(&s("007"), Eq, &Value::Int(7)));
        // Not a strict decimal: other type pair.
        assert_eq!(
            all_ops(&s("NaN"), &Value::Int(5)),
            [false, true, false, false, false, false]
        );
        // Durations compare with numbers and numeric strings as nanoseconds.
        assert!(compare(
            &s("6000000000"),
            Gt,
            &Value::Duration(5_000_000_000)
        ));
        assert!(compare(
            &Value::Int(1_000_000_001),
            Gt,
            &Value::Duration(1_000_000_000)
        ));
        assert!(compare(&Value::Duration(1500), Eq, &Value::Float(1500.0)));
    }

    #[test]
    fn bools() {
        assert!(compare(&Value::Bool(true), Eq, &s("true")));
        assert!(compare(&s("false"), Eq, &Value::Bool(false)));
        assert!(!compare(&s("TRUE"), Eq, &Value::Bool(true)));
        assert!(compare(&s("True"), Ne, &Value::Bool(true)));
        assert!(!compare(&Value::Bool(true), Eq, &Value::Int(1)));
        assert_eq!(
            all_ops(&Value::Bool(true), &Value::Bool(false)),
            [false, true, false, false, false, false]
        );
        assert_eq!(
            all_ops(&Value::Bool(true), &Value::Int(0)),
            [false, true, false, false, false, false]
        );
    }

    #[test]
    fn missing_and_null() {
        let m = Value::Missing;
        assert_eq!(all_ops(&m, &Value::Int(5)), [false; 6]);
        assert_eq!(all_ops(&Value::Int(5), &m), [false; 6]);
        assert_eq!(all_ops(&m, &m), [false; 6]);
        assert!(compare(&m, Eq, &Value::Null));
        assert!(!compare(&m, Ne, &Value::Null));
        assert!(compare(&Value::Null, Eq, &m));
        assert!(!compare(&s(""), Eq, &Value::Null));
        assert!(compare(&s(""), Ne, &Value::Null));
        assert!(!compare(&m, Lt, &Value::Null));
    }

    #[test]
    fn enums_case_insensitive() {
        assert!(compare(&Value::Status(2), Eq, &s("ERROR")));
        assert!(compare(&s("Error"), Eq, &Value::Status(2)));
        assert!(compare(&Value::Kind(2), Eq, &s("Server")));
        assert!(compare(&Value::Kind(2), Ne, &Value::Kind(3)));
        assert!(!compare(&Value::Kind(1), Eq, &Value::Status(1)));
        assert!(!compare(&Value::Status(1), Lt, &Value::Status(2)));
    }

    #[test]
    fn arrays() {
        let arr = [AttrValue::Str("vip".into())];
        let a = Value::Array(&arr);
        assert!(!compare(&a, Eq, &s("vip")));
        assert!(compare(&a, Ne, &s("vip")));
        assert_eq!(string_test(StrOp::Contains, &a, &s("vip"), &[]), Some(true));
        let codes = [AttrValue::Int(500), AttrValue::Int(503)];
        assert_eq!(
            string_test(StrOp::Contains, &Value::Array(&codes), &s("503"), &[]),
            Some(true)
        );
        assert_eq!(
            string_test(StrOp::Contains, &Value::Array(&codes), &Value::Missing, &[]),
            None
        );
        // Two arrays are "any other type pair" (DSL.md §3.4), equal elements or not.
        let same = [AttrValue::Int(500), AttrValue::Int(503)];
        assert_eq!(
            all_ops(&Value::Array(&codes), &Value::Array(&same)),
            [false, true, false, false, false, false]
        );
        assert!(truthy(&a));
        assert!(!truthy(&Value::Array(&[])));
        assert_eq!(len(&a), Value::Int(1));
    }

    #[test]
    fn lists() {
        let items = [Literal::Int(200), Literal::Str("201".into()), Literal::Null];
        let vals = || items.iter().map(Value::from_literal);
        assert!(in_list(&s("200"), vals()));
        assert!(in_list(&Value::Int(201), vals()));
        assert!(in_list(&Value::Missing, vals()));
        assert!(!not_in_list(&Value::Missing, vals()));
        assert!(not_in_list(&Value::Int(5), vals()));
        assert!(!not_in_list(&Value::Missing, std::iter::empty()));
    }

    #[test]
    fn list_literals_as_values() {
        let items = [Literal::Int(500), Literal::Str("503".into())];
        let list = Value::List(&items);
        let codes = [AttrValue::Int(500), AttrValue::Int(503)];
        // An array pair, and an array against a scalar: `==` false, `!=` true, ordering false.
        for other in [
            Value::Array(&codes),
            Value::List(&items),
            Value::Int(500),
            s("500"),
        ] {
            assert_eq!(
                all_ops(&list, &other),
                [false, true, false, false, false, false]
            );
            assert_eq!(
                all_ops(&other, &list),
                [false, true, false, false, false, false]
            );
        }
        assert_eq!(all_ops(&list, &Value::Missing), [false; 6]);
        assert!(!compare(&list, Eq, &Value::Null));
        assert!(compare(&list, Ne, &Value::Null));
        // A list as an `in` item: never equal to anything.
        let nested = [Literal::List(items.clone().into())];
        assert!(!in_list(
            &Value::Array(&codes),
            nested.iter().map(Value::from_literal)
        ));
        assert!(not_in_list(
            &Value::Array(&codes),
            nested.iter().map(Value::from_literal)
        ));
        assert!(truthy(&list));
        assert!(!truthy(&Value::List(&[])));
        assert_eq!(len(&list), Value::Int(2));
        assert_eq!(
            string_test(StrOp::Contains, &list, &s("500"), &[]),
            Some(true)
        );
        assert_eq!(
            string_test(StrOp::Contains, &list, &s("504"), &[]),
            Some(false)
        );
    }

    #[test]
    fn string_ops() {
        let re = [Regex::new("^5").unwrap()];
        let m = StrOp::Matches(betrace_dsl::ir::RegexId(0));
        assert!(string_pred(m, &s("503"), &Value::Missing, &re, false));
        assert!(!string_pred(
            m,
            &Value::Int(503),
            &Value::Missing,
            &re,
            false
        ));
        assert!(!string_pred(
            m,
            &Value::Int(503),
            &Value::Missing,
            &re,
            true
        ));
        assert!(!string_pred(
            StrOp::StartsWith,
            &Value::Missing,
            &s(""),
            &re,
            false
        ));
        assert!(!string_pred(
            StrOp::StartsWith,
            &Value::Missing,
            &s(""),
            &re,
            true
        ));
        assert!(string_pred(StrOp::EndsWith, &s("abc"), &s(""), &re, false));
        assert!(string_pred(StrOp::Contains, &s("abc"), &s("x"), &re, true));
        assert!(!string_pred(
            StrOp::Contains,
            &s("abc"),
            &Value::Int(1),
            &re,
            true
        ));
        // Unknown regex id: cannot apply.
        let bad = StrOp::Matches(betrace_dsl::ir::RegexId(7));
        assert!(!string_pred(bad, &s("x"), &Value::Missing, &re, true));
    }

    #[test]
    fn truthiness_and_case() {
        for (v, t) in [
            (s(""), false),
            (s("false"), false),
            (s("FALSE"), false),
            (s("0"), true),
            (s("no"), true),
            (Value::Int(0), false),
            (Value::Float(0.0), false),
            (Value::Float(-0.5), true),
            (Value::Duration(0), false),
            (Value::Missing, false),
            (Value::Null, false),
        ] {
            assert_eq!(truthy(&v), t, "{v:?}");
        }
        assert_eq!(len(&s("Zürich")), Value::Int(6));
        assert_eq!(len(&Value::Int(5)), Value::Missing);
        assert_eq!(lower(s("GeT")), s("get"));
        assert!(matches!(lower(s("get")), Value::Str(Cow::Borrowed(_))));
        assert_eq!(upper(s("eu-west-1")), s("EU-WEST-1"));
        assert_eq!(upper(Value::Bool(true)), Value::Missing);
        assert_eq!(lower(s("ÄB")), s("äb"));
    }
}
