//! The lowered rule: [`Program`], its side tables and the decision classification.

use regex::Regex;

use super::instr::{
    Addr, AttrCmp, AttrIn, AttrRef, AttrStr, CountCmp, Entry, FieldCmp, Find, Instr, IntrCmp,
    IntrStr, RegCmp, RegIn, RegStr, RelTest,
};
use crate::ir::{FormKind, Literal, NameId};
use crate::route::{Route, Screen};

/// A lowered rule, ready for the VM.
#[derive(Clone, Debug)]
pub struct Program {
    pub(crate) form: FormKind,
    pub(crate) code: Vec<Instr>,
    pub(crate) witness_entry: Addr,
    pub(crate) loop_slots: u32,
    pub(crate) value_regs: u32,
    pub(crate) count_regs: u32,
    pub(crate) pool: Vec<Entry>,
    pub(crate) regexes: Vec<Regex>,
    pub(crate) required_names: Option<Vec<NameId>>,
    pub(crate) route: Route,
    pub(crate) screen_word: (u32, u64),
}

/// Most counters a trace-level decision may use ([`Route::TraceLevel`]).
pub const TRACE_LEVEL_COUNTERS: usize = 8;
impl Program {
    /// An empty program of the given form (the lowering fills it).
    pub(crate) fn new(form: FormKind) -> Program {
        Program {
            form,
            code: Vec::new(),
            witness_entry: 0,
            loop_slots: 0,
            value_regs: 0,
            count_regs: 0,
            pool: Vec::new(),
            regexes: Vec::new(),
            required_names: None,
            route: Route::Machine(Screen::Open),
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
    /// How the VM reaches the verdict, chosen at lowering: the cheapest of
    /// [`Route::all_for`]. A program is [`Route::TraceLevel`] when its decision code only
    /// asks questions about the trace as a whole — span names, counts, fused searches
    /// ([`Instr::Find`], [`Instr::CountFind`]) and `trace.` fields — with at most
    /// [`TRACE_LEVEL_COUNTERS`] counters.
    #[inline(always)]
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The `(word, mask)` of the route's [`Screen::Word`], held inline beside the route;
    /// `(0, 0)` for other routes. It is the one test the VM makes before matching on the
    /// route, so that a trace the screen rejects costs a load and a test.
    #[inline(always)]
    pub fn screen_word(&self) -> (u32, u64) {
        self.screen_word
    }

    /// Chooses [`Program::route`] from the finished code.
    pub(crate) fn classify_decision(&mut self) {
        if let Some(route) = Route::all_for(self).into_iter().next() {
            self.route = route;
        }
        self.screen_word = match &self.route {
            Route::TraceLevel(Screen::Word { word, mask })
            | Route::Machine(Screen::Word { word, mask }) => (*word, *mask),
            _ => (0, 0),
        };
    }

    /// True when the rule could not be encoded (the operand pool outgrew its 16-bit index, or
    /// loops nested deeper than 255) and the program consists of a single [`Instr::Trap`].
    /// Rules accepted by the checker (≤ 64 KiB, nesting ≤ 64, DSL.md §3.7) never trap.
    pub fn is_trap(&self) -> bool {
        matches!(self.code.first(), Some(Instr::Trap))
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
