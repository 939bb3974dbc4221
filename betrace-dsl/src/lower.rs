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
    Addr, AttrCmp, AttrIn, AttrRef, AttrStr, CountCmp, CountOperand, FieldCmp, Instr, IntrCmp,
    Program, RegCmp, RegIn, RegStr, RelTest, Verdict, WitnessList,
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
    l.finish(regexes)
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
            trap.spans.push((0, 0));
            return trap;
        }
        self.p.regexes = regexes;
        self.p
    }

    // ---- emission helpers

    fn emit(&mut self, ins: Instr) {
        self.p.code.push(ins);
        self.p.spans.push((0, 0));
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
        let i = self.index(self.p.names.len());
        self.p.names.push(n);
        self.name_idx.insert(n, i);
        i
    }

    fn attr(&mut self, key: KeyId, scope: AttrScope) -> u16 {
        let k = (key, scope_tag(scope));
        if let Some(&i) = self.attr_idx.get(&k) {
            return i;
        }
        let i = self.index(self.p.attrs.len());
        self.p.attrs.push(AttrRef { key, scope });
        self.attr_idx.insert(k, i);
        i
    }

    fn konst(&mut self, l: &Literal) -> u16 {
        let k = LitKey::of(l);
        if let Some(&i) = self.const_idx.get(&k) {
            return i;
        }
        let i = self.index(self.p.consts.len());
        self.p.consts.push(l.clone());
        self.const_idx.insert(k, i);
        i
    }

    fn list(&mut self, items: &[Literal]) -> u16 {
        let i = self.index(self.p.lists.len());
        self.p.lists.push(items.into());
        i
    }

    fn push_table<T>(&mut self, table: fn(&mut Program) -> &mut Vec<T>, item: T) -> u16 {
        let len = table(&mut self.p).len();
        let i = self.index(len);
        table(&mut self.p).push(item);
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
        if let Some(n) = spec.name_test {
            let name = self.name(n);
            self.emit(Instr::NameIs {
                name,
                on: false,
                target: next,
            });
        }
        if let Some((relation, within)) = spec.related {
            let test = self.push_table(
                |p| &mut p.relations,
                RelTest {
                    relation,
                    slot,
                    within,
                },
            );
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
        self.depth -= 1;
    }

    /// Jumps to `target` iff "some span of `spec` passes" equals `jump_on`.
    fn exists(&mut self, spec: &LoopSpec<'_>, jump_on: bool, target: Label) {
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
        match (spec.source, spec.name_test, spec.related, spec.filters) {
            (Source::Name(n), None, None, []) => {
                let name = self.name(n);
                self.emit(Instr::CountName { reg, name });
            }
            (Source::All, None, None, []) => self.emit(Instr::CountAll { reg }),
            _ => {
                self.emit(Instr::Zero { reg });
                let done = self.label();
                self.scan(spec, done, |l, _| l.emit(Instr::Incr { reg }));
                self.bind(done);
            }
        }
    }

    /// Pushes every span of `spec` onto `list`.
    fn push_all(&mut self, spec: &LoopSpec<'_>, list: WitnessList) {
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
                let test = self.push_table(|p| &mut p.count_cmps, CountCmp { reg, op: *op, rhs });
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
                let test = self.push_table(
                    |p| &mut p.count_cmps,
                    CountCmp {
                        reg,
                        op: *op,
                        rhs: CountOperand::Int(*value),
                    },
                );
                self.emit(Instr::CountCmp {
                    test,
                    on: jump_on,
                    target,
                });
                self.csp = saved;
            }
            TraceTerm::Field { field, op, value } => {
                let konst = self.konst(value);
                let test = self.push_table(
                    |p| &mut p.field_cmps,
                    FieldCmp {
                        field: *field,
                        op: *op,
                        konst,
                    },
                );
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
                let list = self.list(list);
                if let Operand::Attribute { key, scope } = operand {
                    let attr = self.attr(*key, *scope);
                    let test = self.push_table(
                        |p| &mut p.attr_ins,
                        AttrIn {
                            attr,
                            list,
                            negated: *negated,
                        },
                    );
                    self.emit(Instr::AttrIn {
                        test,
                        on: jump_on,
                        target,
                    });
                } else {
                    let saved = self.vsp;
                    let reg = self.alloc_value();
                    self.load(operand, reg);
                    let test = self.push_table(
                        |p| &mut p.reg_ins,
                        RegIn {
                            reg,
                            list,
                            negated: *negated,
                        },
                    );
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
                let attr = self.attr(*key, *scope);
                let konst = self.konst(l);
                let test = self.push_table(|p| &mut p.attr_cmps, AttrCmp { attr, op, konst });
                self.emit(Instr::AttrCmp {
                    test,
                    on: jump_on,
                    target,
                });
            }
            (Operand::Intrinsic(intr), Operand::Literal(l)) => {
                let konst = self.konst(l);
                let test = self.push_table(
                    |p| &mut p.intr_cmps,
                    IntrCmp {
                        intr: *intr,
                        op,
                        konst,
                    },
                );
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
                let test = self.push_table(|p| &mut p.reg_cmps, RegCmp { a, op, b });
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
        if let (Operand::Attribute { key, scope }, Some(lit)) = (operand, fused_arg) {
            let attr = self.attr(*key, *scope);
            let arg = match lit {
                Some(l) => self.konst(l),
                None => 0,
            };
            let test = self.push_table(
                |p| &mut p.attr_strs,
                AttrStr {
                    attr,
                    op,
                    arg,
                    negated,
                },
            );
            self.emit(Instr::AttrStr {
                test,
                on: jump_on,
                target,
            });
            return;
        }
        let saved = self.vsp;
        let a = self.alloc_value();
        self.load(operand, a);
        let b = self.load_arg(op, arg, a);
        let test = self.push_table(|p| &mut p.reg_strs, RegStr { op, a, b, negated });
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
                let test = self.push_table(
                    |p| &mut p.reg_strs,
                    RegStr {
                        op: *op,
                        a: dst,
                        b,
                        negated: false,
                    },
                );
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
