//! The one registry of diagnostic codes (DSL.md §4).
//!
//! Ranges per phase: E1xx lexical, E2xx syntax, E3xx semantic and type, E4xx limits. A code is
//! never reused for another meaning; `docs/language.md` lists the same table.

use serde::{Serialize, Serializer};

macro_rules! codes {
    ($($name:ident = $text:literal, $meaning:literal;)*) => {
        /// A stable diagnostic code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(#[doc = $meaning] $name,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code as written in diagnostics (`E101`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $text,)*
                }
            }

            /// One line saying what the code means.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Code::$name => $meaning,)*
                }
            }
        }
    };
}

codes! {
    E100 = "E100", "unexpected character, or bytes that are not UTF-8";
    E101 = "E101", "`=` where `==` is meant";
    E102 = "E102", "unknown escape sequence in a string";
    E103 = "E103", "number or duration out of range (i64, finite f64)";
    E104 = "E104", "unterminated string, raw string or block comment";
    E105 = "E105", "unknown suffix after a number (durations take ns, us, µs, ms, s, m, h)";
    E201 = "E201", "unexpected token";
    E202 = "E202", "the rule ends too early";
    E203 = "E203", "a clause is repeated, or `when` comes after `always`/`never`";
    E204 = "E204", "a `-` sign separated from its number";
    E205 = "E205", "this term is not a condition on the trace (a selection, a comparison `span_name.attribute op value`, a `count(...)` comparison or a `trace.` term)";
    E206 = "E206", "the rule is empty";
    E301 = "E301", "a block rule without an `always` or `never` clause";
    E302 = "E302", "comparison of types that can never be equal";
    E303 = "E303", "unknown member of `span.status` or `span.kind`";
    E304 = "E304", "ordering (`<`, `<=`, `>`, `>=`) on a bool or an enum";
    E305 = "E305", "invalid regular expression";
    E306 = "E306", "unknown `span.` or `trace.` field";
    E307 = "E307", "`in` without a list";
    E308 = "E308", "unknown function or method, or wrong number or kind of arguments";
    E309 = "E309", "a name used outside its scope (`span.` at the trace level, `trace.` inside a span predicate)";
    E401 = "E401", "rule text longer than 64 KiB";
    E402 = "E402", "nesting deeper than 64 levels";
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
