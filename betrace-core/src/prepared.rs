//! The view of one trace that the VM evaluates a rule set against.
//!
//! In: a [`Trace`] and the [`Symbols`] of a rule set. Out: [`PreparedTrace`] — per span its
//! interned [`NameId`], an index from name to spans (in trace order), and only the attributes
//! whose keys some rule of the set references, as `(KeyId, &AttrValue)` pairs looked up by
//! integer, for span and resource attributes separately. Built once per (trace, rule set) and
//! shared by every rule of the set, so the VM never compares a string to find a span or an
//! attribute. Hex renderings of ids and the subtree numbering used by `has_descendant` are
//! computed on first use.

use std::sync::OnceLock;

use betrace_dsl::ir::{AttrScope, KeyId, NameId, Symbols};
use betrace_dsl::route::Presence;

use crate::span::{AttrKey, AttrValue, Resource, Span};
use crate::trace::{SpanIndex, Trace};

/// "No span" / "no name" marker in index vectors.
const NONE: u32 = u32::MAX;

/// A trace prepared for evaluation against one rule set. Span indices are those of the
/// underlying [`Trace`] (trace order: start time, then span id, DSL.md §7.3).
#[derive(Debug)]
pub struct PreparedTrace<'t> {
    trace: &'t Trace,
    /// Interned name of each span, `NONE` when no rule of the set names it.
    name_of: Vec<u32>,
    /// `name_spans[name_start[id]..name_start[id + 1]]`: spans named `id`, in trace order.
    name_start: Vec<u32>,
    name_spans: Vec<SpanIndex>,
    /// Bit `id % 64` of word `id / 64`: some span is named `id`.
    present: Presence,
    /// `0..len`, the source of loops over every span.
    all: Vec<SpanIndex>,
    /// `parent_of[i]`: the parent of span `i` in the trace, `NONE` when it has none.
    parent_of: Vec<SpanIndex>,
    /// `attrs[attr_start[i]..attr_start[i + 1]]`: referenced span attributes of span `i`, in
    /// input order.
    attr_start: Vec<u32>,
    attrs: Vec<(KeyId, &'t AttrValue)>,
    /// `res_attrs[res_range[i].0..res_range[i].1]`: referenced resource attributes of span
    /// `i`, in input order; spans sharing a resource share the range.
    res_range: Vec<(u32, u32)>,
    res_attrs: Vec<(KeyId, &'t AttrValue)>,
    /// `span.service` of each span (resource `service.name`, `""` when absent).
    services: Vec<&'t str>,
    /// The earliest root by (start, id) (DSL.md §7.15).
    root: Option<SpanIndex>,
    /// `max end − min start`, ns.
    duration: i64,
    hex: OnceLock<Hex>,
    tree: OnceLock<Option<Tree>>,
}

/// Lowercase hex of every id, 16 characters per span id, 32 per trace id.
#[derive(Debug)]
struct Hex {
    span_ids: String,
    parent_ids: String,
    trace_ids: String,
    trace_id: String,
}

/// Pre-order numbering of an acyclic parent forest: the descendants of `x` are exactly the
/// spans at `order[pre[x] + 1 ..= last[x]]`.
#[derive(Debug)]
struct Tree {
    pre: Vec<u32>,
    last: Vec<u32>,
    order: Vec<SpanIndex>,
}

/// Resolves attribute keys to the rule set's [`KeyId`]s. Keys are `Arc<str>`s that input
/// decoders share between the spans of a batch, so the answer is remembered per key pointer
/// (a direct-mapped cache; the trace keeps every key alive while the view is built, so a
/// pointer cannot stand for two keys) and most lookups hash no string.
struct KeyResolver<'s> {
    symbols: &'s Symbols,
    /// `(pointer, id)`; pointer 0 is an empty slot, id `NONE` a key no rule references.
    slots: [(usize, u32); KEY_SLOTS],
}

const KEY_SLOTS: usize = 64;

impl<'s> KeyResolver<'s> {
    fn new(symbols: &'s Symbols) -> KeyResolver<'s> {
        KeyResolver {
            symbols,
            slots: [(0, NONE); KEY_SLOTS],
        }
    }

    fn resolve(&mut self, key: &AttrKey) -> Option<KeyId> {
        let ptr = std::sync::Arc::as_ptr(key).cast::<u8>() as usize;
        let slot = (ptr >> 4) % KEY_SLOTS;
        let id = match self.slots.get(slot) {
            Some(&(p, id)) if p == ptr => id,
            _ => {
                let id = self.symbols.attribute_key_id(key).map_or(NONE, |k| k.0);
                if let Some(s) = self.slots.get_mut(slot) {
                    *s = (ptr, id);
                }
                id
            }
        };
        (id != NONE).then_some(KeyId(id))
    }
}

/// Appends the attributes whose keys the rule set references, in input order (so a lookup
/// finds the first occurrence, as [`Span::attribute`] does).
fn referenced<'t>(
    attributes: &'t [(AttrKey, AttrValue)],
    keys: &mut KeyResolver<'_>,
    out: &mut Vec<(KeyId, &'t AttrValue)>,
) {
    for (k, v) in attributes {
        if let Some(id) = keys.resolve(k) {
            out.push((id, v));
        }
    }
}

fn find<'t>(entries: &[(KeyId, &'t AttrValue)], key: KeyId) -> Option<&'t AttrValue> {
    entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

impl<'t> PreparedTrace<'t> {
    /// Prepares `trace` for the rules whose names and keys are interned in `symbols`. Cost:
    /// one hash lookup per span name and per attribute key, O(spans + names) otherwise.
    pub fn new(trace: &'t Trace, symbols: &Symbols) -> PreparedTrace<'t> {
        let spans = trace.spans();
        let n = spans.len();
        let names = symbols.span_names().len();

        let mut name_of = Vec::with_capacity(n);
        let mut name_start = vec![0u32; names + 1];
        let mut present = Presence::new(names);
        for s in spans {
            let id = symbols.span_name_id(&s.name).map_or(NONE, |id| id.0);
            if let Some(c) = name_start.get_mut(id as usize) {
                *c += 1;
            }
            present.insert(NameId(id));
            name_of.push(id);
        }
        let mut sum = 0u32;
        for c in &mut name_start {
            let here = *c;
            *c = sum;
            sum += here;
        }
        let mut fill = name_start.clone();
        let mut name_spans = vec![0; sum as usize];
        for (i, &id) in name_of.iter().enumerate() {
            if let Some(pos) = fill.get_mut(id as usize) {
                if let Some(slot) = name_spans.get_mut(*pos as usize) {
                    *slot = i as SpanIndex;
                }
                *pos += 1;
            }
        }

        let keyed = !symbols.attribute_keys().is_empty();
        let mut keys = KeyResolver::new(symbols);
        let mut attr_start = Vec::with_capacity(n + 1);
        let mut attrs = Vec::new();
        let mut res_range = Vec::with_capacity(n);
        let mut res_attrs = Vec::new();
        let mut services = Vec::with_capacity(n);
        let mut last_res: Option<(&Resource, (u32, u32), &str)> = None;
        for s in spans {
            attr_start.push(attrs.len() as u32);
            if keyed {
                referenced(&s.attributes, &mut keys, &mut attrs);
            }
            let res: &Resource = &s.resource;
            let (range, service) = match last_res {
                Some((r, range, service)) if std::ptr::eq(r, res) => (range, service),
                _ => {
                    let start = res_attrs.len() as u32;
                    if keyed {
                        referenced(&res.attributes, &mut keys, &mut res_attrs);
                    }
                    let range = (start, res_attrs.len() as u32);
                    let service = res.service_name();
                    last_res = Some((res, range, service));
                    (range, service)
                }
            };
            res_range.push(range);
            services.push(service);
        }
        attr_start.push(attrs.len() as u32);

        let parent_of = (0..n as SpanIndex)
            .map(|i| trace.parent(i).unwrap_or(NONE))
            .collect();
        let root = spans
            .iter()
            .position(|s| s.parent_span_id.is_none())
            .map(|i| i as SpanIndex);

        PreparedTrace {
            trace,
            name_of,
            present,
            name_start,
            name_spans,
            all: (0..n as SpanIndex).collect(),
            parent_of,
            attr_start,
            attrs,
            res_range,
            res_attrs,
            services,
            root,
            duration: trace.duration_nanos(),
            hex: OnceLock::new(),
            tree: OnceLock::new(),
        }
    }

    /// The underlying trace.
    pub fn trace(&self) -> &'t Trace {
        self.trace
    }

    /// Number of spans.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// True when the trace has no span.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The span at `i`, `None` out of range.
    pub fn span(&self, i: SpanIndex) -> Option<&'t Span> {
        self.trace.spans().get(i as usize)
    }

    /// Every span index, in trace order.
    pub fn all(&self) -> &[SpanIndex] {
        &self.all
    }

    /// The interned name of span `i`, `None` when no rule of the set names it.
    pub fn name_id(&self, i: SpanIndex) -> Option<NameId> {
        match self.name_of.get(i as usize) {
            Some(&id) if id != NONE => Some(NameId(id)),
            _ => None,
        }
    }

    /// The spans named `name`, in trace order (empty for a name no span has, or an id not
    /// from this rule set's symbols).
    pub fn spans_named(&self, name: NameId) -> &[SpanIndex] {
        let i = name.0 as usize;
        match (self.name_start.get(i), self.name_start.get(i + 1)) {
            (Some(&a), Some(&b)) => self.name_spans.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Whether some span is named `name` (false for an id not from this rule set's symbols).
    #[inline]
    pub fn has_named(&self, name: NameId) -> bool {
        self.present.contains(name)
    }

    /// Which span names the trace has, as the presence bitset the VM's screen and windows
    /// read.
    #[inline(always)]
    pub fn presence(&self) -> &Presence {
        &self.present
    }

    /// The number of spans named `name` (0 for an id not from this rule set's symbols).
    #[inline]
    pub fn count_named(&self, name: NameId) -> usize {
        let i = name.0 as usize;
        match (self.name_start.get(i), self.name_start.get(i + 1)) {
            (Some(&a), Some(&b)) => b.saturating_sub(a) as usize,
            _ => 0,
        }
    }

    /// Attribute `key` of span `i` in `scope` (DSL.md §3.4: a bare name looks in the span's
    /// attributes, then its resource's). `None` when absent or when `key` is not referenced by
    /// the rule set.
    #[inline(always)]
    pub fn attribute(&self, i: SpanIndex, key: KeyId, scope: AttrScope) -> Option<&'t AttrValue> {
        match scope {
            AttrScope::Span => self.span_attribute(i, key),
            AttrScope::Resource => self.resource_attribute(i, key),
            AttrScope::SpanThenResource => self
                .span_attribute(i, key)
                .or_else(|| self.resource_attribute(i, key)),
        }
    }

    #[inline]
    fn span_attribute(&self, i: SpanIndex, key: KeyId) -> Option<&'t AttrValue> {
        let i = i as usize;
        let (a, b) = (*self.attr_start.get(i)?, *self.attr_start.get(i + 1)?);
        find(self.attrs.get(a as usize..b as usize)?, key)
    }

    fn resource_attribute(&self, i: SpanIndex, key: KeyId) -> Option<&'t AttrValue> {
        let &(a, b) = self.res_range.get(i as usize)?;
        find(self.res_attrs.get(a as usize..b as usize)?, key)
    }

    /// `span.service` of span `i`: resource `service.name`, `""` when absent.
    pub fn service(&self, i: SpanIndex) -> &'t str {
        self.services.get(i as usize).copied().unwrap_or("")
    }

    /// The parent of span `i` within the trace.
    pub fn parent(&self, i: SpanIndex) -> Option<SpanIndex> {
        match self.parent_of.get(i as usize) {
            Some(&p) if p != NONE => Some(p),
            _ => None,
        }
    }

    /// The parent of span `i` as a zero- or one-element slice.
    pub fn parent_slice(&self, i: SpanIndex) -> &[SpanIndex] {
        let i = i as usize;
        match self.parent_of.get(i) {
            Some(&p) if p != NONE => self.parent_of.get(i..=i).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The direct children of span `i`, in trace order.
    pub fn children(&self, i: SpanIndex) -> &'t [SpanIndex] {
        if (i as usize) < self.trace.len() {
            self.trace.children(i)
        } else {
            &[]
        }
    }

    /// Candidates for the descendants of span `i`: exactly its descendants when the trace's
    /// parent links have no cycle, else every span (callers then test each with
    /// [`PreparedTrace::is_ancestor`]).
    pub fn descendant_candidates(&self, i: SpanIndex) -> &[SpanIndex] {
        match self.tree() {
            Some(t) => {
                let (Some(&pre), Some(&last)) = (t.pre.get(i as usize), t.last.get(i as usize))
                else {
                    return &[];
                };
                t.order.get(pre as usize + 1..=last as usize).unwrap_or(&[])
            }
            None => &self.all,
        }
    }

    /// Whether `a` is a proper ancestor of `x` by parent links (DSL.md §7.14: a span is never
    /// its own ancestor, also in a cycle), and the number of parent links followed to decide
    /// it (0 when the subtree numbering answered).
    pub fn is_ancestor(&self, a: SpanIndex, x: SpanIndex) -> (bool, u32) {
        if a == x {
            return (false, 0);
        }
        if let Some(t) = self.tree() {
            return match (
                t.pre.get(a as usize),
                t.last.get(a as usize),
                t.pre.get(x as usize),
            ) {
                (Some(&pa), Some(&la), Some(&px)) => (pa < px && px <= la, 0),
                _ => (false, 0),
            };
        }
        let mut steps = 0u32;
        let mut cur = x;
        while let Some(p) = self.parent(cur) {
            steps += 1;
            if p == a {
                return (true, steps);
            }
            if p == x || steps as usize > self.len() {
                break;
            }
            cur = p;
        }
        (false, steps)
    }

    fn tree(&self) -> Option<&Tree> {
        self.tree.get_or_init(|| self.build_tree()).as_ref()
    }

    /// Numbers the parent forest in pre-order; `None` when a parent-link cycle leaves spans
    /// unreachable from every root.
    fn build_tree(&self) -> Option<Tree> {
        let n = self.len();
        let mut pre = vec![NONE; n];
        let mut last = vec![NONE; n];
        let mut order = Vec::with_capacity(n);
        let mut stack: Vec<(SpanIndex, usize)> = Vec::new();
        for r in 0..n as SpanIndex {
            if self.parent(r).is_some() {
                continue;
            }
            stack.push((r, 0));
            *pre.get_mut(r as usize)? = order.len() as u32;
            order.push(r);
            while let Some(&mut (x, ref mut next)) = stack.last_mut() {
                let children = self.children(x);
                if let Some(&c) = children.get(*next) {
                    *next += 1;
                    *pre.get_mut(c as usize)? = order.len() as u32;
                    order.push(c);
                    stack.push((c, 0));
                } else {
                    *last.get_mut(x as usize)? = order.len() as u32 - 1;
                    stack.pop();
                }
            }
        }
        if order.len() != n {
            return None;
        }
        Some(Tree { pre, last, order })
    }

    fn hex(&self) -> &Hex {
        self.hex.get_or_init(|| {
            let spans = self.trace.spans();
            let mut span_ids = String::with_capacity(16 * spans.len());
            let mut parent_ids = String::with_capacity(16 * spans.len());
            let mut trace_ids = String::with_capacity(32 * spans.len());
            for s in spans {
                span_ids.push_str(&s.span_id.to_hex());
                parent_ids.push_str(&s.parent_span_id.unwrap_or_default().to_hex());
                trace_ids.push_str(&s.trace_id.to_hex());
            }
            Hex {
                span_ids,
                parent_ids,
                trace_ids,
                trace_id: self.trace.trace_id().to_hex(),
            }
        })
    }

    /// `span.id` of span `i`: 16 lowercase hex digits.
    pub fn span_id_hex(&self, i: SpanIndex) -> &str {
        let i = i as usize;
        self.hex().span_ids.get(16 * i..16 * i + 16).unwrap_or("")
    }

    /// `span.parent_id` of span `i`: 16 lowercase hex digits, `""` for a root.
    pub fn parent_id_hex(&self, i: SpanIndex) -> &str {
        match self.span(i as SpanIndex) {
            Some(s) if s.parent_span_id.is_some() => {
                let i = i as usize;
                self.hex().parent_ids.get(16 * i..16 * i + 16).unwrap_or("")
            }
            _ => "",
        }
    }

    /// `span.trace_id` of span `i`: 32 lowercase hex digits.
    pub fn trace_id_hex_of(&self, i: SpanIndex) -> &str {
        let i = i as usize;
        self.hex().trace_ids.get(32 * i..32 * i + 32).unwrap_or("")
    }

    /// `trace.id`: the trace id of the first span, 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> &str {
        &self.hex().trace_id
    }

    /// `trace.duration`: max end − min start, ns (negative when every span ends before the
    /// earliest start).
    pub fn duration_nanos(&self) -> i64 {
        self.duration
    }

    /// The earliest root span by (start, id), DSL.md §7.15.
    pub fn root(&self) -> Option<SpanIndex> {
        self.root
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::span::{SpanId, TraceId};

    fn span(id: u8, parent: Option<u8>, name: &str, start: u64) -> Span {
        Span {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([0, 0, 0, 0, 0, 0, 0, id]),
            parent_span_id: parent.map(|p| SpanId([0, 0, 0, 0, 0, 0, 0, p])),
            name: name.into(),
            kind: Default::default(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 10,
            status_code: Default::default(),
            status_message: String::new(),
            attributes: vec![
                ("b".into(), AttrValue::Int(2)),
                ("a".into(), AttrValue::Int(1)),
                ("a".into(), AttrValue::Int(99)),
                ("unused".into(), AttrValue::Int(0)),
            ],
            resource: Arc::new(Resource {
                attributes: vec![
                    ("service.name".into(), AttrValue::Str("svc".into())),
                    ("a".into(), AttrValue::Int(3)),
                    ("r".into(), AttrValue::Int(4)),
                ],
            }),
            scope_name: "".into(),
        }
    }

    #[test]
    fn names_attributes_and_tree() {
        let mut sy = Symbols::new();
        let x = sy.intern_span_name("x");
        let y = sy.intern_span_name("y");
        let ghost = sy.intern_span_name("ghost");
        let a = sy.intern_attribute_key("a");
        let r = sy.intern_attribute_key("r");
        let b = sy.intern_attribute_key("b");
        let trace = Trace::new(vec![
            span(1, None, "x", 10),
            span(2, Some(1), "y", 20),
            span(3, Some(2), "x", 30),
            span(4, None, "z", 5),
        ]);
        let p = PreparedTrace::new(&trace, &sy);
        // Trace order: 4 (start 5), 1, 2, 3.
        assert_eq!(p.spans_named(x), &[1, 3]);
        assert_eq!(p.spans_named(y), &[2]);
        assert_eq!(p.spans_named(ghost), &[] as &[SpanIndex]);
        assert_eq!(p.spans_named(NameId(99)), &[] as &[SpanIndex]);
        assert_eq!(p.name_id(0), None);
        assert_eq!(p.name_id(1), Some(x));
        assert_eq!(
            p.attribute(1, a, AttrScope::SpanThenResource),
            Some(&AttrValue::Int(1))
        );
        assert_eq!(
            p.attribute(1, a, AttrScope::Resource),
            Some(&AttrValue::Int(3))
        );
        assert_eq!(p.attribute(1, r, AttrScope::Span), None);
        assert_eq!(
            p.attribute(1, r, AttrScope::SpanThenResource),
            Some(&AttrValue::Int(4))
        );
        assert_eq!(p.attribute(1, b, AttrScope::Span), Some(&AttrValue::Int(2)));
        assert_eq!(p.attribute(9, b, AttrScope::Span), None);
        assert_eq!(p.service(2), "svc");
        assert_eq!(p.root(), Some(0));
        assert!(p.is_ancestor(1, 3).0);
        assert!(!p.is_ancestor(3, 1).0);
        assert!(!p.is_ancestor(1, 1).0);
        assert_eq!(p.descendant_candidates(1), &[2, 3]);
        assert_eq!(p.span_id_hex(0), "0000000000000004");
        assert_eq!(p.parent_id_hex(2), "0000000000000001");
        assert_eq!(p.parent_id_hex(1), "");
        assert_eq!(p.trace_id_hex(), "07".repeat(16));
    }

    #[test]
    fn shared_keys_resolve_once_per_pointer() {
        let mut sy = Symbols::new();
        let a = sy.intern_attribute_key("a");
        let shared_a: AttrKey = "a".into();
        let shared_x: AttrKey = "x".into();
        let spans: Vec<Span> = (1..=3)
            .map(|i| {
                let mut s = span(i, None, "n", u64::from(i));
                s.attributes = vec![
                    (shared_x.clone(), AttrValue::Int(0)),
                    (shared_a.clone(), AttrValue::Int(i64::from(i))),
                ];
                s
            })
            .collect();
        let trace = Trace::new(spans);
        let p = PreparedTrace::new(&trace, &sy);
        for i in 0..3 {
            assert_eq!(
                p.attribute(i, a, AttrScope::Span),
                Some(&AttrValue::Int(i64::from(i) + 1))
            );
        }
    }

    #[test]
    fn cycles_terminate() {
        let sy = Symbols::new();
        // 1 → 2 → 3 → 2 (cycle 2↔3), 1 has parent 3.
        let trace = Trace::new(vec![
            span(1, Some(3), "a", 1),
            span(2, Some(3), "b", 2),
            span(3, Some(2), "c", 3),
        ]);
        let p = PreparedTrace::new(&trace, &sy);
        assert_eq!(p.descendant_candidates(0).len(), 3);
        assert!(p.is_ancestor(1, 0).0);
        assert!(p.is_ancestor(2, 0).0);
        assert!(p.is_ancestor(2, 1).0);
        assert!(p.is_ancestor(1, 2).0);
        assert!(!p.is_ancestor(1, 1).0);
        assert!(!p.is_ancestor(0, 1).0);
        assert_eq!(p.root(), None);
    }
}
