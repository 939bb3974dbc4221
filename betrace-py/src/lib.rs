//! Python bindings of BeTrace (BINDINGS.md, Python): the native module `betrace._native`.
//!
//! In: Python values — rule texts, rules files, span input (OpenTelemetry SDK `ReadableSpan`
//! objects, simple-JSON and OTLP/JSON dicts, OTLP protobuf bytes). Out: `Rule`, `Engine`,
//! `Violation`, `SpanRef`, `Diagnostic` objects and the exceptions of `betrace._errors`.
//! Everything is a conversion around `betrace-core` and `betrace-dsl`: [`spans`] converts span
//! input, [`json`] Python ↔ JSON values, [`errors`] maps every error, [`classes`] holds the
//! Python classes and functions. The pure-Python package `betrace` (in `python/`) re-exports
//! them and adds `assert_no_violations` and the pytest plugin.
#![forbid(unsafe_code)]

pub mod classes;
pub mod errors;
pub mod json;
pub mod spans;

use pyo3::prelude::*;

/// The module `betrace._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<classes::Rule>()?;
    m.add_class::<classes::Engine>()?;
    m.add_class::<classes::Violation>()?;
    m.add_class::<classes::SpanRef>()?;
    m.add_class::<classes::Diagnostic>()?;
    m.add_function(wrap_pyfunction!(classes::check, m)?)?;
    m.add_function(wrap_pyfunction!(classes::validate, m)?)?;
    m.add_function(wrap_pyfunction!(classes::format, m)?)?;
    Ok(())
}
