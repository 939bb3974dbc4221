//! The disassembler: [`Program::disassemble`] renders a program as a readable listing.

use std::fmt::Write as _;

use super::instr::{Addr, AttrRef, CountOperand, Entry, Instr, Verdict, WitnessList};
use super::program::Program;
use crate::ir::{AttrScope, FormKind, Intrinsic, Literal, StrOp, Symbols, TraceField};

impl Program {
    /// A readable listing of the program: header, decision code, witness code and the side
    /// tables that are not shown inline. Names and keys are resolved through `symbols`.
    pub fn disassemble(&self, symbols: &Symbols) -> String {
        let d = Disasm { p: self, symbols };
        let mut out = String::new();
        let form = match self.form {
            FormKind::Block => "block",
            FormKind::Expression => "expression",
        };
        let _ = writeln!(
            out,
            "; {form} form: {} instructions, {} loop slots, {} value registers, {} counters",
            self.code.len(),
            self.loop_slots,
            self.value_regs,
            self.count_regs
        );
        let _ = writeln!(out, "; route: {}", self.route.describe(symbols));
        for (i, ins) in self.code.iter().enumerate() {
            if i == 0 {
                out.push_str("decide:\n");
            }
            if i as u64 == u64::from(self.witness_entry) {
                out.push_str("witness:\n");
            }
            let (op, args) = d.instr(ins);
            let line = if args.is_empty() {
                format!("  {i:04}  {op}")
            } else {
                format!("  {i:04}  {op:<14}{args}")
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if !self.regexes.is_empty() {
            out.push_str("regexes:\n");
            for (i, re) in self.regexes.iter().enumerate() {
                let _ = writeln!(out, "  re{i}  {:?}", re.as_str());
            }
        }
        out
    }
}

struct Disasm<'a> {
    p: &'a Program,
    symbols: &'a Symbols,
}

fn addr(a: Addr) -> String {
    format!("{a:04}")
}

fn jump(on: bool, target: Addr) -> String {
    format!("→{} if {}", addr(target), on)
}

/// A literal as it would be written in a rule.
pub fn literal_text(l: &Literal) -> String {
    match l {
        Literal::Str(s) => format!("{s:?}"),
        Literal::Int(i) => i.to_string(),
        Literal::Float(f) => format!("{f:?}"),
        Literal::Bool(b) => b.to_string(),
        Literal::Duration(d) => format!("{d}ns"),
        Literal::Null => "null".into(),
        Literal::Status(s) => match s {
            0 => "unset".into(),
            1 => "ok".into(),
            2 => "error".into(),
            n => format!("status#{n}"),
        },
        Literal::Kind(k) => match k {
            0 => "unspecified".into(),
            1 => "internal".into(),
            2 => "server".into(),
            3 => "client".into(),
            4 => "producer".into(),
            5 => "consumer".into(),
            n => format!("kind#{n}"),
        },
        Literal::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(literal_text)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The `span.` intrinsic as written.
pub fn intrinsic_text(i: Intrinsic) -> &'static str {
    match i {
        Intrinsic::Name => "span.name",
        Intrinsic::Service => "span.service",
        Intrinsic::Status => "span.status",
        Intrinsic::StatusMessage => "span.status_message",
        Intrinsic::Kind => "span.kind",
        Intrinsic::Duration => "span.duration",
        Intrinsic::Start => "span.start",
        Intrinsic::End => "span.end",
        Intrinsic::Id => "span.id",
        Intrinsic::ParentId => "span.parent_id",
        Intrinsic::TraceId => "span.trace_id",
        Intrinsic::IsRoot => "span.is_root",
    }
}

/// The `trace.` field as written.
pub fn trace_field_text(f: TraceField) -> &'static str {
    match f {
        TraceField::Id => "trace.id",
        TraceField::Duration => "trace.duration",
        TraceField::SpanCount => "trace.span_count",
        TraceField::RootName => "trace.root_name",
        TraceField::RootService => "trace.root_service",
    }
}

fn str_op_text(op: StrOp, negated: bool) -> String {
    let name = match op {
        StrOp::Contains => "contains".to_string(),
        StrOp::StartsWith => "starts_with".to_string(),
        StrOp::EndsWith => "ends_with".to_string(),
        StrOp::Matches(id) => format!("matches re{}", id.0),
    };
    if negated { format!("not {name}") } else { name }
}

impl Disasm<'_> {
    fn name(&self, idx: u16) -> String {
        match self.p.name_at(idx) {
            Some(id) => match self.symbols.span_names().get(id.0 as usize) {
                Some(n) => format!("{n:?}"),
                None => format!("name#{}", id.0),
            },
            None => format!("?name{idx}"),
        }
    }

    fn attr(&self, idx: u16) -> String {
        match self.p.attr_at(idx) {
            Some(a) => self.attr_ref(a),
            None => format!("?attr{idx}"),
        }
    }

    fn attr_ref(&self, a: &AttrRef) -> String {
        let key = match self.symbols.attribute_keys().get(a.key.0 as usize) {
            Some(k) => k.to_string(),
            None => format!("key#{}", a.key.0),
        };
        match a.scope {
            AttrScope::SpanThenResource => key,
            AttrScope::Span => format!("span.attributes[{key:?}]"),
            AttrScope::Resource => format!("resource.attributes[{key:?}]"),
        }
    }

    fn konst(&self, idx: u16) -> String {
        match self.p.const_at(idx) {
            Some(l) => literal_text(l),
            None => format!("?const{idx}"),
        }
    }

    fn list(&self, items: &[Literal]) -> String {
        let items: Vec<String> = items.iter().map(literal_text).collect();
        format!("[{}]", items.join(", "))
    }

    /// A native selection search as text.
    fn find_text(&self, idx: u16) -> String {
        let Some(f) = self.p.find_at(idx) else {
            return format!("?find{idx}");
        };
        let source = match f.name {
            Some(id) => match self.symbols.span_names().get(id.0 as usize) {
                Some(n) => format!("{n:?}"),
                None => format!("name#{}", id.0),
            },
            None => "*".to_string(),
        };
        let tests: Vec<String> = f
            .tests
            .iter()
            .map(|&(t, want)| {
                let text = self.entry_text(t);
                if want { text } else { format!("not {text}") }
            })
            .collect();
        format!("{source} where {}", tests.join(" and "))
    }

    /// A fused test entry as text.
    fn entry_text(&self, idx: u16) -> String {
        let p = self.p;
        match p.pool.get(usize::from(idx)) {
            Some(Entry::Name(_)) => format!("name {}", self.name(idx)),
            Some(Entry::AttrCmp(_)) => {
                self.instr(&Instr::AttrCmp {
                    test: idx,
                    on: true,
                    target: 0,
                })
                .1
            }
            Some(Entry::IntrCmp(_)) => {
                self.instr(&Instr::IntrCmp {
                    test: idx,
                    on: true,
                    target: 0,
                })
                .1
            }
            Some(Entry::AttrIn(_)) => {
                self.instr(&Instr::AttrIn {
                    test: idx,
                    on: true,
                    target: 0,
                })
                .1
            }
            Some(Entry::AttrStr(_)) => {
                self.instr(&Instr::AttrStr {
                    test: idx,
                    on: true,
                    target: 0,
                })
                .1
            }
            Some(Entry::IntrStr(_)) => {
                self.instr(&Instr::IntrStr {
                    test: idx,
                    on: true,
                    target: 0,
                })
                .1
            }
            Some(Entry::Rel(_)) => {
                self.instr(&Instr::Related {
                    test: idx,
                    on: true,
                    target: 0,
                })
                .1
            }
            _ => format!("?test{idx}"),
        }
        .trim_end_matches("  →0000 if true")
        .to_string()
    }

    fn instr(&self, ins: &Instr) -> (&'static str, String) {
        use Instr::*;
        let p = self.p;
        let missing = |what: &str, idx: u16| format!("?{what}{idx}");
        match *ins {
            Jump { target } => ("jump", format!("→{}", addr(target))),
            Halt { verdict } => (
                "halt",
                match verdict {
                    Verdict::Conforms => "conforms",
                    Verdict::Always => "violated always",
                    Verdict::Never => "violated never",
                    Verdict::Expression => "violated expression",
                }
                .into(),
            ),
            Trap => ("trap", "rule too large to encode".into()),
            ForName { slot, name, empty } => (
                "for_name",
                format!("s{slot} {}  empty→{}", self.name(name), addr(empty)),
            ),
            ForAll { slot, empty } => ("for_all", format!("s{slot}  empty→{}", addr(empty))),
            ForChildren { slot, empty } => {
                ("for_children", format!("s{slot}  empty→{}", addr(empty)))
            }
            ForParent { slot, empty } => ("for_parent", format!("s{slot}  empty→{}", addr(empty))),
            ForDescendants { slot, empty } => {
                ("for_descendants", format!("s{slot}  empty→{}", addr(empty)))
            }
            ForAncestors { slot, empty } => {
                ("for_ancestors", format!("s{slot}  empty→{}", addr(empty)))
            }
            Next { slot, body } => ("next", format!("s{slot}  →{}", addr(body))),
            NextAncestor { slot, body } => ("next_ancestor", format!("s{slot}  →{}", addr(body))),
            Exit { slot, target } => ("exit", format!("s{slot}  →{}", addr(target))),
            Skip { slot, test, done } => (
                "skip",
                format!(
                    "s{slot} until {}  done→{}",
                    self.entry_text(test),
                    addr(done)
                ),
            ),
            SkipNot { slot, test, done } => (
                "skip_not",
                format!(
                    "s{slot} until not {}  done→{}",
                    self.entry_text(test),
                    addr(done)
                ),
            ),
            Find { find, on, target } => (
                "find",
                format!("{}  {}", self.find_text(find), jump(on, target)),
            ),
            CountFind { reg, find } => {
                ("count_find", format!("c{reg} := {}", self.find_text(find)))
            }
            NameIs { name, on, target } => (
                "name_is",
                format!("{}  {}", self.name(name), jump(on, target)),
            ),
            HasName { name, on, target } => (
                "has_name",
                format!("{}  {}", self.name(name), jump(on, target)),
            ),
            AttrCmp { test, on, target } => {
                let t = match p.attr_cmp_at(test) {
                    Some(t) => format!(
                        "{} {} {}",
                        self.attr_ref(&t.attr),
                        t.op.as_str(),
                        literal_text(&t.value)
                    ),
                    None => missing("attr_cmp", test),
                };
                ("attr_cmp", format!("{t}  {}", jump(on, target)))
            }
            IntrCmp { test, on, target } => {
                let t = match p.intr_cmp_at(test) {
                    Some(t) => format!(
                        "{} {} {}",
                        intrinsic_text(t.intr),
                        t.op.as_str(),
                        literal_text(&t.value)
                    ),
                    None => missing("intr_cmp", test),
                };
                ("intr_cmp", format!("{t}  {}", jump(on, target)))
            }
            AttrTruthy { attr, on, target } => (
                "attr_truthy",
                format!("{}  {}", self.attr(attr), jump(on, target)),
            ),
            AttrExists { attr, on, target } => (
                "attr_exists",
                format!("{}  {}", self.attr(attr), jump(on, target)),
            ),
            AttrIn { test, on, target } => {
                let t = match p.attr_in_at(test) {
                    Some(t) => format!(
                        "{} {}in {}",
                        self.attr_ref(&t.attr),
                        if t.negated { "not " } else { "" },
                        self.list(&t.list)
                    ),
                    None => missing("attr_in", test),
                };
                ("attr_in", format!("{t}  {}", jump(on, target)))
            }
            AttrStr { test, on, target } => {
                let t = match p.attr_str_at(test) {
                    Some(t) => match t.op {
                        StrOp::Matches(_) => format!(
                            "{} {}",
                            self.attr_ref(&t.attr),
                            str_op_text(t.op, t.negated)
                        ),
                        _ => format!(
                            "{} {} {}",
                            self.attr_ref(&t.attr),
                            str_op_text(t.op, t.negated),
                            literal_text(&t.arg)
                        ),
                    },
                    None => missing("attr_str", test),
                };
                ("attr_str", format!("{t}  {}", jump(on, target)))
            }
            IntrStr { test, on, target } => {
                let t = match p.intr_str_at(test) {
                    Some(t) => match t.op {
                        StrOp::Matches(_) => format!(
                            "{} {}",
                            intrinsic_text(t.intr),
                            str_op_text(t.op, t.negated)
                        ),
                        _ => format!(
                            "{} {} {}",
                            intrinsic_text(t.intr),
                            str_op_text(t.op, t.negated),
                            literal_text(&t.arg)
                        ),
                    },
                    None => missing("intr_str", test),
                };
                ("intr_str", format!("{t}  {}", jump(on, target)))
            }
            Related { test, on, target } => {
                let t = match p.rel_at(test) {
                    Some(t) => {
                        let within = match t.within {
                            Some(w) => format!(" within {w}ns"),
                            None => String::new(),
                        };
                        format!("{} of s{}{within}", t.relation.as_str(), t.slot)
                    }
                    None => missing("relation", test),
                };
                ("related", format!("{t}  {}", jump(on, target)))
            }
            TraceField { test, on, target } => {
                let t = match p.field_at(test) {
                    Some(t) => format!(
                        "{} {} {}",
                        trace_field_text(t.field),
                        t.op.as_str(),
                        literal_text(&t.value)
                    ),
                    None => missing("field_cmp", test),
                };
                ("trace_field", format!("{t}  {}", jump(on, target)))
            }
            CountName { reg, name } => ("count_name", format!("c{reg} := {}", self.name(name))),
            CountAll { reg } => ("count_all", format!("c{reg}")),
            Zero { reg } => ("zero", format!("c{reg}")),
            Incr { reg } => ("incr", format!("c{reg}")),
            CountCmp { test, on, target } => {
                let t = match p.count_cmp_at(test) {
                    Some(t) => {
                        let rhs = match t.rhs {
                            CountOperand::Int(i) => i.to_string(),
                            CountOperand::Reg(r) => format!("c{r}"),
                        };
                        format!("c{} {} {rhs}", t.reg, t.op.as_str())
                    }
                    None => missing("count_cmp", test),
                };
                ("count_cmp", format!("{t}  {}", jump(on, target)))
            }
            LoadConst { dst, konst } => ("load_const", format!("r{dst} := {}", self.konst(konst))),
            LoadAttr { dst, attr } => ("load_attr", format!("r{dst} := {}", self.attr(attr))),
            LoadIntr { dst, intr } => ("load_intr", format!("r{dst} := {}", intrinsic_text(intr))),
            LoadExists { dst, attr } => (
                "load_exists",
                format!("r{dst} := exists({})", self.attr(attr)),
            ),
            Len { dst, src } => ("len", format!("r{dst} := #r{src}")),
            Lower { dst, src } => ("lower", format!("r{dst} := r{src}:lower()")),
            Upper { dst, src } => ("upper", format!("r{dst} := r{src}:upper()")),
            StrCall { dst, test } => {
                let t = match p.reg_str_at(test) {
                    Some(t) => match t.op {
                        StrOp::Matches(_) => format!("r{} {}", t.a, str_op_text(t.op, false)),
                        _ => format!("r{} {} r{}", t.a, str_op_text(t.op, false), t.b),
                    },
                    None => missing("reg_str", test),
                };
                ("str_call", format!("r{dst} := {t}"))
            }
            Cmp { test, on, target } => {
                let t = match p.reg_cmp_at(test) {
                    Some(t) => format!("r{} {} r{}", t.a, t.op.as_str(), t.b),
                    None => missing("reg_cmp", test),
                };
                ("cmp", format!("{t}  {}", jump(on, target)))
            }
            In { test, on, target } => {
                let t = match p.reg_in_at(test) {
                    Some(t) => format!(
                        "r{} {}in {}",
                        t.reg,
                        if t.negated { "not " } else { "" },
                        self.list(&t.list)
                    ),
                    None => missing("reg_in", test),
                };
                ("in", format!("{t}  {}", jump(on, target)))
            }
            Str { test, on, target } => {
                let t = match p.reg_str_at(test) {
                    Some(t) => match t.op {
                        StrOp::Matches(_) => format!("r{} {}", t.a, str_op_text(t.op, t.negated)),
                        _ => format!("r{} {} r{}", t.a, str_op_text(t.op, t.negated), t.b),
                    },
                    None => missing("reg_str", test),
                };
                ("str", format!("{t}  {}", jump(on, target)))
            }
            Truthy { reg, on, target } => ("truthy", format!("r{reg}  {}", jump(on, target))),
            Push { list } => (
                "push",
                match list {
                    WitnessList::Trigger => "trigger".into(),
                    WitnessList::Offending => "offending".into(),
                },
            ),
        }
    }
}
