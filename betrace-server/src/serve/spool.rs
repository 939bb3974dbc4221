//! The ingest spool (docs/server.md "Durability"): accepted OTLP requests kept on disk until
//! the traces they hold are evaluated and their violations stored.
//!
//! In: the body of each accepted request (OTLP protobuf, OTLP/JSON or simple JSON, after
//! gzip) with the trace ids and span counts it holds. Out: segment files
//! `<data dir>/spool/<id>.seg` replayed at the next start, deleted once every span they hold
//! belongs to a trace that was evaluated and stored.
//!
//! A segment is a sequence of records `len: u32 LE | crc32: u32 LE | kind: u8 | body`, where
//! `len` counts the kind byte and the body and the CRC-32 covers both. Reading stops at the
//! first torn or corrupt record of a segment (what a crash in the middle of a write leaves);
//! such records are counted. A segment is closed once it holds `ingest.spool_segment_bytes`
//! or is a second old, then a new one is opened.
//!
//! A trace stored while others of its segment are pending gets a mark in `<id>.done`
//! (trace id, segment length at that moment); a replay skips its spans in the records before
//! that length, so a trace is evaluated again only when its mark was lost.
//!
//! Accounting: per trace id, a queue of `(segment, spans)` in arrival order; a trace stored
//! with `n` spans takes `n` spans off the front of its queue, and a segment whose spans are
//! all taken is deleted once closed. The segment being written is closed as soon as all its
//! spans are stored, so an idle server keeps no spooled request that was already evaluated. With `ingest.spool_fsync: always` each record is synced
//! before the request is answered; with `interval`, every `ingest.spool_fsync_interval`;
//! with `never`, when the operating system writes it back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use betrace_core::TraceId;
use parking_lot::Mutex;

use super::config::{SpoolConfig, SpoolFsync};
use super::metrics::Metrics;

/// A segment is closed after this long even when small.
const SEGMENT_AGE: Duration = Duration::from_secs(1);

/// Largest record accepted when reading back (a bound against a corrupt length).
const MAX_RECORD_BYTES: usize = 1 << 30;

/// What a record's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// `ExportTraceServiceRequest` as protobuf.
    OtlpProtobuf = 1,
    /// `ExportTraceServiceRequest` as OTLP/JSON.
    OtlpJson = 2,
    /// `{"spans": [...]}` of `POST /v1/spans`.
    SimpleJson = 3,
}

impl RecordKind {
    fn from_byte(b: u8) -> Option<RecordKind> {
        match b {
            1 => Some(RecordKind::OtlpProtobuf),
            2 => Some(RecordKind::OtlpJson),
            3 => Some(RecordKind::SimpleJson),
            _ => None,
        }
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub body: Vec<u8>,
}

/// Spans per trace id of one request.
pub type TraceCounts = Vec<(TraceId, u64)>;

#[derive(Debug)]
struct Segment {
    bytes: u64,
    /// Spans written to it (or replayed from it) not yet stored.
    pending: u64,
    open: bool,
    /// `<id>.done`, opened at the first trace stored while others are pending.
    done: Option<File>,
}

#[derive(Debug)]
struct Current {
    id: u64,
    file: File,
    opened: Instant,
    bytes: u64,
}

#[derive(Debug, Default)]
struct Inner {
    current: Option<Current>,
    segments: BTreeMap<u64, Segment>,
    next_id: u64,
    traces: HashMap<TraceId, VecDeque<(u64, u64)>>,
    dirty: bool,
    last_sync: Option<Instant>,
    /// With `interval`: closed segments and the directory, synced by the next tick outside
    /// the lock.
    to_sync: Vec<File>,
    dir_dirty: bool,
}

/// The spool of one data directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.seg"))
}

fn done_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.done"))
}

/// Bytes of one done mark: trace id, then the segment length when it was stored (u64 LE).
const MARK_BYTES: usize = 24;

impl Spool {
    /// Opens the spool in `dir` (created when absent). Segments left by an earlier run stay,
    /// closed, for [`Spool::leftover`] and [`Spool::read_segment`].
    pub fn open(dir: &Path, config: SpoolConfig, metrics: Arc<Metrics>) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut inner = Inner::default();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = entry.metadata()?.len();
            inner.segments.insert(
                id,
                Segment {
                    bytes,
                    pending: 0,
                    open: false,
                    done: None,
                },
            );
            inner.next_id = inner.next_id.max(id + 1);
        }
        let spool = Spool {
            dir: dir.to_owned(),
            config,
            inner: Mutex::new(inner),
            metrics,
        };
        spool.update_gauges(&spool.inner.lock());
        Ok(spool)
    }

    /// Ids of the segments left by an earlier run, oldest first.
    pub fn leftover(&self) -> Vec<u64> {
        self.inner
            .lock()
            .segments
            .iter()
            .filter(|(_, s)| !s.open)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Traces of segment `id` already stored before the last stop, with the segment length
    /// at that moment: their spans in records before that offset need no replay.
    pub fn done_marks(&self, id: u64) -> HashMap<TraceId, u64> {
        let mut out = HashMap::new();
        let Ok(data) = std::fs::read(done_path(&self.dir, id)) else {
            return out;
        };
        for mark in data.chunks_exact(MARK_BYTES) {
            let (t, o) = mark.split_at(16);
            if let (Ok(t), Ok(o)) = (<[u8; 16]>::try_from(t), <[u8; 8]>::try_from(o)) {
                let o = u64::from_le_bytes(o);
                let e = out.entry(TraceId(t)).or_insert(o);
                *e = (*e).max(o);
            }
        }
        out
    }

    /// The records of segment `id` with their offsets, up to the first torn or corrupt one
    /// (counted and logged).
    pub fn read_segment(&self, id: u64) -> io::Result<Vec<(u64, Record)>> {
        let path = seg_path(&self.dir, id);
        let mut data = Vec::new();
        File::open(&path)?.read_to_end(&mut data)?;
        let mut out = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            match parse_record(&data[at..]) {
                Some((record, used)) => {
                    out.push((at as u64, record));
                    at += used;
                }
                None => {
                    self.metrics.spool_corrupt_records.inc();
                    tracing::warn!(
                        path = %path.display(),
                        offset = at,
                        "spool: torn or corrupt record; the rest of the segment is skipped"
                    );
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Counts `traces` as held by segment `id` (a replayed segment).
    pub fn track(&self, id: u64, traces: &[(TraceId, u64)]) {
        let mut inner = self.inner.lock();
        add_traces(&mut inner, id, traces);
    }

    /// Appends one record and counts `traces` as held by it; returns the segment id. Synced
    /// before returning with `spool_fsync: always`.
    pub fn append(
        &self,
        kind: RecordKind,
        body: &[u8],
        traces: &[(TraceId, u64)],
    ) -> io::Result<u64> {
        let len = u32::try_from(body.len() + 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record over 4 GiB"))?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[kind as u8]);
        hasher.update(body);
        let mut head = [0u8; 9];
        head[..4].copy_from_slice(&len.to_le_bytes());
        head[4..8].copy_from_slice(&hasher.finalize().to_le_bytes());
        head[8] = kind as u8;
        let record_bytes = head.len() as u64 + body.len() as u64;

        let mut inner = self.inner.lock();
        let rotate = inner
            .current
            .as_ref()
            .is_none_or(|c| c.bytes > 0 && c.bytes + record_bytes > self.config.segment_bytes);
        if rotate {
            self.rotate(&mut inner)?;
        }
        let Some(cur) = inner.current.as_mut() else {
            return Err(io::Error::other("no open spool segment"));
        };
        let id = cur.id;
        if let Err(e) = cur
            .file
            .write_all(&head)
            .and_then(|()| cur.file.write_all(body))
        {
            // A partial record must not be followed by whole ones: start a new segment.
            inner.current = None;
            if let Some(s) = inner.segments.get_mut(&id) {
                s.open = false;
            }
            return Err(e);
        }
        if self.config.fsync == SpoolFsync::Always {
            cur.file.sync_data()?;
        }
        cur.bytes += record_bytes;
        if let Some(s) = inner.segments.get_mut(&id) {
            s.bytes += record_bytes;
        }
        inner.dirty = true;
        add_traces(&mut inner, id, traces);
        self.metrics.spool_bytes.inc_by(record_bytes as i64);
        Ok(id)
    }

    /// Takes back the spans of a request that was appended and then refused.
    pub fn untrack(&self, id: u64, traces: &[(TraceId, u64)]) {
        let mut inner = self.inner.lock();
        for (tid, n) in traces {
            let Some(q) = inner.traces.get_mut(tid) else {
                continue;
            };
            if let Some(pos) = q.iter().rposition(|(seg, c)| *seg == id && *c >= *n) {
                q[pos].1 -= n;
                if q[pos].1 == 0 {
                    q.remove(pos);
                }
                if q.is_empty() {
                    inner.traces.remove(tid);
                }
                if let Some(s) = inner.segments.get_mut(&id) {
                    s.pending = s.pending.saturating_sub(*n);
                }
            }
        }
        self.delete_done(&mut inner);
    }

    /// Marks the spans of `traces` as evaluated and stored; deletes the closed segments left
    /// with nothing pending.
    pub fn stored(&self, traces: &[(TraceId, u64)]) {
        let mut marks: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut inner = self.inner.lock();
        for (tid, n) in traces {
            let mut left = *n;
            let Some(q) = inner.traces.get_mut(tid) else {
                continue;
            };
            let mut taken: Vec<(u64, u64)> = Vec::new();
            while left > 0 {
                let Some(front) = q.front_mut() else {
                    break;
                };
                let t = front.1.min(left);
                front.1 -= t;
                left -= t;
                taken.push((front.0, t));
                if front.1 == 0 {
                    q.pop_front();
                }
            }
            if q.is_empty() {
                inner.traces.remove(tid);
            }
            for (seg, t) in taken {
                if let Some(s) = inner.segments.get_mut(&seg) {
                    s.pending = s.pending.saturating_sub(t);
                    if s.pending > 0 {
                        let m = marks.entry(seg).or_default();
                        m.extend_from_slice(&tid.0);
                        m.extend_from_slice(&s.bytes.to_le_bytes());
                    }
                }
            }
        }
        // Marks of traces stored from segments that stay: a replay skips them. Not synced:
        // a lost mark means a trace evaluated twice, never a trace lost.
        for (seg, m) in marks {
            let Some(s) = inner.segments.get_mut(&seg) else {
                continue;
            };
            if s.done.is_none() {
                s.done = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(done_path(&self.dir, seg))
                    .map_err(|e| tracing::debug!(error = %e, "spool: cannot open a done file"))
                    .ok();
            }
            if let Some(f) = s.done.as_mut()
                && let Err(e) = f.write_all(&m)
            {
                tracing::debug!(error = %e, "spool: cannot write done marks");
            }
        }
        // Everything written so far is stored: close the segment so that it goes now, and a
        // crash replays none of it.
        let current_done = inner
            .current
            .as_ref()
            .and_then(|c| inner.segments.get(&c.id))
            .is_some_and(|s| s.pending == 0 && s.bytes > 0);
        if current_done {
            self.close_current(&mut inner);
        }
        self.delete_done(&mut inner);
    }

    /// Periodic work: closes the current segment once a second old, deletes finished
    /// segments, syncs with `spool_fsync: interval`.
    pub fn tick(&self) {
        let (sync, closed, dir) = {
            let mut inner = self.inner.lock();
            let old = inner
                .current
                .as_ref()
                .is_some_and(|c| c.bytes > 0 && c.opened.elapsed() >= SEGMENT_AGE);
            if old {
                self.close_current(&mut inner);
            }
            self.delete_done(&mut inner);
            let due = inner
                .last_sync
                .is_none_or(|t| t.elapsed() >= self.config.fsync_interval);
            let current = if self.config.fsync == SpoolFsync::Interval && inner.dirty && due {
                inner.dirty = false;
                inner.last_sync = Some(Instant::now());
                inner.current.as_ref().and_then(|c| c.file.try_clone().ok())
            } else {
                None
            };
            let dir = std::mem::take(&mut inner.dir_dirty);
            (current, std::mem::take(&mut inner.to_sync), dir)
        };
        for f in closed.iter().chain(sync.as_ref()) {
            if let Err(e) = f.sync_data() {
                tracing::error!(error = %e, "spool: fsync failed");
            }
        }
        if dir && let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }

    /// Closes the current segment and deletes every segment with nothing pending (at
    /// shutdown, after the last traces were stored). Returns the segments kept.
    pub fn close(&self) -> usize {
        let mut inner = self.inner.lock();
        self.close_current(&mut inner);
        self.delete_done(&mut inner);
        for f in std::mem::take(&mut inner.to_sync) {
            let _ = f.sync_data();
        }
        inner.segments.len()
    }

    fn rotate(&self, inner: &mut Inner) -> io::Result<()> {
        self.close_current(inner);
        let id = inner.next_id;
        let path = seg_path(&self.dir, id);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        // The new directory entry survives a power loss.
        match self.config.fsync {
            SpoolFsync::Always => {
                if let Ok(d) = File::open(&self.dir) {
                    let _ = d.sync_all();
                }
            }
            SpoolFsync::Interval => inner.dir_dirty = true,
            SpoolFsync::Never => {}
        }
        inner.next_id += 1;
        inner.segments.insert(
            id,
            Segment {
                bytes: 0,
                pending: 0,
                open: true,
                done: None,
            },
        );
        inner.current = Some(Current {
            id,
            file,
            opened: Instant::now(),
            bytes: 0,
        });
        self.update_gauges(inner);
        Ok(())
    }

    fn close_current(&self, inner: &mut Inner) {
        if let Some(c) = inner.current.take() {
            // `always` synced every record already.
            if self.config.fsync == SpoolFsync::Interval && inner.dirty {
                inner.to_sync.push(c.file);
            }
            if let Some(s) = inner.segments.get_mut(&c.id) {
                s.open = false;
            }
        }
    }

    fn delete_done(&self, inner: &mut Inner) {
        let done: Vec<u64> = inner
            .segments
            .iter()
            .filter(|(_, s)| !s.open && s.pending == 0)
            .map(|(id, _)| *id)
            .collect();
        if done.is_empty() {
            return;
        }
        for id in done {
            let path = seg_path(&self.dir, id);
            let _ = std::fs::remove_file(done_path(&self.dir, id));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "spool: cannot delete a finished segment");
                    continue;
                }
            }
            inner.segments.remove(&id);
        }
        self.update_gauges(inner);
    }

    fn update_gauges(&self, inner: &Inner) {
        self.metrics.spool_segments.set(inner.segments.len() as i64);
        let bytes: u64 = inner.segments.values().map(|s| s.bytes).sum();
        self.metrics.spool_bytes.set(bytes as i64);
    }
}

fn add_traces(inner: &mut Inner, id: u64, traces: &[(TraceId, u64)]) {
    let mut total = 0;
    for (tid, n) in traces {
        let q = inner.traces.entry(*tid).or_default();
        match q.back_mut() {
            Some(back) if back.0 == id => back.1 += n,
            _ => q.push_back((id, *n)),
        }
        total += n;
    }
    if let Some(s) = inner.segments.get_mut(&id) {
        s.pending += total;
    }
}

/// One record from the front of `data` and the bytes it used; `None` when torn or corrupt.
fn parse_record(data: &[u8]) -> Option<(Record, usize)> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
    if len == 0 || len > MAX_RECORD_BYTES {
        return None;
    }
    let payload = data.get(8..8 + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let kind = RecordKind::from_byte(payload[0])?;
    Some((
        Record {
            kind,
            body: payload[1..].to_vec(),
        },
        8 + len,
    ))
}

/// Spans per trace id of `spans`, in first-seen order.
pub fn trace_counts<'a>(ids: impl Iterator<Item = &'a TraceId>) -> TraceCounts {
    let mut out: TraceCounts = Vec::new();
    for id in ids {
        // Requests mostly hold few traces, often in runs: look at the last one first.
        match out.last_mut() {
            Some((last, n)) if last == id => *n += 1,
            _ => match out.iter_mut().find(|(t, _)| t == id) {
                Some((_, n)) => *n += 1,
                None => out.push((*id, 1)),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(b: u8) -> TraceId {
        TraceId([b; 16])
    }

    fn config() -> SpoolConfig {
        SpoolConfig {
            enabled: true,
            fsync: SpoolFsync::Never,
            fsync_interval: Duration::from_millis(200),
            segment_bytes: 64,
        }
    }

    #[test]
    fn records_round_trip_and_segments_go_once_stored() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let s = Spool::open(dir.path(), config(), Arc::clone(&m)).unwrap();
        let a = s
            .append(RecordKind::OtlpJson, b"{\"a\":1}", &[(tid(1), 2)])
            .unwrap();
        // Past 64 bytes: a second segment.
        let b = s
            .append(
                RecordKind::OtlpProtobuf,
                &[7u8; 60],
                &[(tid(1), 1), (tid(2), 1)],
            )
            .unwrap();
        assert_ne!(a, b);
        drop(s);
        let s = Spool::open(dir.path(), config(), Arc::clone(&m)).unwrap();
        assert_eq!(s.leftover(), vec![a, b]);
        let r = s.read_segment(a).unwrap();
        assert_eq!(
            r,
            vec![(
                0,
                Record {
                    kind: RecordKind::OtlpJson,
                    body: b"{\"a\":1}".to_vec()
                }
            )]
        );
        s.track(a, &[(tid(1), 2)]);
        s.track(b, &[(tid(1), 1), (tid(2), 1)]);
        // Trace 1 stored with its 3 spans: segment a is done, b still holds trace 2.
        s.stored(&[(tid(1), 3)]);
        assert_eq!(s.leftover(), vec![b]);
        s.stored(&[(tid(2), 1)]);
        assert!(s.leftover().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn traces_stored_beside_pending_ones_are_marked_done() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let cfg = SpoolConfig {
            segment_bytes: 1 << 20,
            ..config()
        };
        let s = Spool::open(dir.path(), cfg, Arc::clone(&m)).unwrap();
        let a = s
            .append(RecordKind::SimpleJson, b"{}", &[(tid(1), 1), (tid(2), 1)])
            .unwrap();
        s.stored(&[(tid(1), 1)]);
        let later = s
            .append(RecordKind::SimpleJson, b"{}", &[(tid(1), 1)])
            .unwrap();
        assert_eq!(a, later);
        drop(s);
        let s = Spool::open(dir.path(), cfg, Arc::clone(&m)).unwrap();
        let records = s.read_segment(a).unwrap();
        let done = s.done_marks(a);
        // Trace 1 was stored after the first record and before the second.
        assert_eq!(done.len(), 1);
        assert!(done[&tid(1)] > records[0].0);
        assert!(done[&tid(1)] <= records[1].0);
        s.track(a, &[(tid(2), 1), (tid(1), 1)]);
        s.stored(&[(tid(2), 1), (tid(1), 1)]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_torn_tail_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let s = Spool::open(dir.path(), config(), Arc::clone(&m)).unwrap();
        let a = s
            .append(RecordKind::SimpleJson, b"{}", &[(tid(1), 1)])
            .unwrap();
        drop(s);
        let path = seg_path(dir.path(), a);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
        let s = Spool::open(dir.path(), config(), Arc::clone(&m)).unwrap();
        assert_eq!(s.read_segment(a).unwrap().len(), 1);
        assert_eq!(m.spool_corrupt_records.get(), 1);
    }

    #[test]
    fn counts_by_trace() {
        let ids = [tid(1), tid(1), tid(2), tid(1)];
        assert_eq!(trace_counts(ids.iter()), vec![(tid(1), 3), (tid(2), 1)]);
    }
}
