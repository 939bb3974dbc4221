//! What a trace must contain for a rule to be violated.
//!
//! In: a checked rule body. Out: a set of [`Need`]s of which at least one must be present in a
//! trace for the rule to fire, or `None` when the rule can fire on any trace. Conservative:
//! `None` whenever unsure. The VM uses the span-name part to answer "conforms" without running
//! ([`crate::bytecode::Program::required_names`]); a rule set uses the whole to run only the
//! rules that can fire on a trace (ENGINE.md §3).

use std::cmp::Ordering;

use crate::ir::{
    Body, CmpOp, Cond, CountRhs, Intrinsic, Literal, NameId, Operand, Pred, Selection, Target,
    TraceField, TraceTerm,
};

/// Something a trace must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// A span of this name.
    Name(NameId),
    /// A span of this service (resource `service.name`).
    Service(Box<str>),
}

/// The needs of a violation of `body` (DSL.md §3.1: block form, `when ∧ (¬always ∨ never)`;
/// expression form, the predicate). `name_id` maps a span name written as a string literal
/// (`span.name == "checkout"`, `trace.root_name == …`) to its id; names it cannot map leave
/// that part unknown.
pub fn violation_needs(
    body: &Body,
    name_id: &mut dyn FnMut(&str) -> Option<NameId>,
) -> Option<Vec<Need>> {
    let mut needs = match body {
        Body::Block { when: Some(w), .. } => cond(w, name_id),
        Body::Block {
            when: None,
            always: None,
            never: Some(n),
        } => cond(n, name_id),
        Body::Block { when: None, .. } => None,
        Body::SpanScoped(p) | Body::TraceScoped(p) => pred(p, name_id),
    }?;
    needs.dedup();
    Some(needs)
}

/// Only the span names, when every need is a name (sorted, unique).
pub fn required_names(body: &Body) -> Option<Vec<NameId>> {
    let mut names: Vec<NameId> = violation_needs(body, &mut |_| None)?
        .into_iter()
        .map(|n| match n {
            Need::Name(id) => Some(id),
            Need::Service(_) => None,
        })
        .collect::<Option<_>>()?;
    names.sort_unstable();
    names.dedup();
    Some(names)
}

type NameOf<'a> = &'a mut dyn FnMut(&str) -> Option<NameId>;

/// The smallest known need set of a conjunction.
fn smallest(sets: impl Iterator<Item = Option<Vec<Need>>>) -> Option<Vec<Need>> {
    sets.flatten().min_by_key(Vec::len)
}

/// The union of a disjunction, unknown if any branch is.
fn union(sets: impl Iterator<Item = Option<Vec<Need>>>) -> Option<Vec<Need>> {
    let mut all = Vec::new();
    for s in sets {
        all.extend(s?);
    }
    Some(all)
}

fn cond(c: &Cond, name_id: NameOf<'_>) -> Option<Vec<Need>> {
    match c {
        Cond::Exists(sel) => selection(sel, name_id),
        Cond::And(items) => smallest(items.iter().map(|i| cond(i, name_id))),
        Cond::Or(items) => union(items.iter().map(|i| cond(i, name_id))),
        Cond::Count { lhs, op, rhs } => {
            // With no span of the names every count is 0: if the comparison then holds, a
            // violation needs nothing.
            let holds_at_zero = match rhs {
                CountRhs::Int(k) => op.holds(0.cmp(k)),
                CountRhs::Count(_) => op.holds(Ordering::Equal),
            };
            if holds_at_zero {
                return None;
            }
            let mut needs = selection(lhs, name_id)?;
            if let CountRhs::Count(sel) = rhs {
                needs.extend(selection(sel, name_id)?);
            }
            Some(needs)
        }
        Cond::Trace(t) => trace(t, name_id),
        Cond::Not(_) => None,
    }
}

fn selection(sel: &Selection, name_id: NameOf<'_>) -> Option<Vec<Need>> {
    match sel.target {
        Target::Name(n) => Some(vec![Need::Name(n)]),
        // `*.where(p)`: what `p` needs of the selected span.
        Target::Any => smallest(sel.filters.iter().map(|p| pred(p, name_id))),
    }
}

fn trace(t: &TraceTerm, name_id: NameOf<'_>) -> Option<Vec<Need>> {
    match t {
        TraceTerm::Has(p) => pred(p, name_id),
        // `trace.root_name == X` needs a root span named X. `""` is also the value without a
        // root (DSL.md §3.4 table, §7.15: every span's parent may lie outside the trace), so
        // `== ""` needs nothing at all; likewise for `root_service` (a root without
        // `service.name` has the service `""` as well).
        TraceTerm::Field {
            field: TraceField::RootName,
            op: CmpOp::Eq,
            value: Literal::Str(name),
        } if !name.is_empty() => Some(vec![Need::Name(name_id(name)?)]),
        TraceTerm::Field {
            field: TraceField::RootService,
            op: CmpOp::Eq,
            value: Literal::Str(service),
        } if !service.is_empty() => Some(vec![Need::Service(service.clone())]),
        _ => None,
    }
}

fn pred(p: &Pred, name_id: NameOf<'_>) -> Option<Vec<Need>> {
    match p {
        Pred::And(items) => smallest(items.iter().map(|i| pred(i, name_id))),
        Pred::Or(items) => union(items.iter().map(|i| pred(i, name_id))),
        Pred::Compare {
            lhs,
            op: CmpOp::Eq,
            rhs,
        } => match (lhs, rhs) {
            (Operand::Intrinsic(Intrinsic::Name), Operand::Literal(Literal::Str(name)))
            | (Operand::Literal(Literal::Str(name)), Operand::Intrinsic(Intrinsic::Name)) => {
                Some(vec![Need::Name(name_id(name)?)])
            }
            (Operand::Intrinsic(Intrinsic::Service), Operand::Literal(Literal::Str(s)))
            | (Operand::Literal(Literal::Str(s)), Operand::Intrinsic(Intrinsic::Service)) => {
                Some(vec![Need::Service(s.clone())])
            }
            _ => None,
        },
        Pred::Trace(t) => trace(t, name_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Symbols;

    /// The needs of `source` as written: `name:x` and `service:x`, sorted; `None` when any trace
    /// may violate it.
    fn needs(source: &str) -> Option<Vec<String>> {
        let mut symbols = Symbols::new();
        let rule = crate::check_source(source, &mut symbols).unwrap();
        let mut interned = symbols.clone();
        let mut out: Vec<String> =
            violation_needs(&rule.body, &mut |n| Some(interned.intern_span_name(n)))?
                .into_iter()
                .map(|n| match n {
                    Need::Name(id) => format!("name:{}", interned.span_names()[id.0 as usize]),
                    Need::Service(s) => format!("service:{s}"),
                })
                .collect();
        out.sort();
        Some(out)
    }

    fn some(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn root_name_and_service_need_a_root_of_that_name_or_service() {
        assert_eq!(
            needs("never { trace.root_name == \"checkout\" }"),
            some(&["name:checkout"])
        );
        assert_eq!(
            needs("trace.root_service == \"api\""),
            some(&["service:api"])
        );
        assert_eq!(needs("never { trace.root_name != \"checkout\" }"), None);
    }

    #[test]
    fn an_empty_root_name_or_service_needs_nothing() {
        // `""` is also the value of a trace without a root.
        assert_eq!(needs("never { trace.root_name == \"\" }"), None);
        assert_eq!(needs("trace.root_name == \"\""), None);
        assert_eq!(needs("trace.root_service == \"\""), None);
        assert_eq!(
            needs("when { trace.root_service == \"\" } always { gateway }"),
            None
        );
        assert_eq!(
            needs("when { trace.root_name == \"\" and payment } always { gateway }"),
            some(&["name:payment"])
        );
        // A span named `""` is still a span name.
        assert_eq!(needs("span.name == \"\""), some(&["name:"]));
        assert_eq!(needs("span.service == \"\""), some(&["service:"]));
    }
}
