//! Storage of rules, violations and the export cursor (SERVER.md §1 "Storage").
//!
//! In: rules as created over the API, violations as produced by evaluation. Out: the same,
//! read back with filters and cursors; violations in insertion order for the exporter.
//!
//! Two backends behind [`Store`]: [`SqliteStore`] (rusqlite, bundled SQLite, WAL mode, schema
//! migrations numbered by `PRAGMA user_version`; a database newer than this binary is
//! refused) and [`MemoryStore`]. Every violation gets a sequence number (`seq`) in insertion
//! order: listings go newest first by `seq`, cursors are `seq`s, and the exporter reads
//! `seq > cursor` in order. A violation is kept as the exact JSON it was signed as, so its
//! signature can be checked later against those bytes. The span summaries of a violation's
//! trace ([`TraceSpans`], for the UI's waterfall) are kept beside it, one record per trace id,
//! outside the signed JSON; they are deleted once no violation of their trace is left.
//!
//! Re-evaluation of a trace (ENGINE.md §5, late spans) can replace a violation: a record whose
//! `supersedes` names an earlier violation marks that one `superseded`, or `retracted` when the
//! record is a retraction (`retraction: true`). The earlier record's JSON is never changed;
//! its [`ViolationState`] is a column beside it. Listings show `live` violations unless asked
//! for every state; the exporter reads every record in order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use betrace_core::rules::Rule;
use betrace_core::{Severity, TraceId, Violation};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::summary::TraceSpans;

/// A storage failure (I/O, a corrupt database, a refused schema version).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Schema(String),
    #[error("cannot create the data directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A rule as kept by the server: the rule plus its timestamps (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRule {
    pub rule: Rule,
    pub created_at: String,
    pub updated_at: String,
}

/// One stored violation: its sequence number, its JSON object as signed and the columns kept
/// beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredViolation {
    pub seq: i64,
    pub json: serde_json::Value,
    /// `createdAt`, Unix nanoseconds (a whole millisecond).
    pub created_ns: i64,
    pub state: ViolationState,
    /// The record that superseded or retracted this one.
    pub superseded_by: Option<String>,
}

/// Where a stored record stands after re-evaluations of its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationState {
    /// The current answer.
    Live,
    /// Replaced by a later violation of the same rule and trace.
    Superseded,
    /// Withdrawn: the whole trace no longer violates the rule.
    Retracted,
    /// A retraction record itself.
    Retraction,
}

impl ViolationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationState::Live => "live",
            ViolationState::Superseded => "superseded",
            ViolationState::Retracted => "retracted",
            ViolationState::Retraction => "retraction",
        }
    }

    fn parse(s: &str) -> ViolationState {
        match s {
            "superseded" => ViolationState::Superseded,
            "retracted" => ViolationState::Retracted,
            "retraction" => ViolationState::Retraction,
            _ => ViolationState::Live,
        }
    }

    fn of_new(v: &Violation) -> ViolationState {
        if v.retraction {
            ViolationState::Retraction
        } else {
            ViolationState::Live
        }
    }

    /// What a record does to the violation it supersedes.
    fn of_replaced(by: &Violation) -> ViolationState {
        if by.retraction {
            ViolationState::Retracted
        } else {
            ViolationState::Superseded
        }
    }
}

/// Filters of a violation listing. Times are Unix nanoseconds, both bounds inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViolationQuery {
    pub rule_id: Option<String>,
    pub severity: Option<Severity>,
    pub trace_id: Option<TraceId>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// Only violations with `seq < before`.
    pub before_seq: Option<i64>,
    pub limit: usize,
    /// Every record, whatever its [`ViolationState`]; else only `live` ones.
    pub all_states: bool,
}

/// Rules, violations and export cursors.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `memory` (the health route's `metadata.storage`).
    fn kind(&self) -> &'static str;
    /// Every rule stored, by id.
    fn load_rules(&self) -> Result<Vec<StoredRule>, StoreError>;
    /// Inserts or replaces a rule.
    fn put_rule(&self, rule: &StoredRule) -> Result<(), StoreError>;
    /// Removes a rule; false when there was none.
    fn delete_rule(&self, id: &str) -> Result<bool, StoreError>;
    /// Appends violations in order (one transaction); a record with `supersedes` marks the
    /// live violation it names `superseded` or `retracted`.
    fn insert_violations(&self, violations: &[Violation]) -> Result<(), StoreError> {
        self.insert_violations_with_spans(violations, Vec::new())
    }
    /// Appends violations in order and stores the span summaries of their traces, merged into
    /// those already stored for the same trace id (one transaction).
    fn insert_violations_with_spans(
        &self,
        violations: &[Violation],
        traces: Vec<TraceSpans>,
    ) -> Result<(), StoreError>;
    /// The span summaries of a trace that produced a violation.
    fn trace_spans(&self, trace_id: TraceId) -> Result<Option<TraceSpans>, StoreError>;
    /// The newest live violation of each rule that has one, by rule id.
    fn last_violation_per_rule(&self) -> Result<Vec<StoredViolation>, StoreError>;
    /// Newest first; at most `q.limit`, plus whether more match.
    fn list_violations(
        &self,
        q: &ViolationQuery,
    ) -> Result<(Vec<StoredViolation>, bool), StoreError>;
    /// One violation by id.
    fn get_violation(&self, id: &str) -> Result<Option<StoredViolation>, StoreError>;
    /// Up to `limit` violations with `seq > after`, oldest first.
    fn violations_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredViolation>, StoreError>;
    /// Violations with `seq > after`.
    fn count_after(&self, after: i64) -> Result<u64, StoreError>;
    /// The export cursor `name` (0 when never set).
    fn cursor(&self, name: &str) -> Result<i64, StoreError>;
    fn set_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError>;
    /// Deletes violations created before `older_than_ns`, then the oldest beyond `max`.
    /// Returns how many were deleted.
    fn prune(&self, max: u64, older_than_ns: i64) -> Result<u64, StoreError>;
    /// Records the trace ids evaluated at shutdown, at `at_ns` (Unix ns),
    /// so that the next process recognises their later spans as partial fragments.
    fn remember_shutdown_traces(&self, ids: &[TraceId], at_ns: i64) -> Result<(), StoreError>;
    /// The trace ids recorded by [`Store::remember_shutdown_traces`] at or after `since_ns`;
    /// older records are deleted.
    fn shutdown_traces_since(&self, since_ns: i64) -> Result<Vec<TraceId>, StoreError>;
}

/// Columns kept beside the JSON, for filtering: the trace id as lowercase hex, the time as
/// Unix nanoseconds.
struct Row<'a> {
    id: &'a str,
    created_ns: i64,
    rule_id: &'a str,
    severity: &'a str,
    trace_id: String,
    json: String,
    state: &'static str,
    supersedes: Option<&'a str>,
    replaced_state: &'static str,
}

fn row_of(v: &Violation) -> Result<Row<'_>, StoreError> {
    Ok(Row {
        id: &v.id,
        created_ns: created_ns(v),
        rule_id: &v.rule_id,
        severity: v.severity.as_str(),
        trace_id: v.trace_id.to_hex(),
        json: betrace_core::json::to_string(v),
        state: ViolationState::of_new(v).as_str(),
        supersedes: v.supersedes.as_deref(),
        replaced_state: ViolationState::of_replaced(v).as_str(),
    })
}

/// `createdAt` of a violation in Unix nanoseconds, as the `created_ns` column holds it.
fn created_ns(v: &Violation) -> i64 {
    i64::try_from(v.created_at.unix_nanos()).unwrap_or(i64::MAX)
}

/// Schema migrations; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: rules, violations, export cursors.
    "CREATE TABLE rules (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE violations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        created_ns INTEGER NOT NULL,
        rule_id TEXT NOT NULL,
        severity TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX violations_created ON violations (created_ns);
    CREATE INDEX violations_rule ON violations (rule_id, seq);
    CREATE INDEX violations_severity ON violations (severity, seq);
    CREATE INDEX violations_trace ON violations (trace_id, seq);
    CREATE TABLE export_cursors (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    );",
    // 2: span summaries of the traces that produced violations (not signed).
    "CREATE TABLE trace_spans (
        trace_id TEXT PRIMARY KEY,
        body TEXT NOT NULL
    );",
    // 3: re-evaluation: the state of a violation and the record that replaced it.
    "ALTER TABLE violations ADD COLUMN state TEXT NOT NULL DEFAULT 'live';
    ALTER TABLE violations ADD COLUMN superseded_by TEXT;
    CREATE INDEX violations_state ON violations (state, seq);",
    // 4: trace ids evaluated at shutdown (their later spans are partial fragments).
    "CREATE TABLE shutdown_traces (
        trace_id TEXT PRIMARY KEY,
        released_ns INTEGER NOT NULL
    );",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// SQLite storage in WAL mode.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating when absent) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Schema(format!(
                "{}: the database has schema version {version}, newer than this betrace knows ({SCHEMA_VERSION}); use a newer betrace",
                path.display()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }
}

/// A row of [`COLUMNS`].
struct RowOut {
    seq: i64,
    body: String,
    created_ns: i64,
    state: String,
    superseded_by: Option<String>,
}

impl RowOut {
    fn stored(self) -> Result<StoredViolation, StoreError> {
        Ok(StoredViolation {
            seq: self.seq,
            json: serde_json::from_str(&self.body)?,
            created_ns: self.created_ns,
            state: ViolationState::parse(&self.state),
            superseded_by: self.superseded_by,
        })
    }
}

fn row_out(r: &rusqlite::Row<'_>) -> rusqlite::Result<RowOut> {
    Ok(RowOut {
        seq: r.get(0)?,
        body: r.get(1)?,
        created_ns: r.get(2)?,
        state: r.get(3)?,
        superseded_by: r.get(4)?,
    })
}

const COLUMNS: &str = "seq, body, created_ns, state, superseded_by";

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn load_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt =
            conn.prepare("SELECT body, created_at, updated_at FROM rules ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (body, created_at, updated_at) = row?;
            let value: serde_json::Value = serde_json::from_str(&body)?;
            let rule = Rule::from_json_value(&value)
                .map_err(|e| StoreError::Schema(format!("stored rule is invalid: {e}")))?;
            out.push(StoredRule {
                rule,
                created_at,
                updated_at,
            });
        }
        Ok(out)
    }

    fn put_rule(&self, rule: &StoredRule) -> Result<(), StoreError> {
        let body = serde_json::to_string(&rule.rule)?;
        self.conn.lock().execute(
            "INSERT INTO rules (id, body, created_at, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET body = ?2, created_at = ?3, updated_at = ?4",
            params![rule.rule.id, body, rule.created_at, rule.updated_at],
        )?;
        Ok(())
    }

    fn delete_rule(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .lock()
            .execute("DELETE FROM rules WHERE id = ?1", params![id])?
            > 0)
    }

    fn insert_violations_with_spans(
        &self,
        violations: &[Violation],
        traces: Vec<TraceSpans>,
    ) -> Result<(), StoreError> {
        if violations.is_empty() && traces.is_empty() {
            return Ok(());
        }
        let rows = violations
            .iter()
            .map(row_of)
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO violations (id, created_ns, rule_id, severity, trace_id, body, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut replace = tx.prepare_cached(
                "UPDATE violations SET state = ?1, superseded_by = ?2 WHERE id = ?3 AND state = 'live'",
            )?;
            for r in &rows {
                let added = stmt.execute(params![
                    r.id,
                    r.created_ns,
                    r.rule_id,
                    r.severity,
                    r.trace_id,
                    r.json,
                    r.state
                ])?;
                if added > 0
                    && let Some(old) = r.supersedes
                {
                    replace.execute(params![r.replaced_state, r.id, old])?;
                }
            }
            let mut read = tx.prepare_cached("SELECT body FROM trace_spans WHERE trace_id = ?1")?;
            let mut write = tx.prepare_cached(
                "INSERT INTO trace_spans (trace_id, body) VALUES (?1, ?2)
                 ON CONFLICT(trace_id) DO UPDATE SET body = ?2",
            )?;
            for t in traces {
                let old: Option<String> = read
                    .query_row(params![t.trace_id.to_hex()], |r| r.get(0))
                    .optional()?;
                let merged = match old {
                    Some(body) => {
                        let mut o: TraceSpans = serde_json::from_str(&body)?;
                        o.merge(t);
                        o
                    }
                    None => t,
                };
                write.execute(params![
                    merged.trace_id.to_hex(),
                    serde_json::to_string(&merged)?
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn last_violation_per_rule(&self) -> Result<Vec<StoredViolation>, StoreError> {
        let conn = self.conn.lock();
        // One index seek per rule on `violations_rule (rule_id, seq)`.
        let mut stmt = conn.prepare(
            "SELECT v.seq, v.body, v.created_ns, v.state, v.superseded_by FROM violations v
             JOIN (SELECT MAX(seq) AS seq FROM violations WHERE state = 'live' GROUP BY rule_id) m
             ON v.seq = m.seq
             ORDER BY v.rule_id",
        )?;
        let rows = stmt.query_map([], row_out)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.stored()?);
        }
        Ok(out)
    }

    fn trace_spans(&self, trace_id: TraceId) -> Result<Option<TraceSpans>, StoreError> {
        let body: Option<String> = self
            .conn
            .lock()
            .query_row(
                "SELECT body FROM trace_spans WHERE trace_id = ?1",
                params![trace_id.to_hex()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    fn list_violations(
        &self,
        q: &ViolationQuery,
    ) -> Result<(Vec<StoredViolation>, bool), StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM violations WHERE 1 = 1");
        if !q.all_states {
            sql.push_str(" AND state = 'live'");
        }
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(r) = &q.rule_id {
            add("rule_id =", r.clone().into());
        }
        if let Some(s) = q.severity {
            add("severity =", s.as_str().to_owned().into());
        }
        if let Some(t) = q.trace_id {
            add("trace_id =", t.to_hex().into());
        }
        if let Some(s) = q.start_ns {
            add("created_ns >=", s.into());
        }
        if let Some(e) = q.end_ns {
            add("created_ns <=", e.into());
        }
        if let Some(b) = q.before_seq {
            add("seq <", b.into());
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", q.limit + 1));
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), row_out)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.stored()?);
        }
        let more = out.len() > q.limit;
        out.truncate(q.limit);
        Ok((out, more))
    }

    fn get_violation(&self, id: &str) -> Result<Option<StoredViolation>, StoreError> {
        let conn = self.conn.lock();
        let row = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM violations WHERE id = ?1"),
                params![id],
                row_out,
            )
            .optional()?;
        row.map(RowOut::stored).transpose()
    }

    fn violations_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredViolation>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM violations WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after, limit as i64], row_out)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.stored()?);
        }
        Ok(out)
    }

    fn count_after(&self, after: i64) -> Result<u64, StoreError> {
        let n: i64 = self.conn.lock().query_row(
            "SELECT COUNT(*) FROM violations WHERE seq > ?1",
            params![after],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .lock()
            .query_row(
                "SELECT seq FROM export_cursors WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    fn set_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "INSERT INTO export_cursors (name, seq) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET seq = ?2",
            params![name, seq],
        )?;
        Ok(())
    }

    fn remember_shutdown_traces(&self, ids: &[TraceId], at_ns: i64) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO shutdown_traces (trace_id, released_ns) VALUES (?1, ?2)
                 ON CONFLICT(trace_id) DO UPDATE SET released_ns = ?2",
            )?;
            for id in ids {
                insert.execute(params![id.to_hex(), at_ns])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn shutdown_traces_since(&self, since_ns: i64) -> Result<Vec<TraceId>, StoreError> {
        let conn = self.conn.lock();
        conn.execute(
            "DELETE FROM shutdown_traces WHERE released_ns < ?1",
            params![since_ns],
        )?;
        let mut q = conn.prepare("SELECT trace_id FROM shutdown_traces")?;
        let mut ids = Vec::new();
        for text in q.query_map([], |r| r.get::<_, String>(0))? {
            let text = text?;
            match text.parse() {
                Ok(id) => ids.push(id),
                Err(e) => {
                    tracing::warn!(error = %e, "shutdown_traces holds a trace id that is not one; skipped")
                }
            }
        }
        Ok(ids)
    }

    fn prune(&self, max: u64, older_than_ns: i64) -> Result<u64, StoreError> {
        let conn = self.conn.lock();
        let mut n = conn.execute(
            "DELETE FROM violations WHERE created_ns < ?1",
            params![older_than_ns],
        )? as u64;
        let count: i64 = conn.query_row("SELECT COUNT(*) FROM violations", [], |r| r.get(0))?;
        let excess = (count.max(0) as u64).saturating_sub(max);
        if excess > 0 {
            n += conn.execute(
                "DELETE FROM violations WHERE seq IN (SELECT seq FROM violations ORDER BY seq LIMIT ?1)",
                params![excess as i64],
            )? as u64;
        }
        if n > 0 {
            conn.execute(
                "DELETE FROM trace_spans WHERE trace_id NOT IN (SELECT trace_id FROM violations)",
                [],
            )?;
        }
        Ok(n)
    }
}

#[derive(Debug, Default)]
struct MemInner {
    rules: BTreeMap<String, StoredRule>,
    violations: BTreeMap<i64, MemViolation>,
    by_id: HashMap<String, i64>,
    next_seq: i64,
    cursors: HashMap<String, i64>,
    traces: HashMap<TraceId, TraceSpans>,
}

#[derive(Debug)]
struct MemViolation {
    created_ns: i64,
    rule_id: String,
    severity: Severity,
    trace_id: TraceId,
    json: serde_json::Value,
    state: ViolationState,
    superseded_by: Option<String>,
}

impl MemViolation {
    fn stored(&self, seq: i64) -> StoredViolation {
        StoredViolation {
            seq,
            json: self.json.clone(),
            created_ns: self.created_ns,
            state: self.state,
            superseded_by: self.superseded_by.clone(),
        }
    }
}

/// In-process storage (`storage.type: memory`, `--test-mode`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemInner>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn load_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        Ok(self.inner.lock().rules.values().cloned().collect())
    }

    fn put_rule(&self, rule: &StoredRule) -> Result<(), StoreError> {
        self.inner
            .lock()
            .rules
            .insert(rule.rule.id.clone(), rule.clone());
        Ok(())
    }

    fn delete_rule(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.inner.lock().rules.remove(id).is_some())
    }

    fn insert_violations_with_spans(
        &self,
        violations: &[Violation],
        traces: Vec<TraceSpans>,
    ) -> Result<(), StoreError> {
        let mut prepared = Vec::with_capacity(violations.len());
        for v in violations {
            prepared.push((v, betrace_core::json::to_value(v)));
        }
        let mut m = self.inner.lock();
        for (v, json) in prepared {
            if m.by_id.contains_key(&v.id) {
                continue;
            }
            m.next_seq += 1;
            let seq = m.next_seq;
            m.by_id.insert(v.id.clone(), seq);
            m.violations.insert(
                seq,
                MemViolation {
                    created_ns: created_ns(v),
                    rule_id: v.rule_id.clone(),
                    severity: v.severity,
                    trace_id: v.trace_id,
                    json,
                    state: ViolationState::of_new(v),
                    superseded_by: None,
                },
            );
            if let Some(old) = v.supersedes.as_ref().and_then(|o| m.by_id.get(o).copied())
                && let Some(old) = m.violations.get_mut(&old)
                && old.state == ViolationState::Live
            {
                old.state = ViolationState::of_replaced(v);
                old.superseded_by = Some(v.id.clone());
            }
        }
        for t in traces {
            match m.traces.get_mut(&t.trace_id) {
                Some(old) => old.merge(t),
                None => {
                    m.traces.insert(t.trace_id, t);
                }
            }
        }
        Ok(())
    }

    fn trace_spans(&self, trace_id: TraceId) -> Result<Option<TraceSpans>, StoreError> {
        Ok(self.inner.lock().traces.get(&trace_id).cloned())
    }

    fn last_violation_per_rule(&self) -> Result<Vec<StoredViolation>, StoreError> {
        let m = self.inner.lock();
        let mut last: BTreeMap<&str, StoredViolation> = BTreeMap::new();
        for (&seq, v) in m.violations.iter().rev() {
            if v.state == ViolationState::Live {
                last.entry(v.rule_id.as_str())
                    .or_insert_with(|| v.stored(seq));
            }
        }
        Ok(last.into_values().collect())
    }

    fn list_violations(
        &self,
        q: &ViolationQuery,
    ) -> Result<(Vec<StoredViolation>, bool), StoreError> {
        let m = self.inner.lock();
        let upper = q.before_seq.unwrap_or(i64::MAX);
        let mut out = Vec::new();
        for (&seq, v) in m.violations.range(..upper).rev() {
            let keep = (q.all_states || v.state == ViolationState::Live)
                && q.rule_id.as_ref().is_none_or(|r| *r == v.rule_id)
                && q.severity.is_none_or(|s| s == v.severity)
                && q.trace_id.is_none_or(|t| t == v.trace_id)
                && q.start_ns.is_none_or(|s| v.created_ns >= s)
                && q.end_ns.is_none_or(|e| v.created_ns <= e);
            if keep {
                if out.len() == q.limit {
                    return Ok((out, true));
                }
                out.push(v.stored(seq));
            }
        }
        Ok((out, false))
    }

    fn get_violation(&self, id: &str) -> Result<Option<StoredViolation>, StoreError> {
        let m = self.inner.lock();
        Ok(m.by_id
            .get(id)
            .and_then(|seq| m.violations.get(seq).map(|v| v.stored(*seq))))
    }

    fn violations_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredViolation>, StoreError> {
        let m = self.inner.lock();
        Ok(m.violations
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(&seq, v)| v.stored(seq))
            .collect())
    }

    fn count_after(&self, after: i64) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .lock()
            .violations
            .range(after.saturating_add(1)..)
            .count() as u64)
    }

    fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.inner.lock().cursors.get(name).copied().unwrap_or(0))
    }

    fn set_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        self.inner.lock().cursors.insert(name.to_owned(), seq);
        Ok(())
    }

    /// Nothing outlives the process with memory storage.
    fn remember_shutdown_traces(&self, _ids: &[TraceId], _at_ns: i64) -> Result<(), StoreError> {
        Ok(())
    }

    fn shutdown_traces_since(&self, _since_ns: i64) -> Result<Vec<TraceId>, StoreError> {
        Ok(Vec::new())
    }

    fn prune(&self, max: u64, older_than_ns: i64) -> Result<u64, StoreError> {
        let mut m = self.inner.lock();
        let old: Vec<i64> = m
            .violations
            .iter()
            .filter(|(_, v)| v.created_ns < older_than_ns)
            .map(|(&s, _)| s)
            .collect();
        let mut removed = 0u64;
        for seq in old {
            if let Some(v) = m.violations.remove(&seq) {
                remove_id(&mut m.by_id, &v.json);
                removed += 1;
            }
        }
        while m.violations.len() as u64 > max {
            let Some((_, v)) = m.violations.pop_first() else {
                break;
            };
            remove_id(&mut m.by_id, &v.json);
            removed += 1;
        }
        if removed > 0 {
            let MemInner {
                traces, violations, ..
            } = &mut *m;
            let live: std::collections::HashSet<TraceId> =
                violations.values().map(|v| v.trace_id).collect();
            traces.retain(|id, _| live.contains(id));
        }
        Ok(removed)
    }
}

fn remove_id(by_id: &mut HashMap<String, i64>, json: &serde_json::Value) {
    if let Some(id) = json.get("id").and_then(|i| i.as_str()) {
        by_id.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use betrace_core::violation::{ClauseTexts, FailedClause, ViolationParts};
    use betrace_core::{CompletionReason, Severity, SpanId, TraceId};

    fn violation(rule: &str, sev: Severity, trace: u8, at_ns: u64) -> Violation {
        Violation::new(
            ViolationParts {
                rule_id: rule,
                rule_name: rule,
                expression: "x",
                severity: sev,
                clauses: ClauseTexts::default(),
                trace_id: TraceId([trace; 16]),
                failed_clause: FailedClause::Expression,
                trigger_spans: vec![],
                offending_spans: vec![],
                truncated: false,
                completion_reason: CompletionReason::Flush,
                partial: false,
            },
            at_ns,
        )
    }

    fn exercise(s: &dyn Store) {
        let base = 1_700_000_000_000_000_000u64;
        let vs: Vec<Violation> = (0..5)
            .map(|i| {
                violation(
                    if i % 2 == 0 { "a" } else { "b" },
                    if i < 2 { Severity::High } else { Severity::Low },
                    i as u8 + 1,
                    base + i * 1_000_000_000,
                )
            })
            .collect();
        s.insert_violations(&vs).unwrap();
        s.insert_violations(&vs[..1]).unwrap(); // duplicate id ignored
        let last = s.last_violation_per_rule().unwrap();
        let ids: Vec<&str> = last
            .iter()
            .map(|v| v.json["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [vs[4].id.as_str(), vs[3].id.as_str()]); // rules a, b
        let q = ViolationQuery {
            limit: 2,
            ..Default::default()
        };
        let (page, more) = s.list_violations(&q).unwrap();
        assert!(more);
        assert_eq!(page[0].json["id"], vs[4].id.as_str());
        assert_eq!(page[1].json["id"], vs[3].id.as_str());
        let (page2, more) = s
            .list_violations(&ViolationQuery {
                before_seq: Some(page[1].seq),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert!(!more);
        assert_eq!(page2.len(), 3);
        let (a, _) = s
            .list_violations(&ViolationQuery {
                rule_id: Some("a".into()),
                severity: Some(Severity::Low),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(a.len(), 2);
        let (t, _) = s
            .list_violations(&ViolationQuery {
                trace_id: Some(vs[1].trace_id),
                start_ns: Some((base + 1_000_000_000) as i64),
                end_ns: Some((base + 1_000_000_000) as i64),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].created_ns, (base + 1_000_000_000) as i64);
        assert!(s.get_violation(&vs[2].id).unwrap().is_some());
        assert!(s.get_violation("nope").unwrap().is_none());
        let after = s.violations_after(0, 3).unwrap();
        assert_eq!(after.len(), 3);
        assert_eq!(after[0].json["id"], vs[0].id.as_str());
        assert_eq!(s.count_after(after[2].seq).unwrap(), 2);
        assert_eq!(s.cursor("otlp").unwrap(), 0);
        s.set_cursor("otlp", 3).unwrap();
        assert_eq!(s.cursor("otlp").unwrap(), 3);
        // Prune: the first by age, then down to 2.
        assert_eq!(s.prune(2, (base + 1) as i64).unwrap(), 3);
        let (rest, _) = s
            .list_violations(&ViolationQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[1].json["id"], vs[3].id.as_str());

        let r = StoredRule {
            rule: Rule::new("r1", "x"),
            created_at: "2024-01-01T00:00:00.000Z".into(),
            updated_at: "2024-01-01T00:00:00.000Z".into(),
        };
        s.put_rule(&r).unwrap();
        s.put_rule(&r).unwrap();
        assert_eq!(s.load_rules().unwrap(), vec![r]);
        assert!(s.delete_rule("r1").unwrap());
        assert!(!s.delete_rule("r1").unwrap());
        supersede_and_retract(s);
    }

    fn supersede_and_retract(s: &dyn Store) {
        let base = 1_800_000_000_000_000_000u64;
        let first = violation("a", Severity::High, 9, base);
        let other = violation("b", Severity::High, 9, base);
        s.insert_violations(&[first.clone(), other.clone()])
            .unwrap();
        let mut second = violation("a", Severity::High, 9, base + 1);
        second.evaluation = 2;
        second.supersedes = Some(first.id.clone());
        let retract = other.retraction_of(2, 3, CompletionReason::RootComplete, base + 1);
        s.insert_violations(&[second.clone(), retract.clone()])
            .unwrap();
        let q = ViolationQuery {
            trace_id: Some(first.trace_id),
            limit: 10,
            ..Default::default()
        };
        let (live, _) = s.list_violations(&q).unwrap();
        let ids: Vec<&str> = live
            .iter()
            .map(|v| v.json["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [second.id.as_str()]);
        let (all, _) = s
            .list_violations(&ViolationQuery {
                all_states: true,
                ..q
            })
            .unwrap();
        let states: Vec<(&str, ViolationState)> = all
            .iter()
            .map(|v| (v.json["id"].as_str().unwrap(), v.state))
            .collect();
        assert_eq!(
            states,
            [
                (retract.id.as_str(), ViolationState::Retraction),
                (second.id.as_str(), ViolationState::Live),
                (other.id.as_str(), ViolationState::Retracted),
                (first.id.as_str(), ViolationState::Superseded),
            ]
        );
        let old = s.get_violation(&first.id).unwrap().unwrap();
        assert_eq!(old.superseded_by.as_deref(), Some(second.id.as_str()));
        // The stored JSON of the replaced record is the one it was written as.
        assert_eq!(old.json, serde_json::to_value(&first).unwrap());
    }

    fn summary(trace: TraceId, ids: &[u8]) -> TraceSpans {
        use crate::serve::summary::SpanSummary;
        TraceSpans {
            trace_id: trace,
            spans: ids
                .iter()
                .enumerate()
                .map(|(i, id)| SpanSummary {
                    span_id: SpanId([*id; 8]),
                    parent_span_id: None,
                    name: format!("op{i}"),
                    service: "svc".into(),
                    kind: "server".into(),
                    start_ns: 10 + i as u64,
                    end_ns: 20 + i as u64,
                    status: "ok".into(),
                    status_message: String::new(),
                    attributes: Default::default(),
                })
                .collect(),
            total_spans: ids.len() as u64,
            truncated: false,
        }
    }

    /// Summaries are kept per trace, merged with later fragments, outside the signed JSON, and
    /// pruned with the last violation of their trace.
    fn summaries(s: &dyn Store) -> Violation {
        let base = 1_700_000_000_000_000_000u64;
        let mut v1 = violation("a", Severity::High, 1, base);
        betrace_core::sign::sign_in_place(&mut v1, b"k");
        let v2 = violation("a", Severity::High, 2, base + 1);
        let v2_trace = v2.trace_id.to_hex();
        let t1 = v1.trace_id;
        s.insert_violations_with_spans(std::slice::from_ref(&v1), vec![summary(t1, &[0xaa, 0xbb])])
            .unwrap();
        s.insert_violations_with_spans(&[v2], vec![summary(t1, &[0xbb, 0xcc])])
            .unwrap();
        let got = s.trace_spans(t1).unwrap().unwrap();
        let ids: Vec<u8> = got.spans.iter().map(|x| x.span_id.0[0]).collect();
        assert_eq!(ids, [0xaa, 0xbb, 0xcc]);
        assert_eq!(got.total_spans, 3);
        let stored = s.get_violation(&v1.id).unwrap().unwrap();
        assert_eq!(stored.json, serde_json::to_value(&v1).unwrap());
        assert!(betrace_core::sign::verify_json(&stored.json, b"k"));
        assert!(s.trace_spans(TraceId([9; 16])).unwrap().is_none());
        let last = s.last_violation_per_rule().unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].json["traceId"], v2_trace.as_str());
        // Both violations pruned (by age): the summary goes with them.
        assert_eq!(s.prune(10, (base + 2) as i64).unwrap(), 2);
        assert!(s.trace_spans(t1).unwrap().is_none());
        v1
    }

    #[test]
    fn memory_store() {
        exercise(&MemoryStore::new());
        summaries(&MemoryStore::new());
    }

    #[test]
    fn sqlite_summaries() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let v = summaries(&s);
        // The stored body is the signed serialization, byte for byte.
        s.insert_violations_with_spans(
            std::slice::from_ref(&v),
            vec![summary(v.trace_id, &[0xaa])],
        )
        .unwrap();
        let body: String = s
            .conn
            .lock()
            .query_row(
                "SELECT body FROM violations WHERE id = ?1",
                params![v.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(body, serde_json::to_string(&v).unwrap());
        assert!(!body.contains("\"spans\""));
    }

    #[test]
    fn schema_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        drop(c);
        let s = SqliteStore::open(&path).unwrap();
        let v: i64 = s
            .conn
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        summaries(&s);
    }

    #[test]
    fn sqlite_store_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/b.db");
        exercise(&SqliteStore::open(&path).unwrap());
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.cursor("otlp").unwrap(), 3);
        let mode: String = s
            .conn
            .lock()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn shutdown_traces_outlive_the_process_until_they_are_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let s = SqliteStore::open(&path).unwrap();
        let (a, b, c) = (
            TraceId([0xaa; 16]),
            TraceId([0xbb; 16]),
            TraceId([0xcc; 16]),
        );
        s.remember_shutdown_traces(&[a, b], 100).unwrap();
        s.remember_shutdown_traces(&[c], 200).unwrap();
        drop(s);
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.shutdown_traces_since(150).unwrap(), [c]);
        assert_eq!(s.shutdown_traces_since(0).unwrap(), [c]);
        // A row that is not a trace id is skipped, the others still read.
        s.conn
            .lock()
            .execute(
                "INSERT INTO shutdown_traces (trace_id, released_ns) VALUES ('xyz', 300)",
                [],
            )
            .unwrap();
        assert_eq!(s.shutdown_traces_since(0).unwrap(), [c]);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        drop(SqliteStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        let e = SqliteStore::open(&path).unwrap_err();
        assert!(e.to_string().contains("newer than this betrace"), "{e}");
    }
}
