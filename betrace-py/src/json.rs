//! Python values ↔ JSON values.
//!
//! In: a Python dict / list / str / int / float / bool / None (the shape `json.loads` gives;
//! tuples and other mappings too). Out: a [`serde_json::Value`] for the core's JSON decoders,
//! or a [`JsonPathError`] naming the path of the value that has no JSON form.
//!
//! The other way, [`to_python`] turns the serde JSON shape of a core value (a violation, a
//! diagnostic, a rule) into the dicts and lists `json.loads` would give for the server's
//! body, keys in the same order.
//!
//! Integers keep the reading of JSON text by `serde_json`: one that fits i64 or u64 stays an
//! integer, a larger one becomes a float.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Deepest nesting of lists and dicts converted: the recursion limit of `serde_json` when it
/// reads JSON text, so a dict is accepted exactly when its JSON text would be.
pub const MAX_JSON_DEPTH: usize = 128;

/// A value without a JSON form.
#[derive(Debug)]
pub struct JsonPathError {
    /// Where, e.g. `attributes.user`, `resourceSpans[0]`; empty for the value itself.
    pub path: String,
    pub message: String,
}

/// The serde JSON shape of `value` as Python data: `json.loads` of the text the server
/// writes for it.
pub fn to_python<'py, T: serde::Serialize>(
    py: Python<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    py.import(intern!(py, "json"))?
        .call_method1(intern!(py, "loads"), (text,))
}

/// Converts `obj`; `path` is the location of `obj` in errors.
pub fn to_json(obj: &Bound<'_, PyAny>, path: &mut String) -> Result<Value, JsonPathError> {
    convert(obj, path, 0)
}

fn fail(path: &str, message: String) -> JsonPathError {
    JsonPathError {
        path: path.to_owned(),
        message,
    }
}

/// The Python type name of `obj`, for messages (`set`, `ReadableSpan`).
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

fn convert(
    obj: &Bound<'_, PyAny>,
    path: &mut String,
    depth: usize,
) -> Result<Value, JsonPathError> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s
            .to_cow()
            .map(|s| Value::String(s.into_owned()))
            .map_err(|e| fail(path, format!("a string that is not valid Unicode: {e}")));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return int_to_json(obj).ok_or_else(|| {
            fail(
                path,
                "an integer too large for a JSON number (beyond the range of a float)".into(),
            )
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| fail(path, format!("`{}` has no JSON form", f.value())));
    }
    if depth >= MAX_JSON_DEPTH {
        return Err(fail(
            path,
            format!("lists and dicts are nested deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = dict_key(&k, path)?;
            let len = push_key(path, &key);
            let value = convert(&v, path, depth + 1)?;
            path.truncate(len);
            map.insert(key, value);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        let iter = obj
            .try_iter()
            .map_err(|e| fail(path, format!("cannot iterate: {e}")))?;
        for (i, item) in iter.enumerate() {
            let item = item.map_err(|e| fail(path, format!("cannot iterate: {e}")))?;
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            out.push(convert(&item, path, depth + 1)?);
            path.truncate(len);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(m) = obj.cast::<PyMapping>() {
        let items = m
            .items()
            .map_err(|e| fail(path, format!("cannot read the mapping: {e}")))?;
        let mut map = Map::new();
        for pair in items.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair
                .extract()
                .map_err(|e| fail(path, format!("cannot read the mapping: {e}")))?;
            let key = dict_key(&k, path)?;
            let len = push_key(path, &key);
            let value = convert(&v, path, depth + 1)?;
            path.truncate(len);
            map.insert(key, value);
        }
        return Ok(Value::Object(map));
    }
    Err(fail(
        path,
        format!("a value of type `{}` has no JSON form", type_name(obj)),
    ))
}

fn dict_key(k: &Bound<'_, PyAny>, path: &str) -> Result<String, JsonPathError> {
    match k.cast::<PyString>() {
        Ok(s) => s
            .to_cow()
            .map(|s| s.into_owned())
            .map_err(|e| fail(path, format!("a key that is not valid Unicode: {e}"))),
        Err(_) => Err(fail(
            path,
            format!(
                "a dict key must be a string, found `{}` of type `{}`",
                k.repr().map(|r| r.to_string()).unwrap_or_default(),
                type_name(k)
            ),
        )),
    }
}

/// Appends `.key` (or `key` at the top) to `path`; returns the length to truncate back to.
fn push_key(path: &mut String, key: &str) -> usize {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    len
}

/// An int as serde_json reads the same digits: i64, else u64, else f64; `None` beyond f64.
fn int_to_json(obj: &Bound<'_, PyAny>) -> Option<Value> {
    if let Ok(i) = obj.extract::<i64>() {
        return Some(Value::Number(i.into()));
    }
    if let Ok(u) = obj.extract::<u64>() {
        return Some(Value::Number(u.into()));
    }
    let f = obj.extract::<f64>().ok()?;
    Number::from_f64(f).map(Value::Number)
}
