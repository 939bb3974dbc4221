//! BeTrace rule language (DSL.md).
#![forbid(unsafe_code)]

pub mod bytecode;
pub mod ir;
pub mod lower;
