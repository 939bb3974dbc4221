//! The checked intermediate representation.
//!
//! In: nothing (produced by [`crate::check`]). Out: a fully resolved, statically typed rule that
//! both the bytecode lowering ([`crate::lower`]) and the reference evaluator consume. Every name
//! is interned in a [`Symbols`] table, every regular expression is compiled, every literal is
//! typed, and the two surface forms (DSL.md §2) are distinguished.
//!
//! Two levels, as in DSL.md §2: [`Cond`] is true or false for a whole trace; [`Pred`] is
//! evaluated against one *current span*.

use ahash::AHashMap;
use regex::Regex;

/// Interned span name (index into [`Symbols::span_names`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(pub u32);

/// Interned attribute key (index into [`Symbols::attribute_keys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

/// Index into [`Rule::regexes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegexId(pub u32);

/// Span names and attribute keys referenced by compiled rules, interned to small integers so
/// evaluation compares integers rather than strings (ENGINE.md §2). One table is shared by all
/// rules of a rule set; ids are stable once given out.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    span_names: Vec<Box<str>>,
    span_name_ids: AHashMap<Box<str>, NameId>,
    attribute_keys: Vec<Box<str>>,
    attribute_key_ids: AHashMap<Box<str>, KeyId>,
}

impl Symbols {
    /// An empty table.
    pub fn new() -> Symbols {
        Symbols::default()
    }

    /// The id of span name `name`, adding it when new.
    pub fn intern_span_name(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.span_name_ids.get(name) {
            return id;
        }
        let id = NameId(self.span_names.len() as u32);
        self.span_names.push(name.into());
        self.span_name_ids.insert(name.into(), id);
        id
    }

    /// The id of attribute key `key`, adding it when new.
    pub fn intern_attribute_key(&mut self, key: &str) -> KeyId {
        if let Some(&id) = self.attribute_key_ids.get(key) {
            return id;
        }
        let id = KeyId(self.attribute_keys.len() as u32);
        self.attribute_keys.push(key.into());
        self.attribute_key_ids.insert(key.into(), id);
        id
    }

    /// The id of span name `name` if any rule refers to it.
    pub fn span_name_id(&self, name: &str) -> Option<NameId> {
        self.span_name_ids.get(name).copied()
    }

    /// The id of attribute key `key` if any rule refers to it.
    pub fn attribute_key_id(&self, key: &str) -> Option<KeyId> {
        self.attribute_key_ids.get(key).copied()
    }

    /// All interned span names; `span_names()[id.0]` is the name of `id`.
    pub fn span_names(&self) -> &[Box<str>] {
        &self.span_names
    }

    /// All interned attribute keys; `attribute_keys()[id.0]` is the key of `id`.
    pub fn attribute_keys(&self) -> &[Box<str>] {
        &self.attribute_keys
    }
}

/// Which surface form a rule was written in (DSL.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormKind {
    Block,
    Expression,
}

/// A checked rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub body: Body,
    /// Regular expressions of `matches` / `=~`, compiled once (DSL.md §3.4).
    pub regexes: Vec<Regex>,
}

/// The rule body (DSL.md §3.1).
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one body per rule; boxing the clauses buys nothing"
)]
pub enum Body {
    /// Block form: violation iff `when ∧ (¬always ∨ never)`; absent `when` is true, absent
    /// `always` is true, absent `never` is false. At least one of `always`/`never` is present.
    Block {
        when: Option<Cond>,
        always: Option<Cond>,
        never: Option<Cond>,
    },
    /// Expression form whose predicate reads the current span outside any `trace.*(...)`
    /// call: violation iff some span satisfies it. Trigger spans are every span satisfying it.
    SpanScoped(Pred),
    /// Expression form that does not read the current span: violation iff the predicate is
    /// true for the trace (evaluated with no current span; it contains only [`Pred::Trace`]
    /// terms, literals and connectives). Trigger spans are the witnesses of its positive
    /// `trace.has` terms (DSL.md §7.1).
    TraceScoped(Pred),
}

impl Body {
    /// The surface form of the rule.
    pub fn form(&self) -> FormKind {
        match self {
            Body::Block { .. } => FormKind::Block,
            Body::SpanScoped(_) | Body::TraceScoped(_) => FormKind::Expression,
        }
    }
}

/// Trace-level condition: true or false for the whole trace (DSL.md §2 `cond`).
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// A selection used as a term: true iff it selects at least one span (§3.2). Witnesses:
    /// the selected spans. Direct comparisons (§3.3) are lowered to this.
    Exists(Selection),
    /// `count(lhs) op rhs` (§3.2; a span id seen twice counts once, which the trace's
    /// deduplication guarantees). Witnesses when true: the spans of every selection in it.
    Count {
        lhs: Selection,
        op: CmpOp,
        rhs: CountRhs,
    },
    /// `trace.…` terms.
    Trace(TraceTerm),
}

/// Right side of a `count(...)` comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum CountRhs {
    /// A number. A fractional bound was turned by the checker into the integer comparison
    /// that holds for the same counts (`> 2.5` is `> 2`), so only integers remain.
    Int(i64),
    Count(Selection),
}

/// Terms about the whole trace, usable in block clauses and at the top of the expression form.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceTerm {
    /// `trace.has(p)`: some span satisfies `p`. Witnesses: the spans that satisfy it.
    Has(Pred),
    /// `trace.all(p)`: every span satisfies `p` (true on an empty trace). No witnesses.
    All(Pred),
    /// `trace.count(p) op n`, `n` made an integer as for [`CountRhs::Int`]. No witnesses.
    Count { pred: Pred, op: CmpOp, value: i64 },
    /// `trace.<field> op literal`, compared with the rules of §3.4. No witnesses.
    Field {
        field: TraceField,
        op: CmpOp,
        value: Literal,
    },
}

/// `trace.` fields (DSL.md §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceField {
    /// string, lowercase hex.
    Id,
    /// duration: max end − min start, ns.
    Duration,
    /// int: distinct span ids.
    SpanCount,
    /// string: name of the earliest root by (start, id), `""` without a root (§7.15).
    RootName,
    /// string: service of that root, `""` without a root.
    RootService,
}

/// A span selection: a span name (or `*`) plus filters that must all hold for the same span
/// (chained `where`s and relation-test methods, §3.2 and §3.5).
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub target: Target,
    pub filters: Vec<Pred>,
}

/// Which spans a selection starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `*`: every span.
    Any,
    /// Spans whose name equals the interned name exactly.
    Name(NameId),
}

/// Span-level predicate, evaluated against one current span (DSL.md §2 `predicate`).
#[derive(Clone, Debug, PartialEq)]
pub enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    /// `lhs op rhs` with the comparison rules of §3.4 and §7.
    Compare {
        lhs: Operand,
        op: CmpOp,
        rhs: Operand,
    },
    /// `operand [not] in [list]` — defined through `==` (§7.5). `negated` is the `not in`
    /// comparison of §7.4: false whenever the operand is missing.
    In {
        operand: Operand,
        list: Vec<Literal>,
        negated: bool,
    },
    /// `operand [not] contains|starts_with|ends_with|matches arg` (§3.4, §7.4, §7.8).
    /// `negated` is false whenever the positive test cannot apply.
    StrTest {
        op: StrOp,
        operand: Operand,
        arg: Operand,
        negated: bool,
    },
    /// Bare operand: truthiness (§3.4).
    Truthy(Operand),
    /// Relation test about the current span and the rest of its trace (§3.5, §7.14).
    Relation {
        relation: Relation,
        target: Selection,
        /// Inclusive bound on the gap, nanoseconds.
        within: Option<i64>,
    },
    /// A trace-level term; only at the top of the expression form (elsewhere E309).
    Trace(Box<TraceTerm>),
}

/// Operands of span-level predicates.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Literal(Literal),
    /// An attribute of the current span.
    Attribute {
        key: KeyId,
        scope: AttrScope,
    },
    Intrinsic(Intrinsic),
    /// `#x` / `x:len()`: length of a string in Unicode scalar values or of an array; missing
    /// for any other value (§7.8).
    Len(Box<Operand>),
    /// `x:lower()`; missing on a non-string (§7.8).
    Lower(Box<Operand>),
    /// `x:upper()`; missing on a non-string (§7.8).
    Upper(Box<Operand>),
    /// `exists(attribute)`: bool, true iff present.
    Exists {
        key: KeyId,
        scope: AttrScope,
    },
    /// `x:contains(y)`, `x:starts_with(y)`, `x:ends_with(y)`, `x:matches(re)` as an operand:
    /// the bool result of the positive test (false when it cannot apply).
    StrCall {
        op: StrOp,
        operand: Box<Operand>,
        arg: Box<Operand>,
    },
}

/// Where an attribute is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrScope {
    /// Bare name: the span's attributes, then its resource's (§3.4).
    SpanThenResource,
    /// `span.attributes["k"]`.
    Span,
    /// `resource.attributes["k"]`.
    Resource,
}

/// `span.` intrinsics (DSL.md §3.4 table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intrinsic {
    /// string
    Name,
    /// string: resource `service.name`, `""` if absent
    Service,
    /// enum status
    Status,
    /// string
    StatusMessage,
    /// enum kind
    Kind,
    /// duration: end − start, ns
    Duration,
    /// int: Unix ns
    Start,
    /// int: Unix ns
    End,
    /// string: lowercase hex
    Id,
    /// string: lowercase hex, `""` for a root
    ParentId,
    /// string: lowercase hex
    TraceId,
    /// bool: no parent id
    IsRoot,
}

/// Typed literals. Enum members carry the OTLP number of the member.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    /// `null`: `x == null` iff `x` is missing (§3.4).
    Null,
    /// Status member, OTLP `Status.StatusCode` number: 0 unset, 1 ok, 2 error.
    Status(u8),
    /// Kind member, OTLP `Span.SpanKind` number: 0 unspecified … 5 consumer.
    Kind(u8),
    /// A list used as a value (`x == [1, 2]`) or as an item of an `in` list (DSL.md §2
    /// `value`). At run time it is an array; an array pair is one of §3.4's "any other type
    /// pair": `==` false, `!=` true, ordering false.
    List(Box<[Literal]>),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator as written (`==`).
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether `ord` (left compared with right) satisfies the operator.
    #[inline]
    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        // Bit 0: holds for Less, bit 1: for Equal, bit 2: for Greater.
        let accepts: u8 = match self {
            CmpOp::Eq => 0b010,
            CmpOp::Ne => 0b101,
            CmpOp::Lt => 0b001,
            CmpOp::Le => 0b011,
            CmpOp::Gt => 0b100,
            CmpOp::Ge => 0b110,
        };
        accepts >> (ord as i8 + 1) & 1 == 1
    }
}

/// String tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrOp {
    /// On a string: substring; on an array: membership with `==` (§3.4, §7.8).
    Contains,
    StartsWith,
    EndsWith,
    /// Unanchored regex search with a pattern compiled at compile time.
    Matches(RegexId),
}

/// Relations between spans (DSL.md §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    HasChild,
    HasParent,
    HasDescendant,
    HasAncestor,
    FollowedBy,
    PrecededBy,
}

impl Relation {
    /// The relation's name as written in rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::HasChild => "has_child",
            Relation::HasParent => "has_parent",
            Relation::HasDescendant => "has_descendant",
            Relation::HasAncestor => "has_ancestor",
            Relation::FollowedBy => "followed_by",
            Relation::PrecededBy => "preceded_by",
        }
    }
}
