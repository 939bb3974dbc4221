//! The bytecode VM: runs one lowered rule against one prepared trace.
//!
//! In: a [`Program`] (from `betrace_dsl::lower`), a [`PreparedTrace`] built with the symbols
//! the program was lowered against, and [`EvalOptions`]. Out: an [`Outcome`] — whether the
//! trace violates the rule, which clause failed, and the trigger and offending spans (DSL.md
//! §3.1, §3.6, §7.1–§7.3) — or a typed [`EvalError`].
//!
//! The machine runs the program's decision code first; it allocates nothing and compares no
//! strings except where the rule itself compares strings. Only for a violation does it run
//! the witness code, which collects the span lists. Loops live in a fixed set of slots and
//! relation walks are iterative, so nothing recurses per span or per ancestor. Every executed
//! instruction counts against [`EvalOptions::instruction_budget`] (DSL.md §3.7), and so does
//! every parent link a `has_descendant` test follows in a trace with parent-link cycles.

use betrace_dsl::bytecode::{
    Addr, AttrRef, CountOperand, Instr, Program, RelTest, Verdict, WitnessList,
};
use betrace_dsl::ir::{Intrinsic, Literal, Relation, TraceField};
use smallvec::SmallVec;

use crate::prepared::PreparedTrace;
use crate::span::Span;
use crate::trace::SpanIndex;
use crate::value::{self, Value};

/// Options of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalOptions {
    /// Maximum number of VM steps for one evaluation (decision and witness code together),
    /// DSL.md §3.7. Default 10 000 000.
    pub instruction_budget: u64,
}

impl Default for EvalOptions {
    fn default() -> EvalOptions {
        EvalOptions {
            instruction_budget: 10_000_000,
        }
    }
}

/// The clause that made a rule fire (DSL.md §3.6 `failed_clause`); `always` takes precedence
/// when `never` matched too (§7.2).
pub use crate::violation::FailedClause;

/// The result of evaluating one rule against one trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub violated: bool,
    /// `None` exactly when not violated.
    pub failed_clause: Option<FailedClause>,
    /// Spans that made `when` true, or that satisfy a span-scoped expression, or witnesses of
    /// the positive `trace.has` terms of a trace-scoped expression (DSL.md §3.6, §7.1). In
    /// trace order (start time, then span id, §7.3), without repeats, not truncated.
    pub trigger_spans: Vec<SpanIndex>,
    /// Spans matched by `never` (also when `always` failed, §7.2). Same order, not truncated.
    pub offending_spans: Vec<SpanIndex>,
}

/// Why an evaluation produced no outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The evaluation needed more than [`EvalOptions::instruction_budget`] steps; `pc` is the
    /// instruction that would have exceeded it (DSL.md §3.7).
    #[error("instruction budget exceeded at instruction {pc}")]
    BudgetExceeded { pc: Addr },
    /// The rule could not be encoded as bytecode (see `Program::is_trap`).
    #[error("rule too large to encode as bytecode")]
    ProgramTooLarge,
    /// The program refers to a table entry, register or loop slot it does not have; programs
    /// made by `betrace_dsl::lower::lower` never do.
    #[error("malformed program at instruction {pc}")]
    MalformedProgram { pc: Addr },
}

/// No current span (top level of a rule).
const NO_SPAN: SpanIndex = SpanIndex::MAX;

/// Evaluates `program` against `trace` (DSL.md §3). The trace must have been prepared with the
/// symbols the program's rule was compiled against.
pub fn evaluate(
    program: &Program,
    trace: &PreparedTrace<'_>,
    options: &EvalOptions,
) -> Result<Outcome, EvalError> {
    let mut m = Machine::new(program, trace, options.instruction_budget);
    let failed = match m.run(0)? {
        Verdict::Conforms => return Ok(Outcome::default()),
        Verdict::Always => FailedClause::Always,
        Verdict::Never => FailedClause::Never,
        Verdict::Expression => FailedClause::Expression,
    };
    m.cur = NO_SPAN;
    m.run(program.witness_entry())?;
    let mut trigger_spans = std::mem::take(&mut m.trigger);
    let mut offending_spans = std::mem::take(&mut m.offending);
    for list in [&mut trigger_spans, &mut offending_spans] {
        list.sort_unstable();
        list.dedup();
    }
    Ok(Outcome {
        violated: true,
        failed_clause: Some(failed),
        trigger_spans,
        offending_spans,
    })
}

/// One active loop.
#[derive(Clone, Copy, Debug)]
struct Frame<'a> {
    /// The spans the loop visits (empty for an ancestor walk).
    list: &'a [SpanIndex],
    /// Position in `list`, or the number of steps of an ancestor walk.
    pos: u32,
    /// The current span when the loop started; restored when it ends.
    origin: SpanIndex,
}

struct Machine<'a, 't> {
    program: &'a Program,
    trace: &'a PreparedTrace<'t>,
    code: &'a [Instr],
    frames: SmallVec<[Frame<'a>; 4]>,
    values: SmallVec<[Value<'a>; 4]>,
    counts: SmallVec<[i64; 4]>,
    cur: SpanIndex,
    budget: u64,
    trigger: Vec<SpanIndex>,
    offending: Vec<SpanIndex>,
}

/// The two spans start at most `within` ns apart (DSL.md §7.14, `has_*`).
fn within_start(a: &Span, b: &Span, within: Option<i64>) -> bool {
    match within {
        None => true,
        Some(w) => {
            let gap =
                (i128::from(a.start_time_unix_nano) - i128::from(b.start_time_unix_nano)).abs();
            gap <= i128::from(w)
        }
    }
}

/// `later` starts at or after `earlier` ends, within `within` ns of it (DSL.md §7.14).
fn follows(earlier: &Span, later: &Span, within: Option<i64>) -> bool {
    let gap = i128::from(later.start_time_unix_nano) - i128::from(earlier.end_time_unix_nano);
    gap >= 0 && within.is_none_or(|w| gap <= i128::from(w))
}

impl<'a, 't: 'a> Machine<'a, 't> {
    fn new(program: &'a Program, trace: &'a PreparedTrace<'t>, budget: u64) -> Machine<'a, 't> {
        let mut values = SmallVec::new();
        values.resize(program.value_regs(), Value::Missing);
        let mut counts = SmallVec::new();
        counts.resize(program.count_regs(), 0);
        Machine {
            program,
            trace,
            code: program.code(),
            frames: SmallVec::new(),
            values,
            counts,
            cur: NO_SPAN,
            budget,
            trigger: Vec::new(),
            offending: Vec::new(),
        }
    }

    fn run(&mut self, start: Addr) -> Result<Verdict, EvalError> {
        let mut pc = start;
        loop {
            let Some(&ins) = self.code.get(pc as usize) else {
                return Err(EvalError::MalformedProgram { pc });
            };
            if self.budget == 0 {
                return Err(EvalError::BudgetExceeded { pc });
            }
            self.budget -= 1;
            let at = pc;
            pc += 1;
            let bad = EvalError::MalformedProgram { pc: at };
            match ins {
                Instr::Jump { target } => pc = target,
                Instr::Halt { verdict } => return Ok(verdict),
                Instr::Trap => return Err(EvalError::ProgramTooLarge),

                Instr::ForName { slot, name, empty } => {
                    let id = *self.program.names().get(usize::from(name)).ok_or(bad)?;
                    let list = self.trace.spans_named(id);
                    pc = self.enter(slot, list, empty, pc).ok_or(bad)?;
                }
                Instr::ForAll { slot, empty } => {
                    let list = self.trace.all();
                    pc = self.enter(slot, list, empty, pc).ok_or(bad)?;
                }
                Instr::ForChildren { slot, empty } => {
                    let list = self.trace.children(self.cur);
                    pc = self.enter(slot, list, empty, pc).ok_or(bad)?;
                }
                Instr::ForParent { slot, empty } => {
                    let list = self.trace.parent_slice(self.cur);
                    pc = self.enter(slot, list, empty, pc).ok_or(bad)?;
                }
                Instr::ForDescendants { slot, empty } => {
                    let list = self.trace.descendant_candidates(self.cur);
                    pc = self.enter(slot, list, empty, pc).ok_or(bad)?;
                }
                Instr::ForAncestors { slot, empty } => match self.trace.parent(self.cur) {
                    None => pc = empty,
                    Some(p) => {
                        let frame = Frame {
                            list: &[],
                            pos: 0,
                            origin: self.cur,
                        };
                        self.set_frame(slot, frame).ok_or(bad)?;
                        self.cur = p;
                    }
                },
                Instr::Next { slot, body } => {
                    let f = self.frames.get_mut(usize::from(slot)).ok_or(bad)?;
                    f.pos += 1;
                    match f.list.get(f.pos as usize) {
                        Some(&x) => {
                            self.cur = x;
                            pc = body;
                        }
                        None => self.cur = f.origin,
                    }
                }
                Instr::NextAncestor { slot, body } => {
                    let f = self.frames.get_mut(usize::from(slot)).ok_or(bad)?;
                    f.pos += 1;
                    match self.trace.parent(self.cur) {
                        Some(p) if p != f.origin && (f.pos as usize) < self.trace.len() => {
                            self.cur = p;
                            pc = body;
                        }
                        _ => self.cur = f.origin,
                    }
                }
                Instr::Exit { slot, target } => {
                    self.cur = self.frames.get(usize::from(slot)).ok_or(bad)?.origin;
                    pc = target;
                }

                Instr::NameIs { name, on, target } => {
                    let id = *self.program.names().get(usize::from(name)).ok_or(bad)?;
                    if (self.trace.name_id(self.cur) == Some(id)) == on {
                        pc = target;
                    }
                }
                Instr::HasName { name, on, target } => {
                    let id = *self.program.names().get(usize::from(name)).ok_or(bad)?;
                    if self.trace.spans_named(id).is_empty() != on {
                        pc = target;
                    }
                }
                Instr::AttrCmp { test, on, target } => {
                    let t = *self.program.attr_cmps().get(usize::from(test)).ok_or(bad)?;
                    let v = self.attr(t.attr).ok_or(bad)?;
                    let k = self.konst(t.konst).ok_or(bad)?;
                    if value::compare(&v, t.op, &k) == on {
                        pc = target;
                    }
                }
                Instr::IntrCmp { test, on, target } => {
                    let t = *self.program.intr_cmps().get(usize::from(test)).ok_or(bad)?;
                    let v = self.intrinsic(t.intr);
                    let k = self.konst(t.konst).ok_or(bad)?;
                    if value::compare(&v, t.op, &k) == on {
                        pc = target;
                    }
                }
                Instr::AttrTruthy { attr, on, target } => {
                    if value::truthy(&self.attr(attr).ok_or(bad)?) == on {
                        pc = target;
                    }
                }
                Instr::AttrExists { attr, on, target } => {
                    if self.attr(attr).ok_or(bad)?.is_present() == on {
                        pc = target;
                    }
                }
                Instr::AttrIn { test, on, target } => {
                    let t = *self.program.attr_ins().get(usize::from(test)).ok_or(bad)?;
                    let v = self.attr(t.attr).ok_or(bad)?;
                    let items = self.program.lists().get(usize::from(t.list)).ok_or(bad)?;
                    if in_list(&v, items, t.negated) == on {
                        pc = target;
                    }
                }
                Instr::AttrStr { test, on, target } => {
                    let t = *self.program.attr_strs().get(usize::from(test)).ok_or(bad)?;
                    let v = self.attr(t.attr).ok_or(bad)?;
                    let arg = match t.op {
                        betrace_dsl::ir::StrOp::Matches(_) => Value::Missing,
                        _ => self.konst(t.arg).ok_or(bad)?,
                    };
                    let r = value::string_pred(t.op, &v, &arg, self.program.regexes(), t.negated);
                    if r == on {
                        pc = target;
                    }
                }
                Instr::Related { test, on, target } => {
                    let t = *self.program.relations().get(usize::from(test)).ok_or(bad)?;
                    if self.related(t).ok_or(bad)? == on {
                        pc = target;
                    }
                }
                Instr::TraceField { test, on, target } => {
                    let t = *self
                        .program
                        .field_cmps()
                        .get(usize::from(test))
                        .ok_or(bad)?;
                    let v = self.trace_field(t.field);
                    let k = self.konst(t.konst).ok_or(bad)?;
                    if value::compare(&v, t.op, &k) == on {
                        pc = target;
                    }
                }

                Instr::CountName { reg, name } => {
                    let id = *self.program.names().get(usize::from(name)).ok_or(bad)?;
                    let n = self.trace.spans_named(id).len();
                    *self.counts.get_mut(usize::from(reg)).ok_or(bad)? =
                        i64::try_from(n).unwrap_or(i64::MAX);
                }
                Instr::CountAll { reg } => {
                    let n = self.trace.len();
                    *self.counts.get_mut(usize::from(reg)).ok_or(bad)? =
                        i64::try_from(n).unwrap_or(i64::MAX);
                }
                Instr::Zero { reg } => *self.counts.get_mut(usize::from(reg)).ok_or(bad)? = 0,
                Instr::Incr { reg } => {
                    let c = self.counts.get_mut(usize::from(reg)).ok_or(bad)?;
                    *c = c.saturating_add(1);
                }
                Instr::CountCmp { test, on, target } => {
                    let t = *self
                        .program
                        .count_cmps()
                        .get(usize::from(test))
                        .ok_or(bad)?;
                    let a = *self.counts.get(usize::from(t.reg)).ok_or(bad)?;
                    let b = match t.rhs {
                        CountOperand::Int(v) => v,
                        CountOperand::Reg(r) => *self.counts.get(usize::from(r)).ok_or(bad)?,
                    };
                    if t.op.holds(a.cmp(&b)) == on {
                        pc = target;
                    }
                }

                Instr::LoadConst { dst, konst } => {
                    let v = self.konst(konst).ok_or(bad)?;
                    self.set(dst, v).ok_or(bad)?;
                }
                Instr::LoadAttr { dst, attr } => {
                    let v = self.attr(attr).ok_or(bad)?;
                    self.set(dst, v).ok_or(bad)?;
                }
                Instr::LoadIntr { dst, intr } => {
                    let v = self.intrinsic(intr);
                    self.set(dst, v).ok_or(bad)?;
                }
                Instr::LoadExists { dst, attr } => {
                    let v = Value::Bool(self.attr(attr).ok_or(bad)?.is_present());
                    self.set(dst, v).ok_or(bad)?;
                }
                Instr::Len { dst, src } => {
                    let v = value::len(self.values.get(usize::from(src)).ok_or(bad)?);
                    self.set(dst, v).ok_or(bad)?;
                }
                Instr::Lower { dst, src } => {
                    let v = value::lower(self.take(src, dst).ok_or(bad)?);
                    self.set(dst, v).ok_or(bad)?;
                }
                Instr::Upper { dst, src } => {
                    let v = value::upper(self.take(src, dst).ok_or(bad)?);
                    self.set(dst, v).ok_or(bad)?;
                }
                Instr::StrCall { dst, test } => {
                    let t = *self.program.reg_strs().get(usize::from(test)).ok_or(bad)?;
                    let a = self.values.get(usize::from(t.a)).ok_or(bad)?;
                    let b = self.values.get(usize::from(t.b)).ok_or(bad)?;
                    let r = value::string_test(t.op, a, b, self.program.regexes());
                    self.set(dst, Value::Bool(r == Some(true))).ok_or(bad)?;
                }
                Instr::Cmp { test, on, target } => {
                    let t = *self.program.reg_cmps().get(usize::from(test)).ok_or(bad)?;
                    let a = self.values.get(usize::from(t.a)).ok_or(bad)?;
                    let b = self.values.get(usize::from(t.b)).ok_or(bad)?;
                    if value::compare(a, t.op, b) == on {
                        pc = target;
                    }
                }
                Instr::In { test, on, target } => {
                    let t = *self.program.reg_ins().get(usize::from(test)).ok_or(bad)?;
                    let v = self.values.get(usize::from(t.reg)).ok_or(bad)?;
                    let items = self.program.lists().get(usize::from(t.list)).ok_or(bad)?;
                    if in_list(v, items, t.negated) == on {
                        pc = target;
                    }
                }
                Instr::Str { test, on, target } => {
                    let t = *self.program.reg_strs().get(usize::from(test)).ok_or(bad)?;
                    let a = self.values.get(usize::from(t.a)).ok_or(bad)?;
                    let b = self.values.get(usize::from(t.b)).ok_or(bad)?;
                    if value::string_pred(t.op, a, b, self.program.regexes(), t.negated) == on {
                        pc = target;
                    }
                }
                Instr::Truthy { reg, on, target } => {
                    if value::truthy(self.values.get(usize::from(reg)).ok_or(bad)?) == on {
                        pc = target;
                    }
                }

                Instr::Push { list } => {
                    if self.cur != NO_SPAN {
                        match list {
                            WitnessList::Trigger => self.trigger.push(self.cur),
                            WitnessList::Offending => self.offending.push(self.cur),
                        }
                    }
                }
            }
        }
    }

    /// Starts a loop over `list` in `slot`: binds the current span to its first span and
    /// continues at `pc`, or jumps to `empty`. `None` for a slot beyond the active ones.
    fn enter(&mut self, slot: u8, list: &'a [SpanIndex], empty: Addr, pc: Addr) -> Option<Addr> {
        let Some(&first) = list.first() else {
            return Some(empty);
        };
        let frame = Frame {
            list,
            pos: 0,
            origin: self.cur,
        };
        self.set_frame(slot, frame)?;
        self.cur = first;
        Some(pc)
    }

    fn set_frame(&mut self, slot: u8, frame: Frame<'a>) -> Option<()> {
        let slot = usize::from(slot);
        if let Some(f) = self.frames.get_mut(slot) {
            *f = frame;
        } else if slot == self.frames.len() {
            self.frames.push(frame);
        } else {
            return None;
        }
        Some(())
    }

    fn set(&mut self, reg: u8, v: Value<'a>) -> Option<()> {
        *self.values.get_mut(usize::from(reg))? = v;
        Some(())
    }

    /// The value of register `src`, moved out when it is about to be overwritten (`dst`).
    fn take(&mut self, src: u8, dst: u8) -> Option<Value<'a>> {
        let v = self.values.get_mut(usize::from(src))?;
        Some(if src == dst {
            std::mem::replace(v, Value::Missing)
        } else {
            v.clone()
        })
    }

    fn konst(&self, k: u16) -> Option<Value<'a>> {
        let program: &'a Program = self.program;
        program
            .consts()
            .get(usize::from(k))
            .map(Value::from_literal)
    }

    /// Attribute `attrs[idx]` of the current span; `None` for a bad index.
    fn attr(&self, idx: u16) -> Option<Value<'a>> {
        let AttrRef { key, scope } = *self.program.attrs().get(usize::from(idx))?;
        Some(Value::from_opt_attr(
            self.trace.attribute(self.cur, key, scope),
        ))
    }

    fn intrinsic(&self, i: Intrinsic) -> Value<'a> {
        let trace: &'a PreparedTrace<'t> = self.trace;
        let cur = self.cur;
        let Some(s) = trace.span(cur) else {
            return Value::Missing;
        };
        match i {
            Intrinsic::Name => Value::str(&s.name),
            Intrinsic::Service => Value::str(trace.service(cur)),
            Intrinsic::Status => Value::Status(s.status_code as u8),
            Intrinsic::StatusMessage => Value::str(&s.status_message),
            Intrinsic::Kind => Value::Kind(s.kind as u8),
            Intrinsic::Duration => value::duration_value(s.duration_nanos()),
            Intrinsic::Start => value::time_value(s.start_time_unix_nano),
            Intrinsic::End => value::time_value(s.end_time_unix_nano),
            Intrinsic::Id => Value::str(trace.span_id_hex(cur)),
            Intrinsic::ParentId => Value::str(trace.parent_id_hex(cur)),
            Intrinsic::TraceId => Value::str(trace.trace_id_hex_of(cur)),
            Intrinsic::IsRoot => Value::Bool(s.parent_span_id.is_none()),
        }
    }

    fn trace_field(&self, f: TraceField) -> Value<'a> {
        let trace: &'a PreparedTrace<'t> = self.trace;
        match f {
            TraceField::Id => Value::str(trace.trace_id_hex()),
            TraceField::Duration => value::duration_value(trace.duration_nanos()),
            TraceField::SpanCount => Value::Int(i64::try_from(trace.len()).unwrap_or(i64::MAX)),
            TraceField::RootName => Value::str(
                trace
                    .root()
                    .and_then(|r| trace.span(r))
                    .map_or("", |s| s.name.as_str()),
            ),
            TraceField::RootService => Value::str(trace.root().map_or("", |r| trace.service(r))),
        }
    }

    /// The relation check of `t` between the origin of loop `t.slot` and the current span;
    /// `None` for a bad slot.
    fn related(&mut self, t: RelTest) -> Option<bool> {
        let origin = self.frames.get(usize::from(t.slot))?.origin;
        let x = self.cur;
        let (Some(o), Some(s)) = (self.trace.span(origin), self.trace.span(x)) else {
            return Some(false);
        };
        Some(match t.relation {
            Relation::HasChild | Relation::HasParent | Relation::HasAncestor => {
                within_start(o, s, t.within)
            }
            Relation::HasDescendant => {
                let (is, steps) = self.trace.is_ancestor(origin, x);
                self.budget = self.budget.saturating_sub(u64::from(steps));
                is && within_start(o, s, t.within)
            }
            Relation::FollowedBy => x != origin && follows(o, s, t.within),
            Relation::PrecededBy => x != origin && follows(s, o, t.within),
        })
    }
}

fn in_list(v: &Value<'_>, items: &[Literal], negated: bool) -> bool {
    let items = items.iter().map(Value::from_literal);
    if negated {
        value::not_in_list(v, items)
    } else {
        value::in_list(v, items)
    }
}
