//! The instruction set: [`Instr`], its operand pool [`Entry`] kinds and the verdicts.

use crate::ir::{AttrScope, CmpOp, Intrinsic, KeyId, Literal, NameId, Relation, StrOp, TraceField};

/// A code address (index into [`Program::code`](super::Program::code)).
pub type Addr = u32;

/// What the decision code concludes (DSL.md §3.1, §3.6 `failed_clause`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// No violation.
    Conforms,
    /// `when` held and `always` did not (also when `never` matched too, DSL.md §7.2).
    Always,
    /// `when` held, `always` held or is absent, and `never` matched.
    Never,
    /// The expression form matched.
    Expression,
}

/// Which span list a witness is pushed onto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WitnessList {
    /// `trigger_spans`: witnesses of `when`, or of the expression form.
    Trigger,
    /// `offending_spans`: witnesses of `never`.
    Offending,
}

/// One instruction: 8 bytes, `Copy`. Index fields (`u16`) point into the program's operand
/// pool ([`Program::pool`](super::Program::pool)); `slot` is a loop slot, `reg`/`dst`/`src` a register, `target`/`empty`/`body` a
/// code address. Test instructions jump to `target` when their result equals `on`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Instr {
    /// Jump unconditionally.
    Jump { target: Addr },
    /// Stop; the decision code's verdict (ignored at the end of the witness code).
    Halt { verdict: Verdict },
    /// Stop with an error: the rule was too large to encode (see [`Program::is_trap`](super::Program::is_trap)).
    Trap,

    /// Loop over the spans named by pool entry `name` ([`Entry::Name`]), in trace order.
    ForName { slot: u8, name: u16, empty: Addr },
    /// Loop over every span of the trace, in trace order.
    ForAll { slot: u8, empty: Addr },
    /// Loop over the direct children of the current span.
    ForChildren { slot: u8, empty: Addr },
    /// Loop over the parent of the current span (zero or one span).
    ForParent { slot: u8, empty: Addr },
    /// Loop over candidate descendants of the current span; pair with [`Instr::Related`].
    ForDescendants { slot: u8, empty: Addr },
    /// Loop over the ancestors of the current span, nearest first (a span in a parent-link
    /// cycle is not its own ancestor; the walk ends after at most one step per span).
    ForAncestors { slot: u8, empty: Addr },
    /// Advance a `For*` loop other than `ForAncestors`.
    Next { slot: u8, body: Addr },
    /// Advance a `ForAncestors` loop.
    NextAncestor { slot: u8, body: Addr },
    /// Leave loop `slot` early and jump.
    Exit { slot: u8, target: Addr },
    /// Loop head fused with the loop's first test: while the fused test in pool entry `test`
    /// (a name, attribute/intrinsic comparison, string or `in` test, or relation check) is
    /// false for the current span, advance loop `slot`; when the source is exhausted, restore
    /// the loop's starting span and jump to `done`. Each span skipped is one step.
    Skip { slot: u8, test: u16, done: Addr },
    /// [`Instr::Skip`] while the test is true.
    SkipNot { slot: u8, test: u16, done: Addr },

    /// Some span of the [`Entry::Find`] `find` passes all its tests (a selection whose
    /// filters are all fused tests, searched without a loop in the bytecode).
    Find { find: u16, on: bool, target: Addr },
    /// Counter `reg` := number of spans of the [`Entry::Find`] `find` that pass all its tests.
    CountFind { reg: u8, find: u16 },
    /// The current span's name is pool entry `name` ([`Entry::Name`]).
    NameIs { name: u16, on: bool, target: Addr },
    /// Some span is named by pool entry `name` (a selection without filters).
    HasName { name: u16, on: bool, target: Addr },
    /// [`Entry::AttrCmp`] `test` on the current span.
    AttrCmp { test: u16, on: bool, target: Addr },
    /// [`Entry::IntrCmp`] `test` on the current span.
    IntrCmp { test: u16, on: bool, target: Addr },
    /// Truthiness of attribute [`Entry::Attr`] `attr` of the current span.
    AttrTruthy { attr: u16, on: bool, target: Addr },
    /// Attribute [`Entry::Attr`] `attr` is present on the current span.
    AttrExists { attr: u16, on: bool, target: Addr },
    /// [`Entry::AttrIn`] `test` on the current span.
    AttrIn { test: u16, on: bool, target: Addr },
    /// [`Entry::AttrStr`] `test` on the current span.
    AttrStr { test: u16, on: bool, target: Addr },
    /// [`Entry::IntrStr`] `test` on the current span.
    IntrStr { test: u16, on: bool, target: Addr },
    /// [`Entry::Rel`] `test`: the current span stands in the relation to the span
    /// loop `slot` started from (DSL.md §3.5, §7.14).
    Related { test: u16, on: bool, target: Addr },
    /// [`Entry::Field`] `test` on the trace.
    TraceField { test: u16, on: bool, target: Addr },

    /// Counter `reg` := number of spans named by pool entry `name`.
    CountName { reg: u8, name: u16 },
    /// Counter `reg` := number of spans.
    CountAll { reg: u8 },
    /// Counter `reg` := 0.
    Zero { reg: u8 },
    /// Counter `reg` += 1.
    Incr { reg: u8 },
    /// [`Entry::CountCmp`] `test`.
    CountCmp { test: u16, on: bool, target: Addr },

    /// Register `dst` := [`Entry::Const`] `konst`.
    LoadConst { dst: u8, konst: u16 },
    /// Register `dst` := attribute [`Entry::Attr`] `attr` of the current span (or missing).
    LoadAttr { dst: u8, attr: u16 },
    /// Register `dst` := intrinsic of the current span.
    LoadIntr { dst: u8, intr: Intrinsic },
    /// Register `dst` := bool: attribute [`Entry::Attr`] `attr` is present.
    LoadExists { dst: u8, attr: u16 },
    /// Register `dst` := length of register `src` (DSL.md §3.4 `#`).
    Len { dst: u8, src: u8 },
    /// Register `dst` := lower case of register `src`.
    Lower { dst: u8, src: u8 },
    /// Register `dst` := upper case of register `src`.
    Upper { dst: u8, src: u8 },
    /// Register `dst` := bool result of the positive string test [`Entry::RegStr`] `test`.
    StrCall { dst: u8, test: u16 },
    /// [`Entry::RegCmp`] `test`.
    Cmp { test: u16, on: bool, target: Addr },
    /// [`Entry::RegIn`] `test`.
    In { test: u16, on: bool, target: Addr },
    /// [`Entry::RegStr`] `test`.
    Str { test: u16, on: bool, target: Addr },
    /// Truthiness of register `reg`.
    Truthy { reg: u8, on: bool, target: Addr },

    /// Push the current span onto a witness list.
    Push { list: WitnessList },
}

const _: () = assert!(std::mem::size_of::<Instr>() <= 8);

impl Instr {
    /// Applies `f` to every code address the instruction holds.
    pub(crate) fn map_addrs(&mut self, mut f: impl FnMut(Addr) -> Addr) {
        use Instr::*;
        match self {
            Jump { target }
            | Exit { target, .. }
            | NameIs { target, .. }
            | Find { target, .. }
            | HasName { target, .. }
            | AttrCmp { target, .. }
            | IntrCmp { target, .. }
            | AttrTruthy { target, .. }
            | AttrExists { target, .. }
            | AttrIn { target, .. }
            | AttrStr { target, .. }
            | IntrStr { target, .. }
            | Related { target, .. }
            | TraceField { target, .. }
            | CountCmp { target, .. }
            | Cmp { target, .. }
            | In { target, .. }
            | Str { target, .. }
            | Truthy { target, .. } => *target = f(*target),
            ForName { empty, .. }
            | ForAll { empty, .. }
            | ForChildren { empty, .. }
            | ForParent { empty, .. }
            | ForDescendants { empty, .. }
            | ForAncestors { empty, .. } => *empty = f(*empty),
            Next { body, .. } | NextAncestor { body, .. } => *body = f(*body),
            Skip { done, .. } | SkipNot { done, .. } => *done = f(*done),
            Halt { .. }
            | Trap
            | CountName { .. }
            | CountFind { .. }
            | CountAll { .. }
            | Zero { .. }
            | Incr { .. }
            | LoadConst { .. }
            | LoadAttr { .. }
            | LoadIntr { .. }
            | LoadExists { .. }
            | Len { .. }
            | Lower { .. }
            | Upper { .. }
            | StrCall { .. }
            | Push { .. } => {}
        }
    }
}

/// An attribute reference: key and where it is looked up (DSL.md §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttrRef {
    pub key: KeyId,
    pub scope: AttrScope,
}

/// `attr op value`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrCmp {
    pub attr: AttrRef,
    pub op: CmpOp,
    pub value: Literal,
}

/// `intr op value`.
#[derive(Clone, Debug, PartialEq)]
pub struct IntrCmp {
    pub intr: Intrinsic,
    pub op: CmpOp,
    pub value: Literal,
}

/// `attr [not] in [list]` (DSL.md §7.4, §7.5).
#[derive(Clone, Debug, PartialEq)]
pub struct AttrIn {
    pub attr: AttrRef,
    pub list: Box<[Literal]>,
    pub negated: bool,
}

/// `attr [not] op arg`; for `matches` the pattern is the regex of `op` and `arg` is unused
/// (DSL.md §3.4, §7.4, §7.8).
#[derive(Clone, Debug, PartialEq)]
pub struct AttrStr {
    pub attr: AttrRef,
    pub op: StrOp,
    pub arg: Literal,
    pub negated: bool,
}

/// `intr [not] op arg` (see [`AttrStr`]).
#[derive(Clone, Debug, PartialEq)]
pub struct IntrStr {
    pub intr: Intrinsic,
    pub op: StrOp,
    pub arg: Literal,
    pub negated: bool,
}

/// A selection searched natively: the spans named `name` (every span when `None`), kept when
/// each fused test (pool index of an [`Entry::AttrCmp`], [`Entry::IntrCmp`], [`Entry::AttrIn`],
/// [`Entry::AttrStr`] or [`Entry::IntrStr`]) gives the paired bool.
#[derive(Clone, Debug, PartialEq)]
pub struct Find {
    pub name: Option<NameId>,
    pub tests: Box<[(u16, bool)]>,
}

/// A relation check between the span loop `slot` started from (the *origin*) and the
/// current span, with an optional inclusive bound on the gap in nanoseconds (DSL.md §3.5,
/// §7.14). For `has_child`/`has_parent`/`has_ancestor` the loop source already guarantees
/// the relation and only `within` is checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelTest {
    pub relation: Relation,
    pub slot: u8,
    pub within: Option<i64>,
}

/// `trace.<field> op value`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldCmp {
    pub field: TraceField,
    pub op: CmpOp,
    pub value: Literal,
}

/// Right side of a count comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountOperand {
    Int(i64),
    /// Counter register.
    Reg(u8),
}

/// `counter reg op rhs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountCmp {
    pub reg: u8,
    pub op: CmpOp,
    pub rhs: CountOperand,
}

/// `register a op register b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegCmp {
    pub a: u8,
    pub op: CmpOp,
    pub b: u8,
}

/// `register reg [not] in [list]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RegIn {
    pub reg: u8,
    pub list: Box<[Literal]>,
    pub negated: bool,
}

/// `register a [not] op register b` (for `matches`, `b` is unused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegStr {
    pub op: StrOp,
    pub a: u8,
    pub b: u8,
    pub negated: bool,
}

/// One entry of the operand pool. Each instruction documents which kind its `u16` operand
/// names; a mismatch is a malformed program.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Name(NameId),
    Attr(AttrRef),
    Const(Literal),
    AttrCmp(AttrCmp),
    IntrCmp(IntrCmp),
    AttrIn(AttrIn),
    AttrStr(AttrStr),
    IntrStr(IntrStr),
    Find(Find),
    Rel(RelTest),
    Field(FieldCmp),
    CountCmp(CountCmp),
    RegCmp(RegCmp),
    RegIn(RegIn),
    RegStr(RegStr),
}
