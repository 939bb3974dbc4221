//! The bytecode a checked rule is lowered to, and its disassembler.
//!
//! In: nothing (built by [`crate::lower`]). Out: [`Program`] — compact [`Instr`]uctions, their
//! operand pool (names, attribute references, constants, comparison descriptors), the
//! compiled regular expressions, and a span table parallel to the code — executed by the VM in
//! `betrace-core`. [`Program::disassemble`] renders a readable listing.
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

use std::fmt::Write as _;

use regex::Regex;

use crate::ir::{
    AttrScope, CmpOp, FormKind, Intrinsic, KeyId, Literal, NameId, Relation, StrOp, Symbols,
    TraceField,
};

/// A code address (index into [`Program::code`]).
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
/// pool ([`Program::pool`]); `slot` is a loop slot, `reg`/`dst`/`src` a register, `target`/`empty`/`body` a
/// code address. Test instructions jump to `target` when their result equals `on`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Instr {
    /// Jump unconditionally.
    Jump { target: Addr },
    /// Stop; the decision code's verdict (ignored at the end of the witness code).
    Halt { verdict: Verdict },
    /// Stop with an error: the rule was too large to encode (see [`Program::is_trap`]).
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

/// A lowered rule, ready for the VM.
#[derive(Clone, Debug)]
pub struct Program {
    pub(crate) form: FormKind,
    pub(crate) code: Vec<Instr>,
    pub(crate) spans: Vec<(u32, u32)>,
    pub(crate) witness_entry: Addr,
    pub(crate) loop_slots: u32,
    pub(crate) value_regs: u32,
    pub(crate) count_regs: u32,
    pub(crate) pool: Vec<Entry>,
    pub(crate) regexes: Vec<Regex>,
    pub(crate) required_names: Option<Vec<NameId>>,
    pub(crate) trace_level: bool,
    pub(crate) gate: Option<crate::gate::Gate>,
    pub(crate) window: Option<crate::gate::Window>,
    pub(crate) screen_word: (u32, u64),
}

/// Most counters a trace-level decision may use ([`Program::trace_level_decision`]).
pub const TRACE_LEVEL_COUNTERS: usize = 8;

impl Program {
    /// An empty program of the given form (the lowering fills it).
    pub(crate) fn new(form: FormKind) -> Program {
        Program {
            form,
            code: Vec::new(),
            spans: Vec::new(),
            witness_entry: 0,
            loop_slots: 0,
            value_regs: 0,
            count_regs: 0,
            pool: Vec::new(),
            regexes: Vec::new(),
            required_names: None,
            trace_level: false,
            gate: None,
            window: None,
            screen_word: (0, 0),
        }
    }

    /// The surface form of the rule.
    pub fn form(&self) -> FormKind {
        self.form
    }
    /// The instructions; decision code starts at 0.
    pub fn code(&self) -> &[Instr] {
        &self.code
    }
    /// Byte range in the rule source of each instruction, parallel to [`Program::code`], for
    /// runtime errors. `(0, 0)` where the checked IR carries no position.
    pub fn source_spans(&self) -> &[(u32, u32)] {
        &self.spans
    }
    /// Address of the witness code.
    pub fn witness_entry(&self) -> Addr {
        self.witness_entry
    }
    /// Number of loop slots (deepest loop nesting).
    pub fn loop_slots(&self) -> usize {
        self.loop_slots as usize
    }
    /// Number of value registers.
    pub fn value_regs(&self) -> usize {
        self.value_regs as usize
    }
    /// Number of counter registers.
    pub fn count_regs(&self) -> usize {
        self.count_regs as usize
    }
    /// The operand pool: names, attribute references, constants and the descriptors of
    /// the comparison instructions, indexed by the instructions' `u16` operands.
    pub fn pool(&self) -> &[Entry] {
        &self.pool
    }
    /// Compiled regular expressions, indexed by [`crate::ir::RegexId`].
    pub fn regexes(&self) -> &[Regex] {
        &self.regexes
    }
    /// Span names of which at least one must occur in a trace for the rule to fire; `None`
    /// when the rule can fire without any particular name (for example when `always` can fail
    /// on any trace). A trace without any of these names conforms without running the
    /// program; rule-set indexes (ENGINE.md §3) can use the same set.
    pub fn required_names(&self) -> Option<&[NameId]> {
        self.required_names.as_deref()
    }
    /// True when the decision code only asks questions about the trace as a whole — span
    /// names, counts, fused searches ([`Instr::Find`], [`Instr::CountFind`]) and `trace.`
    /// fields — and so needs no loop slot, value register or current span, and at most
    /// [`TRACE_LEVEL_COUNTERS`] counters. The VM decides such programs in a smaller loop.
    pub fn trace_level_decision(&self) -> bool {
        self.trace_level
    }

    /// The decision as a table over a few constant-time facts, when it is one (see
    /// [`crate::gate`]).
    #[inline(always)]
    pub fn gate(&self) -> Option<&crate::gate::Gate> {
        self.gate.as_ref()
    }

    /// The gate as a table over a few bits of the presence bitset, when its atoms allow one
    /// (see [`crate::gate::Window`]).
    #[inline(always)]
    pub fn window(&self) -> Option<&crate::gate::Window> {
        self.window.as_ref()
    }

    /// For a program without a gate, [`Program::required_names`] as `(word, mask)` when all
    /// their ids lie in word `word` of a presence bitset (bit `id % 64` of word `id / 64` set
    /// when some span is named `id`): a trace whose word has none of the bits of `mask`
    /// conforms. `mask` is 0 when there is no such word.
    #[inline(always)]
    pub fn screen_word(&self) -> (u32, u64) {
        self.screen_word
    }

    /// Computes [`Program::trace_level_decision`], [`Program::gate`], [`Program::window`] and
    /// [`Program::screen_word`] from the finished code.
    pub(crate) fn classify_decision(&mut self) {
        self.gate = crate::gate::Gate::build(self);
        let names = self.required_names.as_deref().unwrap_or(&[]);
        self.window = self.gate.as_ref().and_then(crate::gate::Window::of_gate);
        if self.gate.is_none()
            && let Some(word) = names.first().map(|n| n.0 / 64)
            && names.iter().all(|n| n.0 / 64 == word)
        {
            self.screen_word = (word, names.iter().fold(0, |m, n| m | 1 << (n.0 % 64)));
        }
        let decision = self.code.get(..self.witness_entry as usize).unwrap_or(&[]);
        self.trace_level = self.count_regs as usize <= TRACE_LEVEL_COUNTERS
            && decision.iter().all(|i| {
                matches!(
                    i,
                    Instr::Jump { .. }
                        | Instr::Halt { .. }
                        | Instr::HasName { .. }
                        | Instr::Find { .. }
                        | Instr::CountName { .. }
                        | Instr::CountAll { .. }
                        | Instr::CountFind { .. }
                        | Instr::CountCmp { .. }
                        | Instr::TraceField { .. }
                )
            });
    }

    /// True when the rule could not be encoded (the operand pool outgrew its 16-bit index, or
    /// loops nested deeper than 255) and the program consists of a single [`Instr::Trap`].
    /// Rules accepted by the checker (≤ 64 KiB, nesting ≤ 64, DSL.md §3.7) never trap.
    pub fn is_trap(&self) -> bool {
        matches!(self.code.first(), Some(Instr::Trap))
    }

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

macro_rules! pool_getters {
    ($($(#[$doc:meta])* $fn:ident => $variant:ident: $ty:ty;)*) => {
        impl Program {
            $(
                $(#[$doc])*
                #[inline]
                pub fn $fn(&self, i: u16) -> Option<&$ty> {
                    match self.pool.get(usize::from(i)) {
                        Some(Entry::$variant(x)) => Some(x),
                        _ => None,
                    }
                }
            )*
        }
    };
}

pool_getters! {
    /// Pool entry `i` as a span name.
    name_at => Name: NameId;
    /// Pool entry `i` as an attribute reference.
    attr_at => Attr: AttrRef;
    /// Pool entry `i` as a constant.
    const_at => Const: Literal;
    /// Pool entry `i` as an attribute-vs-constant comparison.
    attr_cmp_at => AttrCmp: AttrCmp;
    /// Pool entry `i` as an intrinsic-vs-constant comparison.
    intr_cmp_at => IntrCmp: IntrCmp;
    /// Pool entry `i` as an attribute `in` test.
    attr_in_at => AttrIn: AttrIn;
    /// Pool entry `i` as an attribute string test.
    attr_str_at => AttrStr: AttrStr;
    /// Pool entry `i` as an intrinsic string test.
    intr_str_at => IntrStr: IntrStr;
    /// Pool entry `i` as a native selection search.
    find_at => Find: Find;
    /// Pool entry `i` as a relation check.
    rel_at => Rel: RelTest;
    /// Pool entry `i` as a `trace.` field comparison.
    field_at => Field: FieldCmp;
    /// Pool entry `i` as a count comparison.
    count_cmp_at => CountCmp: CountCmp;
    /// Pool entry `i` as a register comparison.
    reg_cmp_at => RegCmp: RegCmp;
    /// Pool entry `i` as a register `in` test.
    reg_in_at => RegIn: RegIn;
    /// Pool entry `i` as a register string test.
    reg_str_at => RegStr: RegStr;
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
