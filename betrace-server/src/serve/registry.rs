//! The server's rules (SERVER.md §1 "Rules API"): create, replace, patch, enable, delete,
//! import, each checked and compiled before it is stored.
//!
//! In: rules as JSON objects from the API (or a rules file at start, read-only). Out: the
//! stored rules, and the compiled [`RuleSet`] in force, swapped atomically (`arc-swap`) after
//! every change so that traces evaluated afterwards use it and buffered traces are kept.
//! Every change is logged as an audit event (target `betrace::audit`: action, who, old and
//! new version).
//!
//! Compiling: [`RuleRegistry::open`] compiles every rule; after that a change compiles only
//! the rule it changes, once, under the lock of the stored rules: the new set is
//! [`RuleSet::with_rule`] (or [`RuleSet::without_rule`] for a delete) of the set in force,
//! which the lock keeps equal to the stored rules. The rule is compiled before the checks
//! against the stored rules (duplicate id, `rules.max_rules`, read-only), so a request whose
//! expression does not compile gets its diagnostics first, as when a body was compiled while
//! it was read. `betrace_rule_compilations_total` counts the rules compiled: the stored rules
//! at start, then one per create, replace, patch, enable, disable or imported rule (also when
//! such a check then refuses the change; a rule that does not compile is not counted).
//!
//! Rule order in the set: at start, by id (the order of the stored rules); a rule created
//! afterwards goes last, a replaced rule keeps its place, until the next start. The order
//! decides only the order of one trace's violations in an evaluation (and so of their
//! storage sequence numbers); listings, exports and the `/metrics` series are by id or
//! sequence regardless, and no API promises an order among the violations of one trace.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use betrace_core::engine::{EngineOptions, RuleDiagnostics, RuleSet};
use betrace_core::rules::{Rule, is_slug};
use betrace_dsl::DiagnosticJson;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use super::metrics::Metrics;
use super::storage::{Store, StoreError, StoredRule};

/// Longest rule name, bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest rule description, bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;
/// Most tags on one rule.
pub const MAX_TAGS: usize = 64;
/// Longest tag, bytes.
pub const MAX_TAG_BYTES: usize = 128;

/// Keys of the API's rule shape that are computed, ignored when sent back.
const COMPUTED_KEYS: [&str; 4] = ["createdAt", "updatedAt", "readOnly", "ruleVersion"];

/// Why a rule change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleOpError {
    /// The body is not a valid rule (field problems).
    #[error("{0}")]
    BadRequest(String),
    /// The expression does not compile.
    #[error("rule `{id}`: the expression does not compile")]
    Invalid {
        id: String,
        diagnostics: Vec<DiagnosticJson>,
    },
    #[error("no rule with id `{0}`")]
    NotFound(String),
    #[error("a rule with id `{0}` already exists")]
    Conflict(String),
    #[error("at most {0} rules can be stored (rules.max_rules)")]
    TooMany(usize),
    #[error("rule `{0}` comes from the --rules file and cannot be changed over the API")]
    ReadOnly(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
struct Entry {
    stored: StoredRule,
    read_only: bool,
}

/// The rules of the server and the compiled set in force.
#[derive(Debug)]
pub struct RuleRegistry {
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Shared with the pipeline's [`betrace_core::stream::StreamEngine`].
    current: Arc<ArcSwap<RuleSet>>,
    store: Arc<dyn Store>,
    engine: EngineOptions,
    max_rules: usize,
    max_expression_length: usize,
    metrics: Arc<Metrics>,
}

/// `now` as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The API shape of a rule.
pub fn rule_json(stored: &StoredRule, read_only: bool) -> Value {
    let r = &stored.rule;
    json!({
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "expression": r.expression,
        "severity": r.severity.as_str(),
        "tags": r.tags,
        "enabled": r.enabled,
        "ruleVersion": betrace_core::violation::rule_version(&r.expression),
        "createdAt": stored.created_at,
        "updatedAt": stored.updated_at,
        "readOnly": read_only,
    })
}

fn diagnostics_of(failures: &[RuleDiagnostics]) -> Vec<DiagnosticJson> {
    failures
        .iter()
        .flat_map(|f| {
            f.diagnostics
                .iter()
                .map(|d| d.to_json(&f.expression).with_rule_id(&f.rule_id))
        })
        .collect()
}

impl RuleRegistry {
    /// Loads the stored rules and the read-only `file_rules`, and compiles them. A stored rule
    /// with the id of a file rule is shadowed by it. Errors: a rule that does not compile
    /// (rendered diagnostics), or storage.
    pub fn open(
        store: Arc<dyn Store>,
        file_rules: Vec<Rule>,
        engine: EngineOptions,
        max_rules: usize,
        max_expression_length: usize,
        metrics: Arc<Metrics>,
    ) -> Result<RuleRegistry, String> {
        let mut entries = BTreeMap::new();
        for stored in store.load_rules().map_err(|e| e.to_string())? {
            entries.insert(
                stored.rule.id.clone(),
                Entry {
                    stored,
                    read_only: false,
                },
            );
        }
        let now = now_rfc3339();
        for rule in file_rules {
            if entries.contains_key(&rule.id) {
                tracing::warn!(rule_id = %rule.id, "a stored rule has the id of a --rules file rule; the file's rule is used");
            }
            entries.insert(
                rule.id.clone(),
                Entry {
                    stored: StoredRule {
                        rule,
                        created_at: now.clone(),
                        updated_at: now.clone(),
                    },
                    read_only: true,
                },
            );
        }
        let set = RuleSet::compile(
            entries.values().map(|e| e.stored.rule.clone()).collect(),
            engine.clone(),
        )
        .map_err(|fails| {
            fails
                .iter()
                .map(RuleDiagnostics::render)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        metrics.rule_compilations.inc_by(set.len() as u64);
        metrics.rules_active.set(enabled_count(&entries) as i64);
        Ok(RuleRegistry {
            entries: Mutex::new(entries),
            current: Arc::new(ArcSwap::from_pointee(set)),
            store,
            engine,
            max_rules,
            max_expression_length,
            metrics,
        })
    }

    /// The compiled rule set in force.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    /// Where the set in force lives; every change of rules stores the new set there.
    pub fn rule_cell(&self) -> Arc<ArcSwap<RuleSet>> {
        Arc::clone(&self.current)
    }

    /// The engine options (signing key, budget) rules are compiled with.
    pub fn engine(&self) -> &EngineOptions {
        &self.engine
    }

    /// Longest expression accepted, bytes.
    pub fn max_expression_length(&self) -> usize {
        self.max_expression_length
    }

    /// Every rule's API shape, by id.
    pub fn list(&self) -> Vec<Value> {
        self.entries
            .lock()
            .values()
            .map(|e| rule_json(&e.stored, e.read_only))
            .collect()
    }

    /// Every rule, by id.
    pub fn rules(&self) -> Vec<Rule> {
        self.entries
            .lock()
            .values()
            .map(|e| e.stored.rule.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Value> {
        self.entries
            .lock()
            .get(id)
            .map(|e| rule_json(&e.stored, e.read_only))
    }

    /// Reads a rule from an API body, applying the id default (the name when it is a slug,
    /// else a UUID), and checks the sizes of its fields and the expression's length (E401).
    /// The expression is compiled by the change that stores the rule, not here.
    pub fn parse(&self, body: &Value, id: Option<&str>) -> Result<Rule, RuleOpError> {
        let Value::Object(map) = body else {
            return Err(RuleOpError::BadRequest(
                "expected a JSON object with `expression`".to_owned(),
            ));
        };
        let mut map: Map<String, Value> = map
            .iter()
            .filter(|(k, _)| !COMPUTED_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(id) = id {
            match map.get("id") {
                Some(Value::String(given)) if given != id => {
                    return Err(RuleOpError::BadRequest(format!(
                        "field `id`: `{given}` differs from the id in the path `{id}`"
                    )));
                }
                _ => {
                    map.insert("id".into(), Value::String(id.to_owned()));
                }
            }
        } else if map.get("id").is_none_or(Value::is_null) {
            let name_slug = map
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| is_slug(n))
                .map(str::to_owned);
            let id = name_slug.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            map.insert("id".into(), Value::String(id));
        }
        let rule = Rule::from_json_value(&Value::Object(map))
            .map_err(|e| RuleOpError::BadRequest(e.to_string()))?;
        self.check_fields(&rule)?;
        Ok(rule)
    }

    /// The E401 diagnostic (DSL.md §3.7) of rule text longer than
    /// `rules.max_expression_length` (or the language's 64 KiB), else `None`.
    pub fn length_diagnostic(&self, expression: &str) -> Option<DiagnosticJson> {
        let len = expression.len();
        if len > betrace_dsl::parser::MAX_RULE_BYTES {
            return betrace_dsl::validate(expression)
                .first()
                .map(|d| d.to_json(expression));
        }
        (len > self.max_expression_length).then(|| DiagnosticJson {
            code: betrace_dsl::Code::E401.as_str().to_owned(),
            message: format!(
                "the rule is {len} bytes long, more than rules.max_expression_length ({} bytes)",
                self.max_expression_length
            ),
            line: 1,
            column: 1,
            start: 0,
            end: 0,
            help: Some("split it into several rules".to_owned()),
            rule_id: None,
            labels: Vec::new(),
        })
    }

    /// Checks the sizes of the text fields (name, description, tags; 400 naming the field and
    /// the limit) and the expression length (E401).
    fn check_fields(&self, rule: &Rule) -> Result<(), RuleOpError> {
        let over = |field: &str, len: usize, max: usize| {
            RuleOpError::BadRequest(format!(
                "field `{field}`: {len} bytes, longer than the limit of {max} bytes"
            ))
        };
        if rule.name.len() > MAX_NAME_BYTES {
            return Err(over("name", rule.name.len(), MAX_NAME_BYTES));
        }
        if rule.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(over(
                "description",
                rule.description.len(),
                MAX_DESCRIPTION_BYTES,
            ));
        }
        if rule.tags.len() > MAX_TAGS {
            return Err(RuleOpError::BadRequest(format!(
                "field `tags`: {} tags, more than the limit of {MAX_TAGS}",
                rule.tags.len()
            )));
        }
        if let Some((i, t)) = rule
            .tags
            .iter()
            .enumerate()
            .find(|(_, t)| t.len() > MAX_TAG_BYTES)
        {
            return Err(over(&format!("tags[{i}]"), t.len(), MAX_TAG_BYTES));
        }
        match self.length_diagnostic(&rule.expression) {
            Some(d) => Err(RuleOpError::Invalid {
                id: rule.id.clone(),
                diagnostics: vec![d.with_rule_id(&rule.id)],
            }),
            None => Ok(()),
        }
    }

    /// The set in force with `rule` compiled into it ([`RuleSet::with_rule`]: only `rule` is
    /// compiled). Call with the lock of `entries` held, so that the set in force is the set of
    /// the stored rules. Errors: the rule's diagnostics, as [`RuleOpError::Invalid`].
    fn compile_change(&self, rule: &Rule) -> Result<RuleSet, RuleOpError> {
        let set = self
            .current()
            .with_rule(rule.clone())
            .map_err(|f| RuleOpError::Invalid {
                id: rule.id.clone(),
                diagnostics: diagnostics_of(std::slice::from_ref(&f)),
            })?;
        self.metrics.rule_compilations.inc();
        Ok(set)
    }

    /// `POST /v1/rules`.
    pub fn create(&self, rule: Rule, who: &str) -> Result<Value, RuleOpError> {
        let mut entries = self.entries.lock();
        // Compiled first: an expression that does not compile is reported before a duplicate
        // id or a full registry, as when the body was checked before the change.
        let set = self.compile_change(&rule)?;
        if entries.contains_key(&rule.id) {
            return Err(RuleOpError::Conflict(rule.id));
        }
        if entries.len() >= self.max_rules {
            return Err(RuleOpError::TooMany(self.max_rules));
        }
        let now = now_rfc3339();
        let stored = StoredRule {
            rule,
            created_at: now.clone(),
            updated_at: now,
        };
        self.commit(&mut entries, set, stored, None, "rule.create", who)
    }

    /// `PUT /v1/rules/{id}`: full replacement, `createdAt` kept.
    pub fn replace(&self, rule: Rule, who: &str) -> Result<Value, RuleOpError> {
        let mut entries = self.entries.lock();
        // Compiled before the rule is looked up, as in `create`.
        let set = self.compile_change(&rule)?;
        let old = self.writable(&entries, &rule.id)?;
        let stored = StoredRule {
            rule,
            created_at: old.stored.created_at.clone(),
            updated_at: now_rfc3339(),
        };
        self.commit(&mut entries, set, stored, Some(old), "rule.update", who)
    }

    /// `PATCH /v1/rules/{id}`: the given keys over the stored rule.
    pub fn patch(&self, id: &str, body: &Value, who: &str) -> Result<Value, RuleOpError> {
        let Value::Object(changes) = body else {
            return Err(RuleOpError::BadRequest(
                "expected a JSON object of fields to change".to_owned(),
            ));
        };
        let mut entries = self.entries.lock();
        let old = self.writable(&entries, id)?;
        let mut merged = match serde_json::to_value(&old.stored.rule) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in changes {
            if k == "condition" {
                merged.remove("expression");
            }
            merged.insert(k.clone(), v.clone());
        }
        let rule = self.parse(&Value::Object(merged), Some(id))?;
        let set = self.compile_change(&rule)?;
        let stored = StoredRule {
            rule,
            created_at: old.stored.created_at.clone(),
            updated_at: now_rfc3339(),
        };
        self.commit(&mut entries, set, stored, Some(old), "rule.update", who)
    }

    /// `POST /v1/rules/{id}/enable` and `/disable`.
    pub fn set_enabled(&self, id: &str, enabled: bool, who: &str) -> Result<Value, RuleOpError> {
        self.patch(id, &json!({ "enabled": enabled }), who)
    }

    /// `DELETE /v1/rules/{id}`.
    pub fn delete(&self, id: &str, who: &str) -> Result<(), RuleOpError> {
        let mut entries = self.entries.lock();
        let old = self.writable(&entries, id)?;
        self.store.delete_rule(id)?;
        entries.remove(id);
        self.swap(&entries, self.current().without_rule(id));
        tracing::info!(
            target: "betrace::audit",
            action = "rule.delete",
            rule_id = id,
            who,
            old = %rule_json(&old.stored, false),
            "rule deleted"
        );
        Ok(())
    }

    /// `POST /v1/rules/import`: creates or replaces each rule (compiling it once); one result
    /// per rule.
    pub fn import(&self, rules: Vec<Rule>, who: &str) -> Vec<Value> {
        let mut results = Vec::with_capacity(rules.len());
        for rule in rules {
            let id = rule.id.clone();
            let outcome = self.check_fields(&rule).and_then(|()| {
                let exists = self.entries.lock().contains_key(&id);
                if exists {
                    self.replace(rule, who).map(|_| "updated")
                } else {
                    self.create(rule, who).map(|_| "created")
                }
            });
            results.push(match outcome {
                Ok(status) => json!({"id": id, "status": status}),
                Err(e) => {
                    let mut r = json!({"id": id, "status": "error", "message": e.to_string()});
                    if let RuleOpError::Invalid { diagnostics, .. } = &e {
                        r["diagnostics"] = json!(diagnostics);
                    }
                    r
                }
            });
        }
        results
    }

    fn writable(&self, entries: &BTreeMap<String, Entry>, id: &str) -> Result<Entry, RuleOpError> {
        match entries.get(id) {
            None => Err(RuleOpError::NotFound(id.to_owned())),
            Some(e) if e.read_only => Err(RuleOpError::ReadOnly(id.to_owned())),
            Some(e) => Ok(e.clone()),
        }
    }

    /// Stores `stored` and puts `set` (the set in force with that rule compiled in) in force.
    fn commit(
        &self,
        entries: &mut BTreeMap<String, Entry>,
        set: RuleSet,
        stored: StoredRule,
        old: Option<Entry>,
        action: &str,
        who: &str,
    ) -> Result<Value, RuleOpError> {
        self.store.put_rule(&stored)?;
        let id = stored.rule.id.clone();
        let new = rule_json(&stored, false);
        let old = old.map_or(Value::Null, |o| rule_json(&o.stored, false));
        entries.insert(
            id.clone(),
            Entry {
                stored,
                read_only: false,
            },
        );
        self.swap(entries, set);
        tracing::info!(
            target: "betrace::audit",
            action,
            rule_id = %id,
            who,
            old = %old,
            new = %new,
            "rule changed"
        );
        Ok(new)
    }

    /// Puts `set`, the set of the rules now in `entries`, in force.
    fn swap(&self, entries: &BTreeMap<String, Entry>, set: RuleSet) {
        self.current.store(Arc::new(set));
        self.metrics.rules_active.set(enabled_count(entries) as i64);
    }
}

fn enabled_count(entries: &BTreeMap<String, Entry>) -> usize {
    entries.values().filter(|e| e.stored.rule.enabled).count()
}
