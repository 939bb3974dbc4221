//! Reading JavaScript values.
//!
//! In: N-API values ([`Unknown`]). Out: [`Js`], a value classified by its JavaScript type with
//! its scalar already read, and [`to_json`], which turns plain data (objects, arrays, strings,
//! numbers, booleans, `null`, `BigInt`s) into a [`serde_json::Value`] for the decoders of
//! `betrace-core`. Problems with the data are [`Problem`]s naming the path of the bad value;
//! failures of Node-API itself (a getter that throws) stay [`napi::Error`]s.

use napi::bindgen_prelude::{BigInt, FromNapiValue, JsObjectValue, Object, Uint8ArraySlice};
use napi::{JsValue, Unknown, ValueType};
use serde_json::{Map, Number, Value};

/// A JavaScript value by type; strings, numbers, booleans and `BigInt`s are read.
pub(crate) enum Js<'e> {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    BigInt(BigInt),
    Array(Object<'e>),
    /// A `Uint8Array` or `Buffer`, not yet copied.
    Bytes(Uint8ArraySlice<'e>),
    /// A typed array of another element type (e.g. `Float64Array`).
    OtherTypedArray,
    Object(Object<'e>),
    Function,
    Other(ValueType),
}

impl<'e> Js<'e> {
    /// Classifies `value`.
    pub(crate) fn read(value: Unknown<'e>) -> napi::Result<Js<'e>> {
        Ok(match value.get_type()? {
            ValueType::Undefined => Js::Undefined,
            ValueType::Null => Js::Null,
            ValueType::Boolean => Js::Bool(bool::from_unknown(value)?),
            ValueType::Number => Js::Number(f64::from_unknown(value)?),
            ValueType::String => Js::String(String::from_unknown(value)?),
            ValueType::BigInt => Js::BigInt(BigInt::from_unknown(value)?),
            ValueType::Function => Js::Function,
            ValueType::Object => {
                if value.is_array()? {
                    Js::Array(Object::from_unknown(value)?)
                } else if value.is_typedarray()? {
                    match Uint8ArraySlice::from_unknown(value) {
                        Ok(bytes) => Js::Bytes(bytes),
                        Err(_) => Js::OtherTypedArray,
                    }
                } else {
                    Js::Object(Object::from_unknown(value)?)
                }
            }
            other => Js::Other(other),
        })
    }

    /// What the value is, for messages (`a string`, `an array`).
    pub(crate) fn describe(&self) -> String {
        match self {
            Js::Undefined => "undefined".into(),
            Js::Null => "null".into(),
            Js::Bool(_) => "a boolean".into(),
            Js::Number(_) => "a number".into(),
            Js::String(_) => "a string".into(),
            Js::BigInt(_) => "a BigInt".into(),
            Js::Array(_) => "an array".into(),
            Js::Bytes(_) => "a Uint8Array".into(),
            Js::OtherTypedArray => "a typed array other than Uint8Array".into(),
            Js::Object(_) => "an object".into(),
            Js::Function => "a function".into(),
            Js::Other(t) => format!("a {}", format!("{t:?}").to_lowercase()),
        }
    }
}

/// A problem with the data of one value: the path to it (`attributes.user`, `[2]`; empty for
/// the value itself) and what is wrong, lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same problem seen from the parent: `key` (or `[i]`) goes in front of the path.
    pub(crate) fn under(mut self, step: &str) -> Problem {
        self.path = if self.path.is_empty() || self.path.starts_with('[') {
            format!("{step}{}", self.path)
        } else {
            format!("{step}.{}", self.path)
        };
        self
    }
}

/// Failure to read a value: a problem with the data, or with Node-API.
#[derive(Debug)]
pub(crate) enum ReadError {
    Data(Problem),
    Napi(napi::Error),
}

impl From<napi::Error> for ReadError {
    fn from(e: napi::Error) -> ReadError {
        ReadError::Napi(e)
    }
}

impl From<Problem> for ReadError {
    fn from(p: Problem) -> ReadError {
        ReadError::Data(p)
    }
}

impl ReadError {
    /// Adds a path step in front of a data problem's path.
    pub(crate) fn under(self, step: &str) -> ReadError {
        match self {
            ReadError::Data(p) => ReadError::Data(p.under(step)),
            other => other,
        }
    }
}

/// Deepest nesting [`to_json`] follows; deeper data (or a cyclic object) is a [`Problem`].
pub(crate) const MAX_JSON_DEPTH: usize = 128;

/// `2^63` as a float: integral numbers in `[-2^63, 2^63)` become JSON integers.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Converts plain JavaScript data to JSON the way `JSON.stringify` would, except that
/// numbers keep their integer-ness for the decoders: a finite number without a fraction in
/// the range of i64 (or u64) is a JSON integer, any other number a JSON float, and a `BigInt`
/// is a JSON integer when it fits in i64 or u64. Object properties that are `undefined` or
/// functions are left out (as `JSON.stringify` does); in arrays they become `null`.
///
/// Errors: `NaN` or an infinity, a `BigInt` beyond 64 bits, binary data, a symbol, or nesting
/// deeper than [`MAX_JSON_DEPTH`] (which also catches cyclic objects).
pub(crate) fn to_json(value: Unknown<'_>) -> Result<Value, ReadError> {
    json_value(value, 0).map(|v| v.unwrap_or(Value::Null))
}

fn json_value(value: Unknown<'_>, depth: usize) -> Result<Option<Value>, ReadError> {
    Ok(Some(match Js::read(value)? {
        Js::Undefined | Js::Function => return Ok(None),
        Js::Null => Value::Null,
        Js::Bool(b) => Value::Bool(b),
        Js::String(s) => Value::String(s),
        Js::Number(n) => Value::Number(json_number(n)?),
        Js::BigInt(b) => Value::Number(json_bigint(&b)?),
        Js::Array(array) => {
            check_depth(depth)?;
            let len = array.get_array_length()?;
            let mut items = Vec::with_capacity(len as usize);
            for i in 0..len {
                let item = array.get_element::<Unknown>(i)?;
                let item = json_value(item, depth + 1).map_err(|e| e.under(&format!("[{i}]")))?;
                items.push(item.unwrap_or(Value::Null));
            }
            Value::Array(items)
        }
        Js::Object(object) => {
            check_depth(depth)?;
            let mut map = Map::new();
            for (key, item) in properties(&object)? {
                if let Some(v) = json_value(item, depth + 1).map_err(|e| e.under(&key))? {
                    map.insert(key, v);
                }
            }
            Value::Object(map)
        }
        other => {
            return Err(
                Problem::new("", format!("{} is not a JSON value", other.describe())).into(),
            );
        }
    }))
}

fn check_depth(depth: usize) -> Result<(), Problem> {
    if depth >= MAX_JSON_DEPTH {
        return Err(Problem::new(
            "",
            format!(
                "values are nested deeper than {MAX_JSON_DEPTH} levels (is the object cyclic?)"
            ),
        ));
    }
    Ok(())
}

/// A JSON number for a JavaScript number (see [`to_json`]).
pub(crate) fn json_number(n: f64) -> Result<Number, Problem> {
    if let Some(i) = integral_i64(n) {
        return Ok(Number::from(i));
    }
    if n.is_finite() && n.fract() == 0.0 && (0.0..2.0 * TWO_POW_63).contains(&n) {
        return Ok(Number::from(n as u64));
    }
    Number::from_f64(n).ok_or_else(|| Problem::new("", format!("`{n}` is not a finite number")))
}

/// `n` as an i64 when it is finite, has no fraction and lies in `[-2^63, 2^63)`; `-0` is 0.
pub(crate) fn integral_i64(n: f64) -> Option<i64> {
    (n.is_finite() && n.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&n))
        .then_some(n as i64)
}

/// A JSON integer for a `BigInt` that fits in i64 or u64.
fn json_bigint(b: &BigInt) -> Result<Number, Problem> {
    let (value, lossless) = b.get_i128();
    if lossless {
        if let Ok(i) = i64::try_from(value) {
            return Ok(Number::from(i));
        }
        if let Ok(u) = u64::try_from(value) {
            return Ok(Number::from(u));
        }
    }
    Err(Problem::new("", "a BigInt beyond 64 bits is not supported"))
}

/// A `BigInt` as an i64, when it fits.
pub(crate) fn bigint_i64(b: &BigInt) -> Option<i64> {
    let (value, lossless) = b.get_i128();
    if lossless {
        i64::try_from(value).ok()
    } else {
        None
    }
}

/// The enumerable string-keyed properties of `object`, in property order.
pub(crate) fn properties<'e>(object: &Object<'e>) -> napi::Result<Vec<(String, Unknown<'e>)>> {
    let names = object.get_property_names()?;
    let len = names.get_array_length()?;
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..len {
        let key = names.get_element::<Unknown>(i)?;
        let value = object.get_property::<Unknown, Unknown>(key)?;
        out.push((String::from_unknown(key)?, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_integer_ness() {
        assert_eq!(json_number(3.0).unwrap(), Number::from(3));
        assert_eq!(json_number(-0.0).unwrap(), Number::from(0));
        assert_eq!(json_number(1.5).unwrap().as_f64(), Some(1.5));
        assert_eq!(
            json_number(1.7e18).unwrap(),
            Number::from(1_700_000_000_000_000_000_i64)
        );
        assert_eq!(
            json_number(1.8e19).unwrap(),
            Number::from(18_000_000_000_000_000_000_u64)
        );
        assert!(json_number(1e20).unwrap().is_f64());
        assert!(json_number(f64::NAN).is_err());
        assert!(json_number(f64::INFINITY).is_err());
        assert_eq!(integral_i64(-TWO_POW_63), Some(i64::MIN));
        assert_eq!(integral_i64(TWO_POW_63), None);
        assert_eq!(integral_i64(0.5), None);
    }

    #[test]
    fn problem_paths_grow_from_the_leaf() {
        let p = Problem::new("", "bad").under("[2]").under("tags");
        assert_eq!(p.path, "tags[2]");
        let p = Problem::new("", "bad").under("user").under("attributes");
        assert_eq!(p.path, "attributes.user");
    }
}
