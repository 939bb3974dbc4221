//! BeTrace rule language (DSL.md): text → tokens (logos) → syntax tree (lalrpop) → checked IR
//! → bytecode [`bytecode::Program`]; diagnostics and canonical formatting.
//!
//! ```
//! let mut symbols = betrace_dsl::ir::Symbols::new();
//! let rule = betrace_dsl::check_source("when { payment.amount > 1000 } always { fraud_check }", &mut symbols);
//! assert!(rule.is_ok());
//! let errors = betrace_dsl::validate("when { payment }");
//! assert_eq!(errors[0].code.as_str(), "E301");
//! ```
#![forbid(unsafe_code)]

pub mod ast;
pub mod bytecode;
pub mod check;
pub mod codes;
pub mod diagnostic;
pub mod format;
pub mod gate;
pub mod ir;
pub mod lexer;
pub mod lower;
pub mod parser;
pub mod requirements;
pub mod route;

pub use codes::Code;
pub use diagnostic::{Diagnostic, DiagnosticJson, LabelJson, TextRange, render};
pub use ir::Symbols;

/// Parses and checks rule text, interning names into `symbols` (shared by the rules of a rule
/// set). Errors: every diagnostic found (lexical, syntax, semantic, limits).
pub fn check_source(source: &str, symbols: &mut Symbols) -> Result<ir::Rule, Vec<Diagnostic>> {
    let (ast, mut diags) = parser::parse(source);
    let Some(ast) = ast else {
        return Err(diags);
    };
    // Check even after recovered syntax errors, to report semantic errors of the valid parts.
    match check::check(&ast, symbols) {
        Ok(rule) if diags.is_empty() => Ok(rule),
        Ok(_) => Err(diags),
        Err(more) => {
            diags.extend(more);
            diags.sort_by_key(|d| (d.range().start, d.code));
            diags.dedup();
            Err(diags)
        }
    }
}

/// Every diagnostic of a rule; empty when it compiles.
pub fn validate(source: &str) -> Vec<Diagnostic> {
    match check_source(source, &mut Symbols::new()) {
        Ok(_) => Vec::new(),
        Err(d) => d,
    }
}

/// Which surface form a rule is written in, when it parses.
pub fn form_of(source: &str) -> Option<ir::FormKind> {
    match parser::parse(source).0? {
        ast::RuleAst::Block(_) => Some(ir::FormKind::Block),
        ast::RuleAst::Expression(_) => Some(ir::FormKind::Expression),
    }
}

/// The canonical text of a rule (DSL.md §5). Comments are not part of the syntax tree: a rule
/// whose text holds comments is returned unchanged rather than losing them. Errors: the rule's
/// diagnostics when it does not compile.
pub fn format(source: &str) -> Result<String, Vec<Diagnostic>> {
    let diags = validate(source);
    if !diags.is_empty() {
        return Err(diags);
    }
    let (ast, _) = parser::parse(source);
    match ast {
        Some(ast) if !lexer::has_comments(source) => Ok(format::format_ast(&ast)),
        _ => Ok(source.to_string()),
    }
}
