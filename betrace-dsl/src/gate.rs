//! Decision tables for rules whose decision depends only on a few constant-time facts about
//! the trace.
//!
//! Many rules decide on span names and counts alone: `when { payment } always { fraud_check }`
//! asks whether two names occur, `when { count(a) != count(b) } never { c }` compares two counts
//! and asks about one name. For such a program the lowering lists those facts (*atoms*, at
//! most [`GATE_ATOMS`]) and runs the decision code once for every combination of their truth
//! values, recording the verdict and the number of steps the code takes to reach it (DSL.md
//! §3.7). The VM then evaluates the atoms and reads the verdict from the table, without
//! dispatching instructions; the budget is charged the recorded steps, so the result —
//! including a budget error, which the VM reports by running the code — is exactly the
//! bytecode's. When the atoms are name tests on nearby name ids, a [`Window`] indexes the table
//! directly by bits of the trace's name-presence bitset ([`crate::route::Presence`]).

use crate::bytecode::{CountOperand, Instr, Program, Verdict};
use crate::ir::{CmpOp, NameId};

/// Most atoms in a [`Gate`]; its table has `2^GATE_ATOMS` rows.
pub const GATE_ATOMS: usize = 4;

/// Longest path through decision code that a gate accepts, in steps.
const MAX_STEPS: u32 = 4096;

/// A span count the decision code reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Spans named `name` (`count(name)`).
    Name(NameId),
    /// Every span of the trace.
    All,
}

/// Right side of a count comparison atom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountedRhs {
    Int(i64),
    Count(Counted),
}

/// A fact about the trace that takes constant time to establish on a prepared trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Atom {
    /// Some span is named `name`.
    Has(NameId),
    /// `lhs op rhs`.
    Count {
        lhs: Counted,
        op: CmpOp,
        rhs: CountedRhs,
    },
}

/// A verdict and the steps the decision code takes to reach it, packed as `verdict code << 32
/// | steps` (Conforms is code 0), so that it is at most a budget ≤ [`ROW_LIMIT`] exactly when
/// it is "conforms" within that many steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row(u64);

/// Budgets are compared with rows after clamping to this value.
pub const ROW_LIMIT: u64 = u32::MAX as u64;

impl Row {
    fn new(verdict: Verdict, steps: u32) -> Row {
        let code: u64 = match verdict {
            Verdict::Conforms => 0,
            Verdict::Always => 1,
            Verdict::Never => 2,
            Verdict::Expression => 3,
        };
        Row(code << 32 | u64::from(steps))
    }

    /// True when the row is "conforms" in at most `budget` steps.
    #[inline(always)]
    pub fn conforms_within(self, budget: u64) -> bool {
        self.0 <= budget.min(ROW_LIMIT)
    }

    /// The verdict and the steps.
    #[inline]
    pub fn get(self) -> (Verdict, u32) {
        let verdict = match self.0 >> 32 {
            0 => Verdict::Conforms,
            1 => Verdict::Always,
            2 => Verdict::Never,
            _ => Verdict::Expression,
        };
        (verdict, self.0 as u32)
    }
}

/// The decision of a program as a function of its atoms (see the module documentation).
/// Held inline, so that deciding follows no pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    atoms: [Atom; GATE_ATOMS],
    len: u8,
    /// Row `bits`: bit `i` set when atom `i` holds.
    table: [Row; 1 << GATE_ATOMS],
}

/// Most name ids a [`Window`] spans.
pub const WINDOW_BITS: u32 = 6;

/// A gate read from a few bits of one 64-bit word of a [`crate::route::Presence`] bitset:
/// when every atom is a name test and the names' ids lie within [`WINDOW_BITS`] consecutive
/// ids of one word — the usual case, as a rule's names are interned together — the verdict is
/// read from a table indexed by those bits as they stand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Index of the bitset word.
    pub word: u32,
    /// Id of the window's lowest name, modulo 64.
    pub shift: u32,
    table: [Row; 1 << WINDOW_BITS],
}

impl Window {
    /// The row for the bitset word [`Window::word`] (0 when the bitset has no such word).
    #[inline(always)]
    pub fn row(&self, word: u64) -> Row {
        self.table[(word >> self.shift) as usize % (1 << WINDOW_BITS)]
    }

    /// The window of a gate whose atoms are all name tests within [`WINDOW_BITS`] ids of one
    /// word.
    pub(crate) fn of_gate(gate: &Gate) -> Option<Window> {
        let ids = gate
            .atoms()
            .iter()
            .map(|a| match a {
                Atom::Has(n) => Some(n.0),
                Atom::Count { .. } => None,
            })
            .collect::<Option<Vec<u32>>>()?;
        Window::build(&ids, |bits| gate.table[bits])
    }

    /// `row(bits)` gives the row for names `ids` present as bit `i` of `bits` says.
    fn build(ids: &[u32], row: impl Fn(usize) -> Row) -> Option<Window> {
        let (lo, hi) = (*ids.iter().min()?, *ids.iter().max()?);
        if lo / 64 != hi / 64 || hi - lo >= WINDOW_BITS || ids.len() > GATE_ATOMS {
            return None;
        }
        let mut table = [Row(0); 1 << WINDOW_BITS];
        for (v, r) in table.iter_mut().enumerate() {
            let bits = ids
                .iter()
                .enumerate()
                .fold(0, |b, (i, id)| b | (v >> (id - lo) & 1) << i);
            *r = row(bits);
        }
        Some(Window {
            word: lo / 64,
            shift: lo % 64,
            table,
        })
    }
}

impl Gate {
    /// The atoms, in the order of the table's bits.
    pub fn atoms(&self) -> &[Atom] {
        self.atoms.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The verdict and the number of steps of the decision code, given whether each atom
    /// holds.
    #[inline]
    pub fn decide(&self, mut holds: impl FnMut(&Atom) -> bool) -> Row {
        let mut bits = 0usize;
        for (i, a) in self.atoms().iter().enumerate() {
            bits |= usize::from(holds(a)) << i;
        }
        self.table[bits % (1 << GATE_ATOMS)]
    }

    /// The gate of `p`'s decision code, when it is made only of name tests, span counts and
    /// count comparisons with at most [`GATE_ATOMS`] tests, and every path ends in a `Halt`.
    pub(crate) fn build(p: &Program) -> Option<Gate> {
        let decision = p.code().get(..p.witness_entry() as usize)?;
        let mut counters: Vec<Option<Counted>> = vec![None; p.count_regs()];
        let mut tests: Vec<Option<TestAt>> = vec![None; decision.len()];
        let mut atoms = Vec::new();
        for (addr, ins) in decision.iter().enumerate() {
            let mut read = [None; 2];
            let atom = match *ins {
                Instr::Jump { .. } | Instr::Halt { .. } => continue,
                Instr::CountName { reg, name } => {
                    let id = *p.name_at(name)?;
                    *counters.get_mut(usize::from(reg))? = Some(Counted::Name(id));
                    continue;
                }
                Instr::CountAll { reg } => {
                    *counters.get_mut(usize::from(reg))? = Some(Counted::All);
                    continue;
                }
                Instr::HasName { name, .. } => Atom::Has(*p.name_at(name)?),
                Instr::CountCmp { test, .. } => {
                    let t = p.count_cmp_at(test)?;
                    let counted = |reg: u8| counters.get(usize::from(reg)).copied().flatten();
                    let lhs = counted(t.reg)?;
                    read[0] = Some((t.reg, lhs));
                    let rhs = match t.rhs {
                        CountOperand::Int(v) => CountedRhs::Int(v),
                        CountOperand::Reg(r) => {
                            let c = counted(r)?;
                            read[1] = Some((r, c));
                            CountedRhs::Count(c)
                        }
                    };
                    Atom::Count { lhs, op: t.op, rhs }
                }
                _ => return None,
            };
            if atoms.len() == GATE_ATOMS {
                return None;
            }
            *tests.get_mut(addr)? = Some(TestAt {
                atom: atoms.len(),
                counters: read,
            });
            atoms.push(atom);
        }
        let mut table = [Row(0); 1 << GATE_ATOMS];
        for (bits, row) in table.iter_mut().enumerate().take(1 << atoms.len()) {
            let (verdict, steps) = run(p, decision, &tests, bits)?;
            *row = Row::new(verdict, steps);
        }
        let len = atoms.len() as u8;
        let mut inline = [Atom::Has(NameId(0)); GATE_ATOMS];
        for (slot, a) in inline.iter_mut().zip(atoms) {
            *slot = a;
        }
        Some(Gate {
            atoms: inline,
            len,
            table,
        })
    }
}

/// The test at an address of the decision code: its atom, and the counters the atom assumes
/// (the last assignment before the test in code order).
#[derive(Clone, Copy)]
struct TestAt {
    atom: usize,
    counters: [Option<(u8, Counted)>; 2],
}

/// Runs the decision code with atom `i` giving bit `i` of `bits`. `None` when a path loops,
/// leaves the decision code, or reaches a comparison whose counters hold other counts than
/// its atom assumes.
fn run(
    p: &Program,
    decision: &[Instr],
    tests: &[Option<TestAt>],
    bits: usize,
) -> Option<(Verdict, u32)> {
    let count_regs = p.count_regs();
    let mut counters: Vec<Option<Counted>> = vec![None; count_regs];
    let mut pc = 0usize;
    let mut steps = 0u32;
    loop {
        steps += 1;
        if steps > MAX_STEPS {
            return None;
        }
        pc = match *decision.get(pc)? {
            Instr::Halt { verdict } => return Some((verdict, steps)),
            Instr::Jump { target } => target as usize,
            Instr::CountName { reg, name } => {
                *counters.get_mut(usize::from(reg))? = Some(Counted::Name(*p.name_at(name)?));
                pc + 1
            }
            Instr::CountAll { reg } => {
                *counters.get_mut(usize::from(reg))? = Some(Counted::All);
                pc + 1
            }
            Instr::CountCmp { on, target, .. } | Instr::HasName { on, target, .. } => {
                let t = (*tests.get(pc)?)?;
                for (reg, assumed) in t.counters.into_iter().flatten() {
                    if *counters.get(usize::from(reg))? != Some(assumed) {
                        return None;
                    }
                }
                if (bits >> t.atom & 1 == 1) == on {
                    target as usize
                } else {
                    pc + 1
                }
            }
            _ => return None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Symbols;
    use crate::lower::lower;

    fn gate(source: &str) -> (Option<Gate>, Symbols) {
        let mut symbols = Symbols::new();
        let rule = crate::check_source(source, &mut symbols).unwrap();
        (Gate::build(&lower(rule)), symbols)
    }

    #[test]
    fn name_tests_become_a_table() {
        let (g, s) = gate("when { payment } always { fraud_check }");
        let g = g.unwrap();
        let id = |n: &str| s.span_name_id(n).unwrap();
        assert_eq!(
            g.atoms(),
            &[Atom::Has(id("payment")), Atom::Has(id("fraud_check"))]
        );
        let decide = |payment: bool, fraud: bool| {
            g.decide(|a| match a {
                Atom::Has(n) if *n == id("payment") => payment,
                _ => fraud,
            })
            .get()
        };
        let w = Window::of_gate(&g).unwrap();
        assert_eq!((w.word, w.shift), (0, 0));
        assert_eq!(w.row(0b01).get(), (Verdict::Always, 3));
        assert_eq!(w.row(0b11 | 0b1100).get(), (Verdict::Conforms, 3));
        assert!(w.row(0b11).conforms_within(3) && w.row(0b11).conforms_within(u64::MAX));
        assert!(!w.row(0b11).conforms_within(2) && !w.row(0b01).conforms_within(u64::MAX));
        assert_eq!(decide(false, false), (Verdict::Conforms, 2));
        assert_eq!(decide(false, true), (Verdict::Conforms, 2));
        assert_eq!(decide(true, false), (Verdict::Always, 3));
        assert_eq!(decide(true, true), (Verdict::Conforms, 3));
    }

    #[test]
    fn counts_become_atoms() {
        let (g, s) =
            gate("when { count(http_request) != count(http_response) } never { orphaned }");
        let g = g.unwrap();
        let id = |n: &str| s.span_name_id(n).unwrap();
        assert_eq!(
            g.atoms(),
            &[
                Atom::Count {
                    lhs: Counted::Name(id("http_request")),
                    op: CmpOp::Ne,
                    rhs: CountedRhs::Count(Counted::Name(id("http_response"))),
                },
                Atom::Has(id("orphaned")),
            ]
        );
        assert_eq!(g.decide(|_| true).get(), (Verdict::Never, 5));
    }

    #[test]
    fn searches_and_loops_have_no_gate() {
        for source in [
            "when { payment.where(amount > 1000) } always { fraud_check }",
            "when { payment } always { fraud_check.where(score < 0.3) }",
            "span.name == \"x\"",
            "when { a } always { b and c and d and e }",
        ] {
            assert_eq!(gate(source).0, None, "{source}");
        }
    }
}
