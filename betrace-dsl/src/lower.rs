//! Lowering of the checked IR to bytecode.
//!
//! In: a checked [`ir::Rule`]. Out: a [`Program`] (see [`crate::bytecode`] for the machine
//! model). Everything that can be decided before a trace is seen is decided here: span names
//! and attribute keys are already interned ids, regexes are moved (not recompiled) into the
//! program, literals become constant-pool entries typed as the checker typed them, `where`
//! filters become jumps inside a loop over the spans of one name, and the common shapes —
//! attribute vs constant, intrinsic vs constant, `in`, string tests on an attribute, a bare
//! name — get fused instructions. A boolean-literal predicate (`where(false)`) is folded
//! away. Witness code (DSL.md §3.6, §7.1) is generated from the negation normal form of each
//! clause: only terms under an even number of `not`s push spans, a conjunction only when it
//! is true, a disjunction through each of its branches that is true.

use ahash::AHashMap;
use regex::Regex;

use crate::bytecode::{
    Addr, AttrCmp, AttrIn, AttrRef, AttrStr, CountCmp, CountOperand, Entry, FieldCmp, Find, Instr,
    IntrCmp, IntrStr, Program, RegCmp, RegIn, RegStr, RelTest, Verdict, WitnessList,
};
use crate::ir::{
    self, AttrScope, Body, CmpOp, Cond, CountRhs, KeyId, Literal, NameId, Operand, Pred, Relation,
    Selection, StrOp, Target, TraceTerm,
};

/// Lowers a checked rule to a program. Never fails: a rule whose tables outgrow the 16-bit
/// indices of the instruction encoding (impossible for rules the checker accepts, DSL.md
/// §3.7) yields a program that is a single [`Instr::Trap`], which the VM reports as an
/// evaluation error.
pub fn lower(rule: ir::Rule) -> Program {
    let ir::Rule { body, regexes } = rule;
    let mut l = Lowerer::new(&body);
    l.body(&body);
    let mut p = l.finish(regexes);
    if !p.is_trap() {
        p.required_names = crate::requirements::required_names(&body);
        p.classify_decision();
    }
    p
}

/// The conjuncts of `p` (nested `and`s flattened).
fn flatten_and<'p>(p: &'p Pred, out: &mut Vec<&'p Pred>) {
    match p {
        Pred::And(ps) => ps.iter().for_each(|q| flatten_and(q, out)),
        _ => out.push(p),
    }
}

/// The pool entry of a predicate that has a fused test, and whether the predicate holds when
/// the test is true (`false` under a `not`).
fn fused_entry(p: &Pred) -> Option<(Entry, bool)> {
    let str_entry = |op: StrOp, operand: &Operand, arg: &Operand, negated: bool| {
        let arg = match (op, arg) {
            (StrOp::Matches(_), _) => Literal::Null,
            (_, Operand::Literal(l)) => l.clone(),
            _ => return None,
        };
        match operand {
            Operand::Attribute { key, scope } => Some(Entry::AttrStr(AttrStr {
                attr: AttrRef {
                    key: *key,
                    scope: *scope,
                },
                op,
                arg,
                negated,
            })),
            Operand::Intrinsic(intr) => Some(Entry::IntrStr(IntrStr {
                intr: *intr,
                op,
                arg,
                negated,
            })),
            _ => None,
        }
    };
    let entry = match p {
        Pred::Not(q) => return fused_entry(q).map(|(e, want)| (e, !want)),
        Pred::Compare {
            lhs: Operand::Attribute { key, scope },
            op,
            rhs: Operand::Literal(l),
        } => Entry::AttrCmp(AttrCmp {
            attr: AttrRef {
                key: *key,
                scope: *scope,
            },
            op: *op,
            value: l.clone(),
        }),
        Pred::Compare {
            lhs: Operand::Intrinsic(intr),
            op,
            rhs: Operand::Literal(l),
        } => Entry::IntrCmp(IntrCmp {
            intr: *intr,
            op: *op,
            value: l.clone(),
        }),
        Pred::In {
            operand: Operand::Attribute { key, scope },
            list,
            negated,
        } => Entry::AttrIn(AttrIn {
            attr: AttrRef {
                key: *key,
                scope: *scope,
            },
            list: list.as_slice().into(),
            negated: *negated,
        }),
        Pred::StrTest {
            op,
            operand,
            arg,
            negated,
        } => str_entry(*op, operand, arg, *negated)?,
        Pred::Truthy(Operand::StrCall { op, operand, arg }) => str_entry(*op, operand, arg, false)?,
        _ => return None,
    };
    Some((entry, true))
}

type Label = u32;

const UNBOUND: Addr = Addr::MAX;

/// Where a loop takes its spans from.
#[derive(Clone, Copy)]
enum Source {
    Name(NameId),
    All,
    Children,
    Parent,
    Descendants,
    Ancestors,
}

/// A loop over a source, keeping the spans that pass every test.
struct LoopSpec<'a> {
    source: Source,
    name_test: Option<NameId>,
    related: Option<(Relation, Option<i64>)>,
    filters: &'a [Pred],
}

impl<'a> LoopSpec<'a> {
    fn selection(sel: &'a Selection) -> LoopSpec<'a> {
        LoopSpec {
            source: match sel.target {
                Target::Any => Source::All,
                Target::Name(n) => Source::Name(n),
            },
            name_test: None,
            related: None,
            filters: &sel.filters,
        }
    }

    fn all(filters: &'a [Pred]) -> LoopSpec<'a> {
        LoopSpec {
            source: Source::All,
            name_test: None,
            related: None,
            filters,
        }
    }

    /// The spans related to the current span that `sel` selects (DSL.md §3.5).
    fn relation(relation: Relation, sel: &'a Selection, within: Option<i64>) -> LoopSpec<'a> {
        let name = match sel.target {
            Target::Any => None,
            Target::Name(n) => Some(n),
        };
        let by_name = || match sel.target {
            Target::Any => Source::All,
            Target::Name(n) => Source::Name(n),
        };
        let (source, name_test, related) = match relation {
            Relation::HasChild => (Source::Children, name, within.map(|w| (relation, Some(w)))),
            Relation::HasParent => (Source::Parent, name, within.map(|w| (relation, Some(w)))),
            Relation::HasAncestor => (Source::Ancestors, name, within.map(|w| (relation, Some(w)))),
            Relation::HasDescendant => match sel.target {
                Target::Any => (Source::Descendants, None, Some((relation, within))),
                Target::Name(n) => (Source::Name(n), None, Some((relation, within))),
            },
            Relation::FollowedBy | Relation::PrecededBy => {
                (by_name(), None, Some((relation, within)))
            }
        };
        LoopSpec {
            source,
            name_test,
            related,
            filters: &sel.filters,
        }
    }
}

impl LoopSpec<'_> {
    /// Some filter is the literal `false`: the loop can keep no span.
    fn never_matches(&self) -> bool {
        self.filters
            .iter()
            .any(|f| matches!(f, Pred::Truthy(Operand::Literal(Literal::Bool(false)))))
    }
}

/// Hashable identity of a literal, for constant-pool deduplication.
#[derive(Clone, PartialEq, Eq, Hash)]
enum LitKey {
    Str(Box<str>),
    Int(i64),
    Float(u64),
    Bool(bool),
    Duration(i64),
    Null,
    Status(u8),
    Kind(u8),
    List(Vec<LitKey>),
}

impl LitKey {
    fn of(l: &Literal) -> LitKey {
        match l {
            Literal::Str(s) => LitKey::Str(s.clone()),
            Literal::Int(i) => LitKey::Int(*i),
            Literal::Float(f) => LitKey::Float(f.to_bits()),
            Literal::Bool(b) => LitKey::Bool(*b),
            Literal::Duration(d) => LitKey::Duration(*d),
            Literal::Null => LitKey::Null,
            Literal::Status(s) => LitKey::Status(*s),
            Literal::Kind(k) => LitKey::Kind(*k),
            Literal::List(items) => LitKey::List(items.iter().map(LitKey::of).collect()),
        }
    }
}

fn scope_tag(s: AttrScope) -> u8 {
    match s {
        AttrScope::SpanThenResource => 0,
        AttrScope::Span => 1,
        AttrScope::Resource => 2,
    }
}

struct Lowerer {
    p: Program,
    labels: Vec<Addr>,
    depth: u32,
    vsp: u32,
    csp: u32,
    overflow: bool,
    name_idx: AHashMap<NameId, u16>,
    attr_idx: AHashMap<(KeyId, u8), u16>,
    const_idx: AHashMap<LitKey, u16>,
}

impl Lowerer {
    fn new(body: &Body) -> Lowerer {
        Lowerer {
            p: Program::new(body.form()),
            labels: Vec::new(),
            depth: 0,
            vsp: 0,
            csp: 0,
            overflow: false,
            name_idx: AHashMap::new(),
            attr_idx: AHashMap::new(),
            const_idx: AHashMap::new(),
        }
    }

    fn finish(mut self, regexes: Vec<Regex>) -> Program {
        let labels = std::mem::take(&mut self.labels);
        let mut unbound = false;
        for ins in &mut self.p.code {
            ins.map_addrs(|l| match labels.get(l as usize) {
                Some(&a) if a != UNBOUND => a,
                _ => {
                    unbound = true;
                    0
                }
            });
        }
        if self.overflow || unbound || u32::try_from(self.p.code.len()).is_err() {
            let mut trap = Program::new(self.p.form);
            trap.code.push(Instr::Trap);
            return trap;
        }
        self.p.regexes = regexes;
        self.p
    }

    // ---- emission helpers

    fn emit(&mut self, ins: Instr) {
        self.p.code.push(ins);
    }

    fn label(&mut self) -> Label {
        self.labels.push(UNBOUND);
        (self.labels.len() - 1) as Label
    }

    fn bind(&mut self, l: Label) {
        let here = self.here();
        if let Some(slot) = self.labels.get_mut(l as usize) {
            *slot = here;
        }
    }

    fn here(&self) -> Addr {
        Addr::try_from(self.p.code.len()).unwrap_or(UNBOUND)
    }

    fn index(&mut self, len: usize) -> u16 {
        match u16::try_from(len) {
            Ok(i) => i,
            Err(_) => {
                self.overflow = true;
                0
            }
        }
    }

    fn small(&mut self, n: u32) -> u8 {
        match u8::try_from(n) {
            Ok(i) => i,
            Err(_) => {
                self.overflow = true;
                0
            }
        }
    }

    fn name(&mut self, n: NameId) -> u16 {
        if let Some(&i) = self.name_idx.get(&n) {
            return i;
        }
        let i = self.entry(Entry::Name(n));
        self.name_idx.insert(n, i);
        i
    }

    fn attr(&mut self, key: KeyId, scope: AttrScope) -> u16 {
        let k = (key, scope_tag(scope));
        if let Some(&i) = self.attr_idx.get(&k) {
            return i;
        }
        let i = self.entry(Entry::Attr(AttrRef { key, scope }));
        self.attr_idx.insert(k, i);
        i
    }

    fn konst(&mut self, l: &Literal) -> u16 {
        let k = LitKey::of(l);
        if let Some(&i) = self.const_idx.get(&k) {
            return i;
        }
        let i = self.entry(Entry::Const(l.clone()));
        self.const_idx.insert(k, i);
        i
    }

    /// Adds `e` to the operand pool.
    fn entry(&mut self, e: Entry) -> u16 {
        let i = self.index(self.p.pool.len());
        self.p.pool.push(e);
        i
    }

    fn alloc_value(&mut self) -> u8 {
        let r = self.small(self.vsp);
        self.vsp += 1;
        self.p.value_regs = self.p.value_regs.max(self.vsp);
        r
    }

    fn alloc_count(&mut self) -> u8 {
        let r = self.small(self.csp);
        self.csp += 1;
        self.p.count_regs = self.p.count_regs.max(self.csp);
        r
    }

    // ---- rule body

    fn body(&mut self, body: &Body) {
        match body {
            Body::Block {
                when,
                always,
                never,
            } => {
                let ok = self.label();
                let failed_always = self.label();
                let failed_never = self.label();
                if let Some(w) = when {
                    self.cond(w, false, ok);
                }
                if let Some(a) = always {
                    self.cond(a, false, failed_always);
                }
                if let Some(n) = never {
                    self.cond(n, true, failed_never);
                }
                self.bind(ok);
                self.emit(Instr::Halt {
                    verdict: Verdict::Conforms,
                });
                self.bind(failed_always);
                self.emit(Instr::Halt {
                    verdict: Verdict::Always,
                });
                self.bind(failed_never);
                self.emit(Instr::Halt {
                    verdict: Verdict::Never,
                });

                self.p.witness_entry = self.here();
                if let Some(w) = when {
                    self.collect(w, WitnessList::Trigger, true, true);
                }
                if let Some(n) = never {
                    self.collect(n, WitnessList::Offending, true, false);
                }
                self.emit(Instr::Halt {
                    verdict: Verdict::Conforms,
                });
            }
            Body::SpanScoped(p) => {
                let done = self.label();
                let spec = LoopSpec::all(std::slice::from_ref(p));
                self.scan(&spec, done, |l, _| {
                    l.emit(Instr::Halt {
                        verdict: Verdict::Expression,
                    })
                });
                self.bind(done);
                self.emit(Instr::Halt {
                    verdict: Verdict::Conforms,
                });

                self.p.witness_entry = self.here();
                self.push_all(&spec, WitnessList::Trigger);
                self.emit(Instr::Halt {
                    verdict: Verdict::Conforms,
                });
            }
            Body::TraceScoped(p) => {
                let ok = self.label();
                self.pred(p, false, ok);
                self.emit(Instr::Halt {
                    verdict: Verdict::Expression,
                });
                self.bind(ok);
                self.emit(Instr::Halt {
                    verdict: Verdict::Conforms,
                });

                self.p.witness_entry = self.here();
                self.collect_pred(p, WitnessList::Trigger, true, true);
                self.emit(Instr::Halt {
                    verdict: Verdict::Conforms,
                });
            }
        }
    }

    // ---- loops

    /// Emits a loop over `spec.source`; for each span passing the tests runs `hit` (which may
    /// fall through to continue the loop, or leave it with `Exit`/`Halt`). Jumps to `empty`
    /// when the source has no span; falls through when it is exhausted.
    fn scan(&mut self, spec: &LoopSpec<'_>, empty: Label, hit: impl FnOnce(&mut Self, u8)) {
        let slot = self.small(self.depth);
        self.depth += 1;
        self.p.loop_slots = self.p.loop_slots.max(self.depth);
        let body = self.label();
        let next = self.label();
        let head = match spec.source {
            Source::Name(n) => Instr::ForName {
                slot,
                name: self.name(n),
                empty,
            },
            Source::All => Instr::ForAll { slot, empty },
            Source::Children => Instr::ForChildren { slot, empty },
            Source::Parent => Instr::ForParent { slot, empty },
            Source::Descendants => Instr::ForDescendants { slot, empty },
            Source::Ancestors => Instr::ForAncestors { slot, empty },
        };
        self.emit(head);
        self.bind(body);
        let body_addr = self.p.code.len();
        if let Some(n) = spec.name_test {
            let name = self.name(n);
            self.emit(Instr::NameIs {
                name,
                on: false,
                target: next,
            });
        }
        if let Some((relation, within)) = spec.related {
            let test = self.entry(Entry::Rel(RelTest {
                relation,
                slot,
                within,
            }));
            self.emit(Instr::Related {
                test,
                on: false,
                target: next,
            });
        }
        for f in spec.filters {
            self.pred(f, false, next);
        }
        hit(self, slot);
        self.bind(next);
        self.emit(match spec.source {
            Source::Ancestors => Instr::NextAncestor { slot, body },
            _ => Instr::Next { slot, body },
        });
        let done = self.label();
        self.bind(done);
        if !matches!(spec.source, Source::Ancestors) {
            self.fuse_skip(body_addr, slot, next, done);
        }
        self.depth -= 1;
    }

    /// Turns the first instruction of a loop body into a [`Instr::Skip`] when it is a fused
    /// test whose failure moves on to the next span: the VM then steps over the spans that
    /// fail it without dispatching an instruction per span.
    fn fuse_skip(&mut self, body: usize, slot: u8, next: Label, done: Label) {
        let Some(ins) = self.p.code.get_mut(body) else {
            return;
        };
        let (test, on) = match *ins {
            Instr::NameIs { name, on, target } if target == next => (name, on),
            Instr::AttrCmp { test, on, target }
            | Instr::IntrCmp { test, on, target }
            | Instr::AttrIn { test, on, target }
            | Instr::AttrStr { test, on, target }
            | Instr::IntrStr { test, on, target }
            | Instr::Related { test, on, target }
                if target == next =>
            {
                (test, on)
            }
            _ => return,
        };
        *ins = if on {
            Instr::SkipNot { slot, test, done }
        } else {
            Instr::Skip { slot, test, done }
        };
    }

    /// Jumps to `target` iff "some span of `spec` passes" equals `jump_on`.
    fn exists(&mut self, spec: &LoopSpec<'_>, jump_on: bool, target: Label) {
        if spec.never_matches() {
            if !jump_on {
                self.emit(Instr::Jump { target });
            }
            return;
        }
        if let (Source::Name(n), None, None, []) =
            (spec.source, spec.name_test, spec.related, spec.filters)
        {
            let name = self.name(n);
            self.emit(Instr::HasName {
                name,
                on: jump_on,
                target,
            });
            return;
        }
        if let Some(find) = self.find(spec) {
            self.emit(Instr::Find {
                find,
                on: jump_on,
                target,
            });
            return;
        }
        if jump_on {
            let after = self.label();
            self.scan(spec, after, |l, slot| l.emit(Instr::Exit { slot, target }));
            self.bind(after);
        } else {
            let found = self.label();
            self.scan(spec, target, |l, slot| {
                l.emit(Instr::Exit {
                    slot,
                    target: found,
                })
            });
            self.emit(Instr::Jump { target });
            self.bind(found);
        }
    }

    /// Jumps to `target` iff "every span satisfies `p`" equals `jump_on` (true on no span).
    fn all(&mut self, p: &Pred, jump_on: bool, target: Label) {
        let after = self.label();
        let fail = self.label();
        let (if_true, if_false) = if jump_on {
            (target, after)
        } else {
            (after, target)
        };
        let slot = self.small(self.depth);
        self.depth += 1;
        self.p.loop_slots = self.p.loop_slots.max(self.depth);
        let body = self.label();
        self.emit(Instr::ForAll {
            slot,
            empty: if_true,
        });
        self.bind(body);
        self.pred(p, false, fail);
        self.emit(Instr::Next { slot, body });
        self.emit(Instr::Jump { target: if_true });
        self.bind(fail);
        self.emit(Instr::Exit {
            slot,
            target: if_false,
        });
        self.depth -= 1;
        self.bind(after);
    }

    /// Counter `reg` := number of spans of `spec`.
    fn count_into(&mut self, spec: &LoopSpec<'_>, reg: u8) {
        if spec.never_matches() {
            self.emit(Instr::Zero { reg });
            return;
        }
        match (spec.source, spec.name_test, spec.related, spec.filters) {
            (Source::Name(n), None, None, []) => {
                let name = self.name(n);
                self.emit(Instr::CountName { reg, name });
            }
            (Source::All, None, None, []) => self.emit(Instr::CountAll { reg }),
            _ if let Some(find) = self.find(spec) => self.emit(Instr::CountFind { reg, find }),
            _ => {
                self.emit(Instr::Zero { reg });
                let done = self.label();
                self.scan(spec, done, |l, _| l.emit(Instr::Incr { reg }));
                self.bind(done);
            }
        }
    }

    /// A [`Find`] pool entry for `spec` when its source is a name or every span and each of
    /// its filters is a conjunction of fused tests.
    fn find(&mut self, spec: &LoopSpec<'_>) -> Option<u16> {
        let name = match (spec.source, spec.name_test, spec.related) {
            (Source::Name(n), None, None) => Some(n),
            (Source::All, None, None) => None,
            _ => return None,
        };
        let mut conjuncts = Vec::new();
        for f in spec.filters {
            flatten_and(f, &mut conjuncts);
        }
        let tests = conjuncts
            .iter()
            .map(|p| fused_entry(p))
            .collect::<Option<Vec<_>>>()?;
        if tests.is_empty() {
            return None;
        }
        let tests = tests
            .into_iter()
            .map(|(e, want)| (self.entry(e), want))
            .collect();
        Some(self.entry(Entry::Find(Find { name, tests })))
    }

    /// Pushes every span of `spec` onto `list`.
    fn push_all(&mut self, spec: &LoopSpec<'_>, list: WitnessList) {
        if spec.never_matches() {
            return;
        }
        let done = self.label();
        self.scan(spec, done, |l, _| l.emit(Instr::Push { list }));
        self.bind(done);
    }

    // ---- trace-level conditions

    fn cond(&mut self, c: &Cond, jump_on: bool, target: Label) {
        match c {
            Cond::And(cs) => self.junction(cs, true, jump_on, target, Self::cond),
            Cond::Or(cs) => self.junction(cs, false, jump_on, target, Self::cond),
            Cond::Not(x) => self.cond(x, !jump_on, target),
            Cond::Exists(sel) => self.exists(&LoopSpec::selection(sel), jump_on, target),
            Cond::Count { lhs, op, rhs } => {
                let saved = self.csp;
                let reg = self.alloc_count();
                self.count_into(&LoopSpec::selection(lhs), reg);
                let rhs = match rhs {
                    CountRhs::Int(v) => CountOperand::Int(*v),
                    CountRhs::Count(sel) => {
                        let r = self.alloc_count();
                        self.count_into(&LoopSpec::selection(sel), r);
                        CountOperand::Reg(r)
                    }
                };
                let test = self.entry(Entry::CountCmp(CountCmp { reg, op: *op, rhs }));
                self.emit(Instr::CountCmp {
                    test,
                    on: jump_on,
                    target,
                });
                self.csp = saved;
            }
            Cond::Trace(t) => self.trace_term(t, jump_on, target),
        }
    }

    /// `and` (`is_and`) or `or` of `items` as jumps.
    fn junction<T>(
        &mut self,
        items: &[T],
        is_and: bool,
        jump_on: bool,
        target: Label,
        each: fn(&mut Self, &T, bool, Label),
    ) {
        let Some((last, rest)) = items.split_last() else {
            // Empty `and` is true, empty `or` is false.
            if is_and == jump_on {
                self.emit(Instr::Jump { target });
            }
            return;
        };
        // The value of one item that decides the whole: false for `and`, true for `or`.
        let decisive = !is_and;
        if jump_on == decisive {
            for it in rest {
                each(self, it, decisive, target);
            }
            each(self, last, jump_on, target);
        } else {
            let skip = self.label();
            for it in rest {
                each(self, it, decisive, skip);
            }
            each(self, last, jump_on, target);
            self.bind(skip);
        }
    }

    fn trace_term(&mut self, t: &TraceTerm, jump_on: bool, target: Label) {
        match t {
            TraceTerm::Has(p) => {
                self.exists(&LoopSpec::all(std::slice::from_ref(p)), jump_on, target)
            }
            TraceTerm::All(p) => self.all(p, jump_on, target),
            TraceTerm::Count { pred, op, value } => {
                let saved = self.csp;
                let reg = self.alloc_count();
                self.count_into(&LoopSpec::all(std::slice::from_ref(pred)), reg);
                let test = self.entry(Entry::CountCmp(CountCmp {
                    reg,
                    op: *op,
                    rhs: CountOperand::Int(*value),
                }));
                self.emit(Instr::CountCmp {
                    test,
                    on: jump_on,
                    target,
                });
                self.csp = saved;
            }
            TraceTerm::Field { field, op, value } => {
                let test = self.entry(Entry::Field(FieldCmp {
                    field: *field,
                    op: *op,
                    value: value.clone(),
                }));
                self.emit(Instr::TraceField {
                    test,
                    on: jump_on,
                    target,
                });
            }
        }
    }

    // ---- span-level predicates

    fn pred(&mut self, p: &Pred, jump_on: bool, target: Label) {
        match p {
            Pred::And(ps) => self.junction(ps, true, jump_on, target, Self::pred),
            Pred::Or(ps) => self.junction(ps, false, jump_on, target, Self::pred),
            Pred::Not(x) => self.pred(x, !jump_on, target),
            Pred::Compare { lhs, op, rhs } => self.compare(lhs, *op, rhs, jump_on, target),
            Pred::In {
                operand,
                list,
                negated,
            } => {
                let list: Box<[Literal]> = list.as_slice().into();
                if let Operand::Attribute { key, scope } = operand {
                    let test = self.entry(Entry::AttrIn(AttrIn {
                        attr: AttrRef {
                            key: *key,
                            scope: *scope,
                        },
                        list,
                        negated: *negated,
                    }));
                    self.emit(Instr::AttrIn {
                        test,
                        on: jump_on,
                        target,
                    });
                } else {
                    let saved = self.vsp;
                    let reg = self.alloc_value();
                    self.load(operand, reg);
                    let test = self.entry(Entry::RegIn(RegIn {
                        reg,
                        list,
                        negated: *negated,
                    }));
                    self.emit(Instr::In {
                        test,
                        on: jump_on,
                        target,
                    });
                    self.vsp = saved;
                }
            }
            Pred::StrTest {
                op,
                operand,
                arg,
                negated,
            } => self.str_test(*op, operand, arg, *negated, jump_on, target),
            Pred::Truthy(o) => match o {
                Operand::Attribute { key, scope } => {
                    let attr = self.attr(*key, *scope);
                    self.emit(Instr::AttrTruthy {
                        attr,
                        on: jump_on,
                        target,
                    });
                }
                Operand::Exists { key, scope } => {
                    let attr = self.attr(*key, *scope);
                    self.emit(Instr::AttrExists {
                        attr,
                        on: jump_on,
                        target,
                    });
                }
                Operand::Literal(Literal::Bool(b)) => {
                    if *b == jump_on {
                        self.emit(Instr::Jump { target });
                    }
                }
                // The truthiness of `x:contains(y)` is the positive test itself.
                Operand::StrCall { op, operand, arg } => {
                    self.str_test(*op, operand, arg, false, jump_on, target)
                }
                _ => {
                    let saved = self.vsp;
                    let reg = self.alloc_value();
                    self.load(o, reg);
                    self.emit(Instr::Truthy {
                        reg,
                        on: jump_on,
                        target,
                    });
                    self.vsp = saved;
                }
            },
            Pred::Relation {
                relation,
                target: sel,
                within,
            } => self.exists(
                &LoopSpec::relation(*relation, sel, *within),
                jump_on,
                target,
            ),
            Pred::Trace(t) => self.trace_term(t, jump_on, target),
        }
    }

    fn compare(&mut self, lhs: &Operand, op: CmpOp, rhs: &Operand, jump_on: bool, target: Label) {
        match (lhs, rhs) {
            (Operand::Attribute { key, scope }, Operand::Literal(l)) => {
                let attr = AttrRef {
                    key: *key,
                    scope: *scope,
                };
                let test = self.entry(Entry::AttrCmp(AttrCmp {
                    attr,
                    op,
                    value: l.clone(),
                }));
                self.emit(Instr::AttrCmp {
                    test,
                    on: jump_on,
                    target,
                });
            }
            (Operand::Intrinsic(intr), Operand::Literal(l)) => {
                let test = self.entry(Entry::IntrCmp(IntrCmp {
                    intr: *intr,
                    op,
                    value: l.clone(),
                }));
                self.emit(Instr::IntrCmp {
                    test,
                    on: jump_on,
                    target,
                });
            }
            _ => {
                let saved = self.vsp;
                let a = self.alloc_value();
                self.load(lhs, a);
                let b = self.alloc_value();
                self.load(rhs, b);
                let test = self.entry(Entry::RegCmp(RegCmp { a, op, b }));
                self.emit(Instr::Cmp {
                    test,
                    on: jump_on,
                    target,
                });
                self.vsp = saved;
            }
        }
    }

    fn str_test(
        &mut self,
        op: StrOp,
        operand: &Operand,
        arg: &Operand,
        negated: bool,
        jump_on: bool,
        target: Label,
    ) {
        let fused_arg = match (op, arg) {
            (StrOp::Matches(_), _) => Some(None),
            (_, Operand::Literal(l)) => Some(Some(l)),
            _ => None,
        };
        match (operand, fused_arg) {
            (Operand::Attribute { key, scope }, Some(lit)) => {
                let test = self.entry(Entry::AttrStr(AttrStr {
                    attr: AttrRef {
                        key: *key,
                        scope: *scope,
                    },
                    op,
                    arg: lit.cloned().unwrap_or(Literal::Null),
                    negated,
                }));
                self.emit(Instr::AttrStr {
                    test,
                    on: jump_on,
                    target,
                });
                return;
            }
            (Operand::Intrinsic(intr), Some(lit)) => {
                let test = self.entry(Entry::IntrStr(IntrStr {
                    intr: *intr,
                    op,
                    arg: lit.cloned().unwrap_or(Literal::Null),
                    negated,
                }));
                self.emit(Instr::IntrStr {
                    test,
                    on: jump_on,
                    target,
                });
                return;
            }
            _ => {}
        }
        let saved = self.vsp;
        let a = self.alloc_value();
        self.load(operand, a);
        let b = self.load_arg(op, arg, a);
        let test = self.entry(Entry::RegStr(RegStr { op, a, b, negated }));
        self.emit(Instr::Str {
            test,
            on: jump_on,
            target,
        });
        self.vsp = saved;
    }

    /// Loads the argument of a string test into a fresh register; `matches` needs none (its
    /// pattern is the compiled regex), so `a` is named instead.
    fn load_arg(&mut self, op: StrOp, arg: &Operand, a: u8) -> u8 {
        if let StrOp::Matches(_) = op {
            return a;
        }
        let b = self.alloc_value();
        self.load(arg, b);
        b
    }

    /// Evaluates `o` for the current span into register `dst`; registers above `dst` are
    /// scratch.
    fn load(&mut self, o: &Operand, dst: u8) {
        match o {
            Operand::Literal(l) => {
                let konst = self.konst(l);
                self.emit(Instr::LoadConst { dst, konst });
            }
            Operand::Attribute { key, scope } => {
                let attr = self.attr(*key, *scope);
                self.emit(Instr::LoadAttr { dst, attr });
            }
            Operand::Intrinsic(intr) => self.emit(Instr::LoadIntr { dst, intr: *intr }),
            Operand::Len(x) => {
                self.load(x, dst);
                self.emit(Instr::Len { dst, src: dst });
            }
            Operand::Lower(x) => {
                self.load(x, dst);
                self.emit(Instr::Lower { dst, src: dst });
            }
            Operand::Upper(x) => {
                self.load(x, dst);
                self.emit(Instr::Upper { dst, src: dst });
            }
            Operand::Exists { key, scope } => {
                let attr = self.attr(*key, *scope);
                self.emit(Instr::LoadExists { dst, attr });
            }
            Operand::StrCall { op, operand, arg } => {
                let saved = self.vsp;
                self.load(operand, dst);
                let b = self.load_arg(*op, arg, dst);
                let test = self.entry(Entry::RegStr(RegStr {
                    op: *op,
                    a: dst,
                    b,
                    negated: false,
                }));
                self.emit(Instr::StrCall { dst, test });
                self.vsp = saved;
            }
        }
    }

    // ---- witnesses (DSL.md §7.1)

    /// Pushes onto `list` the witnesses of `c` in the negation normal form of its clause, `c`
    /// standing under an even (`pos`) or odd number of `not`s. Nothing when the NNF node is
    /// false; a term contributes only with even polarity; an NNF conjunction (`and`, or `or`
    /// under odd polarity) is checked once and then all its children contribute; an NNF
    /// disjunction passes on to every child, each of which checks itself. `known_true` skips
    /// the check when the caller already knows the NNF node holds.
    fn collect(&mut self, c: &Cond, list: WitnessList, pos: bool, known_true: bool) {
        match c {
            Cond::And(cs) | Cond::Or(cs) => {
                let conjunction = matches!(c, Cond::And(_)) == pos;
                if conjunction {
                    let skip = self.label();
                    if !known_true {
                        self.cond(c, !pos, skip);
                    }
                    for x in cs {
                        self.collect(x, list, pos, true);
                    }
                    self.bind(skip);
                } else {
                    for x in cs {
                        self.collect(x, list, pos, false);
                    }
                }
            }
            Cond::Not(x) => self.collect(x, list, !pos, known_true),
            _ if !pos => {}
            Cond::Exists(sel) => self.push_all(&LoopSpec::selection(sel), list),
            Cond::Count { lhs, rhs, .. } => {
                let skip = self.label();
                if !known_true {
                    self.cond(c, false, skip);
                }
                self.push_all(&LoopSpec::selection(lhs), list);
                if let CountRhs::Count(sel) = rhs {
                    self.push_all(&LoopSpec::selection(sel), list);
                }
                self.bind(skip);
            }
            Cond::Trace(TraceTerm::Has(p)) => {
                self.push_all(&LoopSpec::all(std::slice::from_ref(p)), list)
            }
            Cond::Trace(_) => {}
        }
    }

    /// [`Lowerer::collect`] for the top of a trace-scoped expression: only `trace.has` terms
    /// contribute.
    fn collect_pred(&mut self, p: &Pred, list: WitnessList, pos: bool, known_true: bool) {
        match p {
            Pred::And(ps) | Pred::Or(ps) => {
                let conjunction = matches!(p, Pred::And(_)) == pos;
                if conjunction {
                    let skip = self.label();
                    if !known_true {
                        self.pred(p, !pos, skip);
                    }
                    for x in ps {
                        self.collect_pred(x, list, pos, true);
                    }
                    self.bind(skip);
                } else {
                    for x in ps {
                        self.collect_pred(x, list, pos, false);
                    }
                }
            }
            Pred::Not(x) => self.collect_pred(x, list, !pos, known_true),
            Pred::Trace(t) if pos => {
                if let TraceTerm::Has(q) = t.as_ref() {
                    self.push_all(&LoopSpec::all(std::slice::from_ref(q)), list);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! Listings of representative rules, compiled from text and snapshot-tested.

    use super::*;
    use crate::ir::Symbols;

    /// The listing of `source`, headed by the rule text.
    fn listing(source: &str) -> String {
        let mut symbols = Symbols::new();
        let rule = match crate::check_source(source, &mut symbols) {
            Ok(rule) => rule,
            Err(d) => panic!("{source}: {d:?}"),
        };
        let program = lower(rule);
        format!("; {source}\n{}", program.disassemble(&symbols))
    }

    #[test]
    fn basic_existence() {
        insta::assert_snapshot!(listing("when { payment } always { fraud_check }"));
    }

    #[test]
    fn where_clause_three_clauses() {
        insta::assert_snapshot!(listing(
            "when { payment.where(amount > 1000) } always { fraud_check } never { bypass }"
        ));
    }

    #[test]
    fn chained_where() {
        insta::assert_snapshot!(listing(
            "when { payment.where(amount > 1000).where(currency == USD) } always { fraud_check }"
        ));
    }

    #[test]
    fn count_vs_count() {
        insta::assert_snapshot!(listing(
            "when { count(http_request) != count(http_response) } never { orphaned }"
        ));
    }

    #[test]
    fn witnesses_of_connectives() {
        insta::assert_snapshot!(listing(
            "when { (a or b) and not (c and not d) } always { x }"
        ));
    }

    #[test]
    fn span_scoped_expression() {
        insta::assert_snapshot!(listing(
            r#"span.kind == server and span.name:starts_with("/api/") and not span.attributes["auth.token"]"#
        ));
    }

    #[test]
    fn trace_scoped_expression() {
        insta::assert_snapshot!(listing(
            r#"trace.has(span.status == error) and not trace.has(span.name == "retry") and trace.duration > 10s"#
        ));
    }

    #[test]
    fn relation_in_where() {
        insta::assert_snapshot!(listing(
            "never { payment.where(amount > 1000 and not has_descendant(fraud_check)) }"
        ));
    }

    #[test]
    fn relations_with_within() {
        insta::assert_snapshot!(listing(
            "when { payment } always { payment.followed_by(receipt, within 5s) } \
             never { db.where(has_ancestor(cache.where(hit == false))).has_child(*) }"
        ));
    }

    #[test]
    fn register_operands() {
        insta::assert_snapshot!(listing(
            r#"method:lower() in ["get", "head"] or #path > 100 or path =~ "^/admin" or bytes.sent >= bytes.limit"#
        ));
    }

    #[test]
    fn trace_terms_and_counts_in_clauses() {
        insta::assert_snapshot!(listing(
            "when { count(retry.where(attempt > 1)) >= 3 } \
             always { trace.all(span.duration < 5s) and trace.count(span.status == error) <= 2 }"
        ));
    }

    #[test]
    fn folded_literals_and_in_on_attribute() {
        insta::assert_snapshot!(listing(
            "when { a.where(false) or b.where(true and currency not in [USD, EUR]) } always { c }"
        ));
    }

    #[test]
    fn required_names() {
        let names = |source: &str| {
            let mut symbols = Symbols::new();
            let rule = crate::check_source(source, &mut symbols).unwrap();
            lower(rule).required_names().map(|ns| {
                ns.iter()
                    .map(|n| symbols.span_names()[n.0 as usize].to_string())
                    .collect::<Vec<_>>()
            })
        };
        let some = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(names("when { a.where(x > 1) } always { b }"), some(&["a"]));
        assert_eq!(names("when { a and (b or c) } always { d }"), some(&["a"]));
        assert_eq!(names("when { (b or c) and a } always { d }"), some(&["a"]));
        assert_eq!(names("when { not a } always { d }"), None);
        assert_eq!(names("when { a or *.where(x) } always { d }"), None);
        assert_eq!(names("always { d }"), None);
        assert_eq!(names("never { d.where(x) }"), some(&["d"]));
        assert_eq!(names("always { e } never { d }"), None);
        assert_eq!(names("when { count(a) > 2 } always { d }"), some(&["a"]));
        assert_eq!(names("when { count(a) < 2 } always { d }"), None);
        assert_eq!(
            names("when { count(a) != count(b) } always { d }"),
            some(&["a", "b"])
        );
        assert_eq!(names("when { count(a) == count(b) } always { d }"), None);
        assert_eq!(
            names("when { trace.has(span.name == \"a\") } always { d }"),
            None
        );
        assert_eq!(names("span.name == \"a\""), None);
    }

    #[test]
    fn instructions_are_compact() {
        assert!(std::mem::size_of::<Instr>() <= 8);
    }
}
