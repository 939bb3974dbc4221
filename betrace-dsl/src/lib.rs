//! BeTrace rule language (DSL.md).
#![forbid(unsafe_code)]

pub mod ir;
