//! The bytecode a checked rule is lowered to, and its disassembler.
//!
//! Three files: `instr` the instruction set and its operand pool entries, `program` the
//! lowered rule and its decision classification, `listing` the disassembler.
//!
//! In: nothing (built by [`crate::lower`]). Out: [`Program`] — compact [`Instr`]uctions, their
//! operand pool (names, attribute references, constants, comparison descriptors), the
//! compiled regular expressions and the decision route — executed by the VM in `betrace-core`.
//! [`Program::disassemble`] renders a readable listing. Runtime errors name the instruction
//! (its address in the listing); the checked IR carries no source positions, so the program
//! keeps no table from instructions back to rule text.
//!
//! # Machine model
//!
//! The program has two entry points. The *decision* code starts at 0 and ends in a
//! [`Instr::Halt`] whose [`Verdict`] says whether the trace violates the rule and which clause
//! failed; it never allocates. Only for a violation does the VM run the *witness* code from
//! [`Program::witness_entry`], which pushes the spans that prove it (DSL.md §3.6, §7.1) onto the
//! trigger and offending lists.
//!
//! Boolean logic is compiled to jumps: every test instruction carries `on` and `target` and
//! jumps to `target` when its result equals `on`, else falls through. A selection is a loop:
//! a `For*` instruction binds the *current span* to the first span of a source (the spans with
//! one name, all spans, the children/parent/ancestors/descendants of the current span) in loop
//! slot `slot`, or jumps to `empty`; `Next` advances and jumps back to the loop body while
//! spans remain, and when the source is exhausted restores the current span the loop started
//! from and falls through; `Exit` leaves a loop early (restoring the same span) and jumps. Loop
//! slots are static nesting depths, so the VM never recurses.
//!
//! Common shapes are fused. Attribute/intrinsic-vs-constant comparisons, `in` and string tests
//! on an attribute or intrinsic, name tests and relation checks are single instructions whose
//! operands sit in one pool entry. A loop whose body starts with such a test starts with
//! [`Instr::Skip`] instead, which steps over failing spans without dispatching per span. In
//! the decision code, a selection whose filters are all fused tests is one [`Instr::Find`]
//! (or [`Instr::CountFind`] under `count`), and one without filters is [`Instr::HasName`] (or
//! [`Instr::CountName`]).
//!
//! Operands of comparisons that have no fused instruction are evaluated into value registers
//! (`r0`, `r1`, …); counts of `count(...)`/`trace.count(...)` live in counter registers
//! (`c0`, `c1`, …).

mod instr;
mod listing;
mod program;

pub use instr::*;
pub use listing::{intrinsic_text, literal_text, trace_field_text};
pub use program::*;
