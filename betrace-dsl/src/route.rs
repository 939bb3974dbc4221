//! The decision plan: which way the VM reaches a program's verdict, chosen at lowering.
//!
//! In: a finished [`Program`]. Out: its [`Route`] ([`Program::route`], printed as the
//! `; route:` line of [`Program::disassemble`]) and, for tests and tools, every route that
//! decides it ([`Route::all_for`]). Every route gives the full machine's verdict and charges
//! its steps (DSL.md §3.7); a screen that rejects a trace answers "conforms" and charges none.
//!
//! [`Presence`] is the trace's name-presence bitset, the one layout the screen, the
//! [`Window`] and the prepared trace in `betrace-core` share.

use crate::bytecode::{Instr, Program, TRACE_LEVEL_COUNTERS};
use crate::gate::{Gate, Window};
use crate::ir::{NameId, Symbols};

/// Which span names a trace has: bit `id % 64` of word `id / 64` is set when some span is
/// named `id`. Words past the end read as 0, so an id from other symbols is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    words: Vec<u64>,
}

impl Presence {
    /// The word and bit of name `id`.
    #[inline(always)]
    pub const fn bit(id: NameId) -> (u32, u64) {
        (id.0 / 64, 1 << (id.0 % 64))
    }

    /// An empty set able to hold ids `0..names`.
    pub fn new(names: usize) -> Presence {
        Presence {
            words: vec![0; names.div_ceil(64)],
        }
    }

    /// Marks `id` present; ignored for an id not below the `names` given to [`Presence::new`].
    #[inline]
    pub fn insert(&mut self, id: NameId) {
        let (word, bit) = Presence::bit(id);
        if let Some(w) = self.words.get_mut(word as usize) {
            *w |= bit;
        }
    }

    /// Whether `id` is present.
    #[inline]
    pub fn contains(&self, id: NameId) -> bool {
        let (word, bit) = Presence::bit(id);
        self.word(word) & bit != 0
    }

    /// Word `i` of the bitset; 0 past the end.
    #[inline(always)]
    pub fn word(&self, i: u32) -> u64 {
        self.words.get(i as usize).copied().unwrap_or(0)
    }
}

/// The required-names test run before the decision code ([`Program::required_names`]): a
/// trace without any of those names conforms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    /// No screen: the rule can fire without any particular name.
    Open,
    /// The names all lie in word `word` of the [`Presence`] bitset: the trace passes when that
    /// word has a bit of `mask`.
    Word { word: u32, mask: u64 },
    /// The names span several words: the trace passes when it has one of them.
    Names(Box<[NameId]>),
}

impl Screen {
    /// The screen of `required_names`.
    pub fn of(required_names: Option<&[NameId]>) -> Screen {
        let Some(names) = required_names else {
            return Screen::Open;
        };
        let Some(&first) = names.first() else {
            return Screen::Open;
        };
        let word = Presence::bit(first).0;
        if names.iter().all(|&n| Presence::bit(n).0 == word) {
            let mask = names.iter().fold(0, |m, &n| m | Presence::bit(n).1);
            Screen::Word { word, mask }
        } else {
            Screen::Names(names.into())
        }
    }

    /// Whether a trace with these names gets past the screen.
    #[inline(always)]
    pub fn passes(&self, presence: &Presence) -> bool {
        match self {
            Screen::Open => true,
            Screen::Word { word, mask } => presence.word(*word) & mask != 0,
            Screen::Names(names) => names.iter().any(|&n| presence.contains(n)),
        }
    }
}

/// How the VM reaches a program's verdict, cheapest first. Gate and window programs that run
/// out of budget, and every violation, go on to the full machine (for the witness code).
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "the tables are held inline so that deciding follows no pointer"
)]
pub enum Route {
    /// The verdict is read from a table indexed by a few bits of one presence word
    /// (decisions on span names alone).
    Window(Window),
    /// The verdict is read from a table over a few constant-time facts (names and counts).
    Gate(Gate),
    /// The screen, then the decision code in the trace-level loop: no loop slots, value
    /// registers or current span ([`Program::route`] documents which instructions qualify).
    TraceLevel(Screen),
    /// The screen, then the full machine.
    Machine(Screen),
}

impl Route {
    /// Every route that decides `p`, cheapest first; the last is always [`Route::Machine`].
    /// A trap program has only the unscreened machine.
    pub fn all_for(p: &Program) -> Vec<Route> {
        let mut out = Vec::new();
        let screen = if p.is_trap() {
            Screen::Open
        } else {
            Screen::of(p.required_names())
        };
        if !p.is_trap() {
            if let Some(gate) = Gate::build(p) {
                if let Some(window) = Window::of_gate(&gate) {
                    out.push(Route::Window(window));
                }
                out.push(Route::Gate(gate));
            }
            if trace_level(p) {
                out.push(Route::TraceLevel(screen.clone()));
            }
        }
        out.push(Route::Machine(screen));
        out
    }

    /// The route as the listing shows it; names resolved through `symbols`.
    pub fn describe(&self, symbols: &Symbols) -> String {
        let name = |n: NameId| match symbols.span_names().get(n.0 as usize) {
            Some(s) => format!("{s:?}"),
            None => format!("name#{}", n.0),
        };
        let screen = |s: &Screen| match s {
            Screen::Open => String::new(),
            Screen::Word { word, mask } => {
                let names: Vec<String> = (0..64)
                    .filter(|b| mask >> b & 1 == 1)
                    .map(|b| name(NameId(word * 64 + b)))
                    .collect();
                format!(
                    "screen {} (word {word} mask {mask:#x}), then ",
                    names.join(" ")
                )
            }
            Screen::Names(names) => {
                let names: Vec<String> = names.iter().map(|&n| name(n)).collect();
                format!("screen {} (several words), then ", names.join(" "))
            }
        };
        match self {
            Route::Window(w) => format!("window on presence word {} from bit {}", w.word, w.shift),
            Route::Gate(g) => format!("gate over {} atoms", g.atoms().len()),
            Route::TraceLevel(s) => format!("{}trace-level loop", screen(s)),
            Route::Machine(s) => format!("{}full machine", screen(s)),
        }
    }
}

/// True when `p`'s decision code only asks questions about the trace as a whole — span names,
/// counts, fused searches ([`Instr::Find`], [`Instr::CountFind`]) and `trace.` fields — with
/// at most [`TRACE_LEVEL_COUNTERS`] counters.
fn trace_level(p: &Program) -> bool {
    let decision = p.code().get(..p.witness_entry() as usize).unwrap_or(&[]);
    p.count_regs() <= TRACE_LEVEL_COUNTERS
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
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_words_and_bits() {
        let mut p = Presence::new(130);
        for id in [0, 63, 64, 129, 500] {
            p.insert(NameId(id));
        }
        assert!(p.contains(NameId(0)) && p.contains(NameId(63)) && p.contains(NameId(129)));
        assert!(!p.contains(NameId(1)) && !p.contains(NameId(500)));
        assert_eq!(p.word(0), 1 | 1 << 63);
        assert_eq!(p.word(1), 1);
        assert_eq!(p.word(2), 1 << 1);
        assert_eq!(p.word(3), 0);
    }

    #[test]
    fn screens() {
        let mut p = Presence::new(200);
        p.insert(NameId(70));
        assert_eq!(Screen::of(None), Screen::Open);
        let word = Screen::of(Some(&[NameId(65), NameId(70)]));
        assert_eq!(
            word,
            Screen::Word {
                word: 1,
                mask: 1 << 1 | 1 << 6
            }
        );
        assert!(word.passes(&p));
        assert!(!Screen::of(Some(&[NameId(65)])).passes(&p));
        let names = Screen::of(Some(&[NameId(3), NameId(70)]));
        assert!(matches!(names, Screen::Names(_)));
        assert!(names.passes(&p));
        assert!(!Screen::of(Some(&[NameId(3), NameId(150)])).passes(&p));
    }

    fn route_line(source: &str, pad: u32) -> String {
        let mut symbols = Symbols::new();
        for i in 0..pad {
            symbols.intern_span_name(&format!("pad{i}"));
        }
        let rule = crate::check_source(source, &mut symbols).unwrap();
        let listing = crate::lower::lower(rule).disassemble(&symbols);
        listing
            .lines()
            .find_map(|l| l.strip_prefix("; route: "))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn the_listing_names_the_route() {
        let rule = "when { a or b } always { c.where(x > 1) }";
        assert_eq!(
            route_line(rule, 0),
            r#"screen "a" "b" (word 0 mask 0x3), then trace-level loop"#
        );
        assert_eq!(
            route_line(rule, 63),
            r#"screen "a" "b" (several words), then trace-level loop"#
        );
        assert_eq!(
            route_line("when { a } always { b }", 60),
            "window on presence word 0 from bit 60"
        );
        assert_eq!(
            route_line("when { a } always { b }", 63),
            "gate over 2 atoms"
        );
        assert_eq!(
            route_line("span.name == \"a\" and x > 1", 0),
            "full machine"
        );
    }
}
