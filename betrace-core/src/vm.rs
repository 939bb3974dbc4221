//! The bytecode VM: runs one lowered rule against one prepared trace.
//!
//! In: a [`Program`] (from `betrace_dsl::lower`), a [`PreparedTrace`] built with the symbols
//! the program was lowered against, and [`EvalOptions`]. Out: an [`Outcome`] — whether the
//! trace violates the rule, which clause failed, and the trigger and offending spans (DSL.md
//! §3.1, §3.6, §7.1–§7.3) — or a typed [`EvalError`].
//!
//! The decision follows the program's [`Route`] ([`Program::route`]), chosen when the rule is
//! lowered and shown in its listing:
//! - [`Route::Window`], [`Route::Gate`]: a decision made only of name tests and counts is read
//!   from a table ([`betrace_dsl::gate`]), indexed by a few bits of one word of the trace's
//!   name-presence bitset ([`PreparedTrace::presence`]) or by the atoms' truth values;
//! - [`Route::TraceLevel`]: a decision made only of trace-level instructions (names, counts,
//!   fused searches, `trace.` fields) runs in a small loop without loop slots or registers;
//! - [`Route::Machine`]: any other runs in the full machine, which allocates nothing (unless a
//!   rule needs more than four registers or loop slots) and compares no strings except where
//!   the rule itself compares strings.
//!
//! The last two first apply the required-names screen ([`betrace_dsl::route::Screen`]): a
//! trace without any of the program's required span names conforms at once, usually after
//! reading one word of the presence bitset.
//!
//! All routes give the same verdict and charge the same steps (the required-names screen
//! charges none); only for a violation does the machine run the witness code, which collects the span
//! lists. Loops live in a fixed set of slots and relation walks are iterative, so nothing
//! recurses per span or per ancestor. Every executed instruction counts against
//! [`EvalOptions::instruction_budget`] (DSL.md §3.7), and so does every span a fused search
//! (`Skip`, `Find`, `CountFind`) visits and every parent link a `has_descendant` test follows
//! in a trace with parent-link cycles.

use betrace_dsl::bytecode::{
    Addr, AttrCmp, AttrRef, CountOperand, Entry, Find, Instr, Program, RelTest,
    TRACE_LEVEL_COUNTERS, Verdict, WitnessList,
};
use betrace_dsl::gate::{Atom, Counted, CountedRhs, Row};
use betrace_dsl::ir::{Intrinsic, Literal, Relation, TraceField};
use betrace_dsl::route::Route;
use smallvec::SmallVec;

use crate::prepared::PreparedTrace;
use crate::span::{AttrValue, Span};
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

impl Outcome {
    /// The outcome of a trace that does not violate the rule.
    pub const CONFORMS: Outcome = Outcome {
        violated: false,
        failed_clause: None,
        trigger_spans: Vec::new(),
        offending_spans: Vec::new(),
    };
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
#[inline]
pub fn evaluate(
    program: &Program,
    trace: &PreparedTrace<'_>,
    options: &EvalOptions,
) -> Result<Outcome, EvalError> {
    let (word, mask) = program.screen_word();
    if mask != 0 && trace.presence().word(word) & mask == 0 {
        return Ok(Outcome::CONFORMS);
    }
    evaluate_by(program, program.route(), trace, options)
}

/// [`evaluate`] along `route`, one of [`Route::all_for`] `program`.
#[inline(always)]
fn evaluate_by(
    program: &Program,
    route: &Route,
    trace: &PreparedTrace<'_>,
    options: &EvalOptions,
) -> Result<Outcome, EvalError> {
    let budget = options.instruction_budget;
    match route {
        Route::TraceLevel(screen) => {
            if !screen.passes(trace.presence()) {
                return Ok(Outcome::CONFORMS);
            }
            run_trace_level(program, trace, budget)
        }
        Route::Machine(screen) => {
            if !screen.passes(trace.presence()) {
                return Ok(Outcome::CONFORMS);
            }
            run_machine(program, trace, budget, None)
        }
        Route::Window(w) => {
            let row = w.row(trace.presence().word(w.word));
            if row.conforms_within(budget) {
                return Ok(Outcome::CONFORMS);
            }
            by_row(program, row, trace, budget)
        }
        Route::Gate(gate) => {
            let row = gate.decide(|a| atom_holds(a, trace));
            if row.conforms_within(budget) {
                return Ok(Outcome::CONFORMS);
            }
            by_row(program, row, trace, budget)
        }
    }
}

/// The rest of [`evaluate`] for a program whose gate gave `row`, when that row is not
/// "conforms" within `budget`: a violation decided within the budget runs the witness code;
/// otherwise the machine runs and reports where the budget runs out.
#[inline(never)]
fn by_row(
    program: &Program,
    row: Row,
    trace: &PreparedTrace<'_>,
    budget: u64,
) -> Result<Outcome, EvalError> {
    let (verdict, steps) = row.get();
    match budget.checked_sub(u64::from(steps)) {
        Some(left) if verdict != Verdict::Conforms => {
            run_machine(program, trace, left, Some(verdict))
        }
        _ => run_machine(program, trace, budget, None),
    }
}

/// Whether a gate atom holds for `trace`.
#[inline(always)]
fn atom_holds(atom: &Atom, trace: &PreparedTrace<'_>) -> bool {
    let count = |c: Counted| match c {
        Counted::Name(n) => trace.count_named(n),
        Counted::All => trace.len(),
    };
    match *atom {
        Atom::Has(n) => trace.has_named(n),
        Atom::Count { lhs, op, rhs } => {
            let a = to_i64(count(lhs));
            let b = match rhs {
                CountedRhs::Int(v) => v,
                CountedRhs::Count(c) => to_i64(count(c)),
            };
            op.holds(a.cmp(&b))
        }
    }
}

/// The [`Route::TraceLevel`] decision in its own small loop; the full machine is built only
/// for the witness pass of a violation.
#[inline(never)]
fn run_trace_level(
    program: &Program,
    trace: &PreparedTrace<'_>,
    mut budget: u64,
) -> Result<Outcome, EvalError> {
    match decide_trace_level(program, trace, &mut budget)? {
        Verdict::Conforms => Ok(Outcome::CONFORMS),
        v => run_machine(program, trace, budget, Some(v)),
    }
}

/// Runs the decision code of a program whose route is [`Route::TraceLevel`]: no
/// loop slots, value registers or current span. Counts steps exactly as the full machine does.
#[inline(always)]
fn decide_trace_level(
    program: &Program,
    trace: &PreparedTrace<'_>,
    budget: &mut u64,
) -> Result<Verdict, EvalError> {
    let code = program.code();
    let mut storage = [0i64; TRACE_LEVEL_COUNTERS];
    let counts = storage
        .get_mut(..program.count_regs())
        .ok_or(EvalError::MalformedProgram { pc: 0 })?;
    let mut pc: Addr = 0;
    loop {
        let at = pc;
        let bad = EvalError::MalformedProgram { pc: at };
        let &ins = code.get(at as usize).ok_or(bad)?;
        if *budget == 0 {
            return Err(EvalError::BudgetExceeded { pc: at });
        }
        *budget -= 1;
        pc += 1;
        let (holds, on, target) = match ins {
            Instr::Jump { target } => {
                pc = target;
                continue;
            }
            Instr::Halt { verdict } => return Ok(verdict),
            Instr::HasName { name, on, target } => {
                (has_name(program, trace, name).ok_or(bad)?, on, target)
            }
            Instr::Find { find, on, target } => {
                let f = program.find_at(find).ok_or(bad)?;
                (
                    search(program, trace, f, budget, at, false)? > 0,
                    on,
                    target,
                )
            }
            Instr::CountName { reg, name } => {
                *counts.get_mut(usize::from(reg)).ok_or(bad)? =
                    name_count(program, trace, name).ok_or(bad)?;
                continue;
            }
            Instr::CountAll { reg } => {
                *counts.get_mut(usize::from(reg)).ok_or(bad)? = to_i64(trace.len());
                continue;
            }
            Instr::CountFind { reg, find } => {
                let f = program.find_at(find).ok_or(bad)?;
                let n = search(program, trace, f, budget, at, true)?;
                *counts.get_mut(usize::from(reg)).ok_or(bad)? = n;
                continue;
            }
            Instr::CountCmp { test, on, target } => {
                (count_cmp(program, counts, test).ok_or(bad)?, on, target)
            }
            Instr::TraceField { test, on, target } => {
                (field_test(program, trace, test).ok_or(bad)?, on, target)
            }
            _ => return Err(bad),
        };
        if holds == on {
            pc = target;
        }
    }
}

/// The full machine: runs the decision code unless `decided` already holds its verdict, then,
/// for a violation, the witness code.
#[inline(never)]
fn run_machine(
    program: &Program,
    trace: &PreparedTrace<'_>,
    budget: u64,
    decided: Option<Verdict>,
) -> Result<Outcome, EvalError> {
    // Scratch state lives in this frame and is lent to the machine; registers are built only
    // when the program has any.
    let mut frames: SmallVec<[Frame<'_>; 4]> = SmallVec::new();
    let mut value_storage: SmallVec<[Value<'_>; 4]>;
    let values: &mut [Value<'_>] = match program.value_regs() {
        0 => &mut [],
        n => {
            value_storage = smallvec::smallvec![Value::Missing; n];
            &mut value_storage
        }
    };
    let mut count_storage: SmallVec<[i64; 4]>;
    let counts: &mut [i64] = match program.count_regs() {
        0 => &mut [],
        n => {
            count_storage = smallvec::smallvec![0; n];
            &mut count_storage
        }
    };
    let mut m = Machine {
        program,
        trace,
        frames: &mut frames,
        values,
        counts,
        budget,
        witnesses: None,
    };
    let verdict = match decided {
        Some(v) => v,
        None => m.run(0)?,
    };
    let failed = match verdict {
        Verdict::Conforms => return Ok(Outcome::CONFORMS),
        Verdict::Always => FailedClause::Always,
        Verdict::Never => FailedClause::Never,
        Verdict::Expression => FailedClause::Expression,
    };
    m.witnesses = Some(Witnesses::default());
    m.run(program.witness_entry())?;
    let Witnesses {
        mut trigger,
        mut offending,
    } = m.witnesses.take().unwrap_or_default();
    for list in [&mut trigger, &mut offending] {
        list.sort_unstable();
        list.dedup();
    }
    Ok(Outcome {
        violated: true,
        failed_clause: Some(failed),
        trigger_spans: trigger,
        offending_spans: offending,
    })
}

/// Span lists collected by the witness code.
#[derive(Debug, Default)]
struct Witnesses {
    trigger: Vec<SpanIndex>,
    offending: Vec<SpanIndex>,
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

struct Machine<'a, 't, 'm> {
    program: &'a Program,
    trace: &'a PreparedTrace<'t>,
    frames: &'m mut SmallVec<[Frame<'a>; 4]>,
    values: &'m mut [Value<'a>],
    counts: &'m mut [i64],
    budget: u64,
    /// `Some` while the witness code runs.
    witnesses: Option<Witnesses>,
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

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl<'a, 't: 'a> Machine<'a, 't, '_> {
    /// Runs from `start` to a `Halt`. The program counter, the current span and the remaining
    /// budget live in locals; the budget is written back when the run ends.
    #[inline(always)]
    fn run(&mut self, start: Addr) -> Result<Verdict, EvalError> {
        let program: &'a Program = self.program;
        let trace: &'a PreparedTrace<'t> = self.trace;
        let code = program.code();
        let mut pc = start;
        let mut cur = NO_SPAN;
        let mut budget = self.budget;
        let result = loop {
            let Some(&ins) = code.get(pc as usize) else {
                break Err(EvalError::MalformedProgram { pc });
            };
            if budget == 0 {
                break Err(EvalError::BudgetExceeded { pc });
            }
            budget -= 1;
            let bad = EvalError::MalformedProgram { pc };
            pc += 1;
            macro_rules! test {
                ($cond:expr, $on:expr, $target:expr) => {
                    if ($cond) == $on {
                        pc = $target;
                    }
                };
            }
            macro_rules! get {
                ($e:expr) => {
                    match $e {
                        Some(v) => v,
                        None => break Err(bad),
                    }
                };
            }
            match ins {
                Instr::Jump { target } => pc = target,
                Instr::Halt { verdict } => break Ok(verdict),
                Instr::Trap => break Err(EvalError::ProgramTooLarge),

                Instr::ForName { slot, name, empty } => {
                    let id = *get!(program.name_at(name));
                    let list = trace.spans_named(id);
                    get!(self.enter(slot, list, empty, &mut pc, &mut cur));
                }
                Instr::ForAll { slot, empty } => {
                    get!(self.enter(slot, trace.all(), empty, &mut pc, &mut cur));
                }
                Instr::ForChildren { slot, empty } => {
                    let list = trace.children(cur);
                    get!(self.enter(slot, list, empty, &mut pc, &mut cur));
                }
                Instr::ForParent { slot, empty } => {
                    let list = trace.parent_slice(cur);
                    get!(self.enter(slot, list, empty, &mut pc, &mut cur));
                }
                Instr::ForDescendants { slot, empty } => {
                    let list = trace.descendant_candidates(cur);
                    get!(self.enter(slot, list, empty, &mut pc, &mut cur));
                }
                Instr::ForAncestors { slot, empty } => match trace.parent(cur) {
                    None => pc = empty,
                    Some(p) => {
                        let frame = Frame {
                            list: &[],
                            pos: 0,
                            origin: cur,
                        };
                        get!(self.set_frame(slot, frame));
                        cur = p;
                    }
                },
                Instr::Next { slot, body } => {
                    let f = get!(self.frames.get_mut(usize::from(slot)));
                    f.pos += 1;
                    match f.list.get(f.pos as usize) {
                        Some(&x) => {
                            cur = x;
                            pc = body;
                        }
                        None => cur = f.origin,
                    }
                }
                Instr::NextAncestor { slot, body } => {
                    let f = get!(self.frames.get_mut(usize::from(slot)));
                    f.pos += 1;
                    match trace.parent(cur) {
                        Some(p) if p != f.origin && (f.pos as usize) < trace.len() => {
                            cur = p;
                            pc = body;
                        }
                        _ => cur = f.origin,
                    }
                }
                Instr::Skip { slot, test, done } => {
                    if let Err(e) =
                        self.skip(slot, test, true, done, &mut pc, &mut cur, &mut budget, bad)
                    {
                        break Err(e);
                    }
                }
                Instr::SkipNot { slot, test, done } => {
                    if let Err(e) =
                        self.skip(slot, test, false, done, &mut pc, &mut cur, &mut budget, bad)
                    {
                        break Err(e);
                    }
                }
                Instr::Exit { slot, target } => {
                    cur = get!(self.frames.get(usize::from(slot))).origin;
                    pc = target;
                }

                Instr::Find { find, on, target } => {
                    let f = get!(program.find_at(find));
                    match search(program, trace, f, &mut budget, pc - 1, false) {
                        Ok(n) => test!(n > 0, on, target),
                        Err(e) => break Err(e),
                    }
                }
                Instr::CountFind { reg, find } => {
                    let f = get!(program.find_at(find));
                    match search(program, trace, f, &mut budget, pc - 1, true) {
                        Ok(n) => *get!(self.counts.get_mut(usize::from(reg))) = n,
                        Err(e) => break Err(e),
                    }
                }
                Instr::NameIs { name, on, target } => {
                    let id = *get!(program.name_at(name));
                    test!(trace.name_id(cur) == Some(id), on, target);
                }
                Instr::HasName { name, on, target } => {
                    test!(get!(has_name(program, trace, name)), on, target);
                }
                Instr::AttrCmp { test, on, target } => {
                    let t = get!(program.attr_cmp_at(test));
                    let v = Value::from_opt_attr(trace.attribute(cur, t.attr.key, t.attr.scope));
                    test!(
                        value::compare(&v, t.op, &Value::from_literal(&t.value)),
                        on,
                        target
                    );
                }
                Instr::IntrCmp { test, on, target } => {
                    let t = get!(program.intr_cmp_at(test));
                    let v = intrinsic(trace, cur, t.intr);
                    test!(
                        value::compare(&v, t.op, &Value::from_literal(&t.value)),
                        on,
                        target
                    );
                }
                Instr::AttrTruthy { attr, on, target } => {
                    let v = get!(attr_value(program, trace, cur, attr));
                    test!(value::truthy(&v), on, target);
                }
                Instr::AttrExists { attr, on, target } => {
                    let v = get!(attr_value(program, trace, cur, attr));
                    test!(v.is_present(), on, target);
                }
                Instr::AttrIn { test, on, target } => {
                    let t = get!(program.attr_in_at(test));
                    let v = Value::from_opt_attr(trace.attribute(cur, t.attr.key, t.attr.scope));
                    test!(in_list(&v, &t.list, t.negated), on, target);
                }
                Instr::AttrStr { test, on, target } => {
                    let t = get!(program.attr_str_at(test));
                    let v = Value::from_opt_attr(trace.attribute(cur, t.attr.key, t.attr.scope));
                    let arg = Value::from_literal(&t.arg);
                    let r = value::string_pred(t.op, &v, &arg, program.regexes(), t.negated);
                    test!(r, on, target);
                }
                Instr::IntrStr { test, on, target } => {
                    let t = get!(program.intr_str_at(test));
                    let v = intrinsic(trace, cur, t.intr);
                    let arg = Value::from_literal(&t.arg);
                    let r = value::string_pred(t.op, &v, &arg, program.regexes(), t.negated);
                    test!(r, on, target);
                }
                Instr::Related { test, on, target } => {
                    let t = *get!(program.rel_at(test));
                    let origin = get!(self.frames.get(usize::from(t.slot))).origin;
                    let (r, steps) = related(trace, t, origin, cur);
                    budget = budget.saturating_sub(u64::from(steps));
                    test!(r, on, target);
                }
                Instr::TraceField { test, on, target } => {
                    test!(get!(field_test(program, trace, test)), on, target);
                }

                Instr::CountName { reg, name } => {
                    let n = get!(name_count(program, trace, name));
                    *get!(self.counts.get_mut(usize::from(reg))) = n;
                }
                Instr::CountAll { reg } => {
                    *get!(self.counts.get_mut(usize::from(reg))) = to_i64(trace.len());
                }
                Instr::Zero { reg } => *get!(self.counts.get_mut(usize::from(reg))) = 0,
                Instr::Incr { reg } => {
                    let c = get!(self.counts.get_mut(usize::from(reg)));
                    *c = c.saturating_add(1);
                }
                Instr::CountCmp { test, on, target } => {
                    test!(get!(count_cmp(program, self.counts, test)), on, target);
                }

                Instr::LoadConst { dst, konst } => {
                    let v = Value::from_literal(get!(program.const_at(konst)));
                    *get!(self.values.get_mut(usize::from(dst))) = v;
                }
                Instr::LoadAttr { dst, attr } => {
                    let v = get!(attr_value(program, trace, cur, attr));
                    *get!(self.values.get_mut(usize::from(dst))) = v;
                }
                Instr::LoadIntr { dst, intr } => {
                    *get!(self.values.get_mut(usize::from(dst))) = intrinsic(trace, cur, intr);
                }
                Instr::LoadExists { dst, attr } => {
                    let v = Value::Bool(get!(attr_value(program, trace, cur, attr)).is_present());
                    *get!(self.values.get_mut(usize::from(dst))) = v;
                }
                Instr::Len { dst, src } => {
                    let v = value::len(get!(self.values.get(usize::from(src))));
                    *get!(self.values.get_mut(usize::from(dst))) = v;
                }
                Instr::Lower { dst, src } => {
                    let v = value::lower(get!(self.take(src, dst)));
                    *get!(self.values.get_mut(usize::from(dst))) = v;
                }
                Instr::Upper { dst, src } => {
                    let v = value::upper(get!(self.take(src, dst)));
                    *get!(self.values.get_mut(usize::from(dst))) = v;
                }
                Instr::StrCall { dst, test } => {
                    let t = *get!(program.reg_str_at(test));
                    let a = get!(self.values.get(usize::from(t.a)));
                    let b = get!(self.values.get(usize::from(t.b)));
                    let r = value::string_test(t.op, a, b, program.regexes()) == Some(true);
                    *get!(self.values.get_mut(usize::from(dst))) = Value::Bool(r);
                }
                Instr::Cmp { test, on, target } => {
                    let t = *get!(program.reg_cmp_at(test));
                    let a = get!(self.values.get(usize::from(t.a)));
                    let b = get!(self.values.get(usize::from(t.b)));
                    test!(value::compare(a, t.op, b), on, target);
                }
                Instr::In { test, on, target } => {
                    let t = get!(program.reg_in_at(test));
                    let v = get!(self.values.get(usize::from(t.reg)));
                    test!(in_list(v, &t.list, t.negated), on, target);
                }
                Instr::Str { test, on, target } => {
                    let t = *get!(program.reg_str_at(test));
                    let a = get!(self.values.get(usize::from(t.a)));
                    let b = get!(self.values.get(usize::from(t.b)));
                    let r = value::string_pred(t.op, a, b, program.regexes(), t.negated);
                    test!(r, on, target);
                }
                Instr::Truthy { reg, on, target } => {
                    test!(
                        value::truthy(get!(self.values.get(usize::from(reg)))),
                        on,
                        target
                    );
                }

                Instr::Push { list } => {
                    if let Some(w) = &mut self.witnesses
                        && cur != NO_SPAN
                    {
                        match list {
                            WitnessList::Trigger => w.trigger.push(cur),
                            WitnessList::Offending => w.offending.push(cur),
                        }
                    }
                }
            }
        };
        self.budget = budget;
        result
    }

    /// [`Instr::Skip`] (`want` true) and [`Instr::SkipNot`]: advances loop `slot` natively
    /// until the fused test `test` gives `want` for the current span. The test is chosen
    /// once, outside the loop over spans.
    #[expect(
        clippy::too_many_arguments,
        reason = "the run loop's locals are passed by reference to keep them in registers"
    )]
    #[inline(always)]
    fn skip(
        &mut self,
        slot: u8,
        test: u16,
        want: bool,
        done: Addr,
        pc: &mut Addr,
        cur: &mut SpanIndex,
        budget: &mut u64,
        bad: EvalError,
    ) -> Result<(), EvalError> {
        let program: &'a Program = self.program;
        let trace: &'a PreparedTrace<'t> = self.trace;
        let entry = program.pool().get(usize::from(test)).ok_or(bad)?;
        let mut frame = *self.frames.get(usize::from(slot)).ok_or(bad)?;
        let at = *pc - 1;
        let attr =
            |c: SpanIndex, a: &AttrRef| Value::from_opt_attr(trace.attribute(c, a.key, a.scope));
        macro_rules! go {
            ($test:expr) => {
                advance(&mut frame, cur, budget, want, at, $test)?
            };
        }
        let exhausted = match entry {
            Entry::Name(id) => go!(|c| (trace.name_id(c) == Some(*id), 0)),
            Entry::AttrCmp(t) => {
                let lit = Value::from_literal(&t.value);
                match t.value {
                    Literal::Int(k) => go!(|c| (attr_cmp_int(trace, t, k, c), 0)),
                    _ => go!(|c| (value::compare(&attr(c, &t.attr), t.op, &lit), 0)),
                }
            }
            Entry::IntrCmp(t) => {
                let lit = Value::from_literal(&t.value);
                let span = |c: SpanIndex| trace.span(c);
                match (t.intr, &t.value) {
                    (Intrinsic::Kind, Literal::Kind(k)) => go!(|c| {
                        let r =
                            span(c).is_some_and(|s| value::compare_members(s.kind as u8, t.op, *k));
                        (r, 0)
                    }),
                    (Intrinsic::Status, Literal::Status(k)) => go!(|c| {
                        let r = span(c)
                            .is_some_and(|s| value::compare_members(s.status_code as u8, t.op, *k));
                        (r, 0)
                    }),
                    (Intrinsic::Name, Literal::Str(k)) => go!(|c| {
                        let r = span(c).is_some_and(|s| value::compare_strs(&s.name, t.op, k));
                        (r, 0)
                    }),
                    _ => go!(|c| (value::compare(&intrinsic(trace, c, t.intr), t.op, &lit), 0)),
                }
            }
            Entry::AttrIn(t) => go!(|c| (in_list(&attr(c, &t.attr), &t.list, t.negated), 0)),
            Entry::AttrStr(t) => {
                let arg = Value::from_literal(&t.arg);
                let re = program.regexes();
                go!(|c| (
                    value::string_pred(t.op, &attr(c, &t.attr), &arg, re, t.negated),
                    0
                ))
            }
            Entry::IntrStr(t) => {
                let arg = Value::from_literal(&t.arg);
                let re = program.regexes();
                go!(|c| {
                    let v = intrinsic(trace, c, t.intr);
                    (value::string_pred(t.op, &v, &arg, re, t.negated), 0)
                })
            }
            Entry::Rel(t) => {
                let origin = self.frames.get(usize::from(t.slot)).ok_or(bad)?.origin;
                go!(|c| related(trace, *t, origin, c))
            }
            _ => return Err(bad),
        };
        if exhausted {
            *pc = done;
        }
        if let Some(f) = self.frames.get_mut(usize::from(slot)) {
            f.pos = frame.pos;
        }
        Ok(())
    }

    /// Starts a loop over `list` in `slot`: binds the current span to its first span, or
    /// jumps to `empty`. `None` for a slot beyond the active ones.
    #[inline(always)]
    fn enter(
        &mut self,
        slot: u8,
        list: &'a [SpanIndex],
        empty: Addr,
        pc: &mut Addr,
        cur: &mut SpanIndex,
    ) -> Option<()> {
        let Some(&first) = list.first() else {
            *pc = empty;
            return Some(());
        };
        self.set_frame(
            slot,
            Frame {
                list,
                pos: 0,
                origin: *cur,
            },
        )?;
        *cur = first;
        Some(())
    }

    #[inline(always)]
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

    /// The value of register `src`, moved out when it is about to be overwritten (`dst`).
    fn take(&mut self, src: u8, dst: u8) -> Option<Value<'a>> {
        let v = self.values.get_mut(usize::from(src))?;
        Some(if src == dst {
            std::mem::replace(v, Value::Missing)
        } else {
            v.clone()
        })
    }
}

/// Advances `frame` from span `cur` while `test` is not `want`, one budget step per span
/// left behind. `Ok(true)` when the source ran out (`cur` is then the loop's origin).
#[inline(always)]
fn advance(
    frame: &mut Frame<'_>,
    cur: &mut SpanIndex,
    budget: &mut u64,
    want: bool,
    at: Addr,
    mut test: impl FnMut(SpanIndex) -> (bool, u32),
) -> Result<bool, EvalError> {
    loop {
        let (r, steps) = test(*cur);
        *budget = budget.saturating_sub(u64::from(steps));
        if r == want {
            return Ok(false);
        }
        if *budget == 0 {
            return Err(EvalError::BudgetExceeded { pc: at });
        }
        *budget -= 1;
        frame.pos += 1;
        match frame.list.get(frame.pos as usize) {
            Some(&x) => *cur = x,
            None => {
                *cur = frame.origin;
                return Ok(true);
            }
        }
    }
}

/// The spans of a [`Find`] that pass all its tests: whether there is one (`count_all` false,
/// `Ok(1)` or `Ok(0)`), or how many. One budget step per span visited; `at` is the address of
/// the instruction, for errors.
fn search(
    program: &Program,
    trace: &PreparedTrace<'_>,
    f: &Find,
    budget: &mut u64,
    at: Addr,
    count_all: bool,
) -> Result<i64, EvalError> {
    let list = match f.name {
        Some(id) => trace.spans_named(id),
        None => trace.all(),
    };
    // The usual filter, one comparison of an attribute with an integer, is chosen once here
    // rather than per span.
    if let [(t, want)] = *f.tests
        && let Some(Entry::AttrCmp(c)) = program.pool().get(usize::from(t))
        && let Literal::Int(k) = c.value
    {
        return scan(list, budget, at, count_all, |x| {
            Ok(attr_cmp_int(trace, c, k, x) == want)
        });
    }
    search_any(program, trace, f, list, budget, at, count_all)
}

/// [`search`] with any fused tests.
#[inline(never)]
fn search_any(
    program: &Program,
    trace: &PreparedTrace<'_>,
    f: &Find,
    list: &[SpanIndex],
    budget: &mut u64,
    at: Addr,
    count_all: bool,
) -> Result<i64, EvalError> {
    let bad = EvalError::MalformedProgram { pc: at };
    scan(list, budget, at, count_all, |x| {
        for &(t, want) in f.tests.iter() {
            let entry = program.pool().get(usize::from(t)).ok_or(bad)?;
            if fused_test(program, trace, entry, x).ok_or(bad)? != want {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// Visits `list` in order, one budget step per span, counting the spans `keep` accepts;
/// stops at the first unless `count_all`.
#[inline(always)]
fn scan(
    list: &[SpanIndex],
    budget: &mut u64,
    at: Addr,
    count_all: bool,
    mut keep: impl FnMut(SpanIndex) -> Result<bool, EvalError>,
) -> Result<i64, EvalError> {
    let mut n = 0i64;
    for &x in list {
        if *budget == 0 {
            return Err(EvalError::BudgetExceeded { pc: at });
        }
        *budget -= 1;
        if keep(x)? {
            n += 1;
            if !count_all {
                break;
            }
        }
    }
    Ok(n)
}

/// The result of a fused test (the pool entry of a test instruction other than a relation)
/// on span `cur`; `None` for any other entry.
#[inline]
fn fused_test(
    program: &Program,
    trace: &PreparedTrace<'_>,
    entry: &Entry,
    cur: SpanIndex,
) -> Option<bool> {
    let attr = |a: &AttrRef| Value::from_opt_attr(trace.attribute(cur, a.key, a.scope));
    Some(match entry {
        Entry::Name(id) => trace.name_id(cur) == Some(*id),
        Entry::AttrCmp(t) => match t.value {
            Literal::Int(k) => attr_cmp_int(trace, t, k, cur),
            _ => value::compare(&attr(&t.attr), t.op, &Value::from_literal(&t.value)),
        },
        Entry::IntrCmp(t) => value::compare(
            &intrinsic(trace, cur, t.intr),
            t.op,
            &Value::from_literal(&t.value),
        ),
        Entry::AttrIn(t) => in_list(&attr(&t.attr), &t.list, t.negated),
        Entry::AttrStr(t) => value::string_pred(
            t.op,
            &attr(&t.attr),
            &Value::from_literal(&t.arg),
            program.regexes(),
            t.negated,
        ),
        Entry::IntrStr(t) => value::string_pred(
            t.op,
            &intrinsic(trace, cur, t.intr),
            &Value::from_literal(&t.arg),
            program.regexes(),
            t.negated,
        ),
        _ => return None,
    })
}

/// [`Entry::AttrCmp`] `t`, whose literal is the integer `k`, on span `x`: an integer attribute
/// is compared directly, any other value as [`value::compare`] does.
#[inline(always)]
fn attr_cmp_int(trace: &PreparedTrace<'_>, t: &AttrCmp, k: i64, x: SpanIndex) -> bool {
    match trace.attribute(x, t.attr.key, t.attr.scope) {
        Some(AttrValue::Int(v)) => value::compare_ints(*v, t.op, k),
        other => value::compare(&Value::from_opt_attr(other), t.op, &Value::Int(k)),
    }
}

/// Attribute `attrs[idx]` of span `cur`; `None` for a bad index.
fn attr_value<'a>(
    program: &'a Program,
    trace: &'a PreparedTrace<'_>,
    cur: SpanIndex,
    idx: u16,
) -> Option<Value<'a>> {
    let AttrRef { key, scope } = *program.attr_at(idx)?;
    Some(Value::from_opt_attr(trace.attribute(cur, key, scope)))
}

/// A `span.` intrinsic of span `cur` (DSL.md §3.4); missing without a current span.
#[inline]
fn intrinsic<'a>(trace: &'a PreparedTrace<'_>, cur: SpanIndex, i: Intrinsic) -> Value<'a> {
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

// ---- instruction semantics shared by the full machine and the trace-level loop; `None` for
// an operand the program does not have.

/// [`Instr::HasName`]: some span has pool name `name`.
#[inline(always)]
fn has_name(program: &Program, trace: &PreparedTrace<'_>, name: u16) -> Option<bool> {
    Some(trace.has_named(*program.name_at(name)?))
}

/// [`Instr::CountName`]: the number of spans with pool name `name`.
#[inline(always)]
fn name_count(program: &Program, trace: &PreparedTrace<'_>, name: u16) -> Option<i64> {
    Some(to_i64(trace.count_named(*program.name_at(name)?)))
}

/// [`Instr::CountCmp`] `test` over the counters.
#[inline(always)]
fn count_cmp(program: &Program, counts: &[i64], test: u16) -> Option<bool> {
    let t = program.count_cmp_at(test)?;
    let a = *counts.get(usize::from(t.reg))?;
    let b = match t.rhs {
        CountOperand::Int(v) => v,
        CountOperand::Reg(r) => *counts.get(usize::from(r))?,
    };
    Some(t.op.holds(a.cmp(&b)))
}

/// [`Instr::TraceField`] `test`.
#[inline(always)]
fn field_test(program: &Program, trace: &PreparedTrace<'_>, test: u16) -> Option<bool> {
    let t = program.field_at(test)?;
    let v = trace_field(trace, t.field);
    Some(value::compare(&v, t.op, &Value::from_literal(&t.value)))
}

/// A `trace.` field (DSL.md §3.4).
fn trace_field<'a>(trace: &'a PreparedTrace<'_>, f: TraceField) -> Value<'a> {
    match f {
        TraceField::Id => Value::str(trace.trace_id_hex()),
        TraceField::Duration => value::duration_value(trace.duration_nanos()),
        TraceField::SpanCount => Value::Int(to_i64(trace.len())),
        TraceField::RootName => Value::str(
            trace
                .root()
                .and_then(|r| trace.span(r))
                .map_or("", |s| s.name.as_str()),
        ),
        TraceField::RootService => Value::str(trace.root().map_or("", |r| trace.service(r))),
    }
}

/// The relation check of `t` between `origin` and span `x` (DSL.md §3.5, §7.14), and the
/// number of parent links followed to decide it.
fn related(trace: &PreparedTrace<'_>, t: RelTest, origin: SpanIndex, x: SpanIndex) -> (bool, u32) {
    let (Some(o), Some(s)) = (trace.span(origin), trace.span(x)) else {
        return (false, 0);
    };
    match t.relation {
        Relation::HasChild | Relation::HasParent | Relation::HasAncestor => {
            (within_start(o, s, t.within), 0)
        }
        Relation::HasDescendant => {
            let (is, steps) = trace.is_ancestor(origin, x);
            (is && within_start(o, s, t.within), steps)
        }
        Relation::FollowedBy => (x != origin && follows(o, s, t.within), 0),
        Relation::PrecededBy => (x != origin && follows(s, o, t.within), 0),
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

#[cfg(test)]
mod tests {
    //! Every route against the full machine, at the exact budget, around it and unlimited.

    use std::sync::Arc;

    use betrace_dsl::ir::Symbols;
    use betrace_dsl::lower::lower;

    use super::*;
    use crate::span::{Resource, SpanId, SpanKind, StatusCode, TraceId};
    use crate::trace::Trace;

    /// The smallest budget at which the full machine decides `program` on `trace` (0 when
    /// it fails otherwise than on the budget).
    fn exact_budget(program: &Program, trace: &PreparedTrace<'_>) -> u64 {
        let (mut lo, mut hi) = (0u64, EvalOptions::default().instruction_budget);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match run_machine(program, trace, mid, None) {
                Err(EvalError::BudgetExceeded { .. }) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// Every route of `program` against the unscreened full machine on `trace`, at budgets
    /// around the exact one and unlimited. A screen that rejects the trace answers
    /// "conforms" at every budget, which the full machine must reach with enough budget.
    fn routes_agree(program: &Program, trace: &PreparedTrace<'_>, at: &str) -> Vec<Route> {
        let routes = Route::all_for(program);
        assert_eq!(routes.first(), Some(program.route()), "{at}: chosen route");
        let exact = exact_budget(program, trace);
        let unlimited = run_machine(program, trace, u64::MAX, None);
        let budgets = [0, exact.saturating_sub(1), exact, exact + 1, u64::MAX];
        for route in &routes {
            let screened = match route {
                Route::TraceLevel(s) | Route::Machine(s) => !s.passes(trace.presence()),
                Route::Window(_) | Route::Gate(_) => false,
            };
            if screened {
                assert_eq!(
                    unlimited,
                    Ok(Outcome::CONFORMS),
                    "{at}: {route:?} screens out"
                );
            }
            for budget in budgets {
                let options = EvalOptions {
                    instruction_budget: budget,
                };
                let got = evaluate_by(program, route, trace, &options);
                let want = if screened {
                    Ok(Outcome::CONFORMS)
                } else {
                    run_machine(program, trace, budget, None)
                };
                assert_eq!(got, want, "{at}: {route:?} with budget {budget}");
                if route == program.route() {
                    let direct = evaluate(program, trace, &options);
                    assert_eq!(direct, want, "{at}: evaluate with budget {budget}");
                }
            }
        }
        routes
    }

    mod generated {
        //! Random rules and traces: every route against the full machine (the property behind
        //! [`Route::all_for`]).

        use proptest::prelude::*;

        use super::*;

        const NAMES: [&str; 4] = ["a", "b", "c", "d"];
        const CMP: [&str; 6] = [">", ">=", "<", "<=", "==", "!="];

        fn name() -> impl Strategy<Value = &'static str> {
            prop::sample::select(&NAMES[..])
        }

        fn cmp() -> impl Strategy<Value = &'static str> {
            prop::sample::select(&CMP[..])
        }

        fn selection() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => name().prop_map(str::to_string),
                1 => (name(), 0..2000i64).prop_map(|(n, k)| format!("{n}.where(amount > {k})")),
                1 => (name(), name()).prop_map(|(n, c)| format!("{n}.where(has_child({c}))")),
                1 => (name(), 0..2000i64, name()).prop_map(|(n, k, c)| {
                    format!("{n}.where(amount <= {k} and not has_parent({c}))")
                }),
            ]
        }

        fn condition() -> impl Strategy<Value = String> {
            let atom = prop_oneof![
                4 => selection(),
                2 => (name(), cmp(), 0..4i64).prop_map(|(n, op, k)| format!("count({n}) {op} {k}")),
                1 => (selection(), cmp(), 0..4i64).prop_map(|(s, op, k)| format!("count({s}) {op} {k}")),
                2 => (name(), cmp(), name()).prop_map(|(a, op, b)| format!("count({a}) {op} count({b})")),
                1 => (cmp(), 0..6i64).prop_map(|(op, k)| format!("trace.span_count {op} {k}")),
            ];
            atom.prop_recursive(2, 4, 2, |inner| {
                prop_oneof![
                    (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} and {b})")),
                    (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
                    inner.prop_map(|a| format!("not ({a})")),
                ]
            })
        }

        fn rule() -> impl Strategy<Value = String> {
            let c = condition;
            prop_oneof![
                (c(), c()).prop_map(|(w, a)| format!("when {{ {w} }} always {{ {a} }}")),
                (c(), c()).prop_map(|(w, n)| format!("when {{ {w} }} never {{ {n} }}")),
                (c(), c(), c()).prop_map(|(w, a, n)| format!(
                    "when {{ {w} }} always {{ {a} }} never {{ {n} }}"
                )),
                c().prop_map(|a| format!("always {{ {a} }}")),
                c().prop_map(|n| format!("never {{ {n} }}")),
                (name(), 0..2000i64)
                    .prop_map(|(n, k)| format!("span.name == \"{n}\" and amount > {k}")),
            ]
        }

        /// Spans as (name index, `amount`, parent index); name index 4 is a name no rule uses.
        fn spans() -> impl Strategy<Value = Vec<(usize, i64, Option<usize>)>> {
            prop::collection::vec((0..5usize, 0..2000i64, prop::option::of(0..8usize)), 0..8)
        }

        fn build(spans: &[(usize, i64, Option<usize>)], names: &[String]) -> Trace {
            let resource = Arc::new(Resource::with_service("svc"));
            let id = |i: usize| SpanId((i as u64 + 1).to_be_bytes());
            Trace::new(
                spans
                    .iter()
                    .enumerate()
                    .map(|(i, &(n, amount, parent))| Span {
                        trace_id: TraceId([1; 16]),
                        span_id: id(i),
                        parent_span_id: parent.filter(|&p| p < i).map(id),
                        name: names.get(n).map_or("z", String::as_str).into(),
                        kind: SpanKind::Internal,
                        start_time_unix_nano: 1_000 * i as u64,
                        end_time_unix_nano: 1_000 * i as u64 + 500,
                        status_code: StatusCode::Unset,
                        status_message: String::new(),
                        attributes: vec![("amount".into(), AttrValue::Int(amount))],
                        resource: Arc::clone(&resource),
                        scope_name: "".into(),
                    })
                    .collect(),
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(768))]

            /// `pad` names interned before the rule's own move them across a presence-word
            /// boundary, so screens on one word and on several words both occur.
            #[test]
            fn every_route_agrees_with_the_full_machine(
                source in rule(),
                pad in prop_oneof![Just(0u32), 60..=66u32],
                traces in prop::collection::vec(spans(), 1..4),
            ) {
                let mut symbols = Symbols::new();
                for i in 0..pad {
                    symbols.intern_span_name(&format!("pad{i}"));
                }
                let Ok(rule) = betrace_dsl::check_source(&source, &mut symbols) else {
                    return Err(TestCaseError::reject("rule does not compile"));
                };
                let program = lower(rule);
                let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
                names.push("z".into());
                for spans in &traces {
                    let t = build(spans, &names);
                    let prepared = PreparedTrace::new(&t, &symbols);
                    routes_agree(&program, &prepared, &format!("{source} (pad {pad}) over {spans:?}"));
                }
            }
        }
    }
}
