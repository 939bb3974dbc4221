//! BeTrace rule language (DSL.md).
#![forbid(unsafe_code)]

pub mod ast;
pub mod codes;
pub mod diagnostic;
pub mod ir;
pub mod lexer;
pub mod parser;
