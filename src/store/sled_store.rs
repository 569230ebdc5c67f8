//! The embedded store for one node: a write-ahead log for durability, an in-memory
//! overlay of what the log holds, and sled as the checkpointed home of every record.
//!
//! Why not write each batch into sled directly: a sled insert costs ~8–15 µs of CPU
//! (measured here, see BENCHMARKS.md), so an alert storm would be bounded by sled at a
//! few tens of thousands of writes per second. Instead a batch is appended to the log
//! (`wal`) and, once a sync (one fdatasync for every batch written before it) has made
//! it durable, applied to the overlay; a checkpoint (in the background, on a timer or
//! when the overlay grows) writes the overlay's latest version of each record into
//! sled once, however often it changed, flushes sled, and deletes the log segments it
//! covered. Reads look in the overlay first, then in sled. On open the log is replayed
//! into the overlay.
//!
//! sled trees: `alerts` (fingerprint → content), `alert_state` (fingerprint → state),
//! `incidents` (id → incident),
//! `incident_keys` (correlation key → latest incident id), `incident_alerts`
//! (id ++ checkpoint → the fingerprints linked to the incident in that checkpoint),
//! `audit` (seq → entry), `audit_index` (record ++ 0 ++ checkpoint → the seqs of the
//! record's entries in that checkpoint), `flapping` (ids of flapping incidents) and
//! `meta` (schema version, incident counter,
//! audit chain head and checkpoint counter as of the last checkpoint). Links and index
//! entries are packed per record and checkpoint: an alert storm adds one sled record
//! per touched incident and checkpoint, not one per alert (each sled insert costs a
//! node rewrite). A checkpoint that dies half-way is repaired by replaying the log,
//! whose segments are only deleted after sled is flushed; a replayed checkpoint writes
//! its packed lists again, under the same key or a later one, and reads take the union.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use sled::Tree;

use super::hot::HotStates;
use super::records::{
    decode, encode, encode_into, AlertStateV1, AlertV1, AuditEntryV1, ChangeV1, DeliveryV1,
    IncidentV1, IncidentV1Ref, OutboxEventV1, ProblemV1, SilenceV1, WalBatchV1,
};
use super::wal::{Wal, WalError};
use super::{BackupReport, Batch, IncidentFilter, Stats, Store, StoreError, Ticket};
use crate::alerts::{Alert, AlertRecord, AlertState, AlertStatus};
use crate::audit::{AuditEntry, GENESIS_HASH};
use crate::changes::{ChangeId, ChangeRecord};
use crate::config::StoreSettings;
use crate::incidents::{Incident, IncidentId};
use crate::outbox::{Delivery, DeliveryState, Event as OutboxEvent};
use crate::problems::{Problem, ProblemId};
use crate::silences::{Silence, SilenceId};

const SCHEMA_KEY: &[u8] = b"schema_version";
const SCHEMA_VERSION: u64 = 10;
const NEXT_INCIDENT: &[u8] = b"next_incident";
const CHECKPOINT_SEQ: &[u8] = b"checkpoint_seq";
const NEXT_PROBLEM: &[u8] = b"next_problem";
const NEXT_CHANGE: &[u8] = b"next_change";
const AUDIT_HEAD: &[u8] = b"audit_head";
/// A log segment this large starts a checkpoint early (bounds replay time when the
/// same alerts repeat, which does not grow the overlay).
const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Resolved alerts unseen for this long leave the in-memory state cache (they stay in
/// sled and are read from there if they come back).
const CLEAN_RESOLVED_SECS: i64 = 3600;
/// Commits wait for a checkpoint when the overlay holds this many times the
/// checkpoint threshold (bounded memory under any load).
const HARD_LIMIT_FACTOR: usize = 4;
/// A checkpoint starts only with this many times the log's bytes free on the data
/// dir's filesystem, plus [`CHECKPOINT_RESERVE`] (and a segment's preallocation when
/// there is no spare): sled turns its first failed write into an error every later
/// write returns until it is opened again (sled 0.34 `Config::global_error`, reset
/// only in `PageCache::start`), so sled must not be the one to meet a full disk. The
/// log, which can refuse one write and take the next, meets it instead.
const CHECKPOINT_SPACE_FACTOR: u64 = 2;
const CHECKPOINT_RESERVE: u64 = 16 * 1024 * 1024;
/// Free space, beyond twice the snapshots sled has now, that a store being dropped
/// needs before it opens sled again to write a new snapshot ([`Inner::snapshot_sled`]).
const SNAPSHOT_RESERVE: u64 = 64 * 1024 * 1024;
/// A file of reserved blocks in the data dir, given up to open the store on a full disk
/// (sled writes when it opens, and fails there with ENOSPC): the daemon then starts,
/// serves reads and answers writes 503 until there is room, instead of not starting.
/// Made again (`fallocate`, no data written) once the filesystem has room for it
/// twice over. CockroachDB keeps an "emergency ballast" file for the same reason.
/// Its size is `[store] ballast_mb` (0: none).
const BALLAST: &str = "ballast";

/// Makes the ballast file of `bytes` when it is missing (or of another size) and the
/// filesystem has room for it twice over; removes it when `bytes` is 0. `Ok(false)`
/// when it is left missing.
fn ensure_ballast(dir: &Path, bytes: u64) -> std::io::Result<bool> {
    let path = dir.join(BALLAST);
    match std::fs::metadata(&path) {
        Ok(m) if m.len() == bytes && bytes > 0 => return Ok(true),
        Ok(_) => std::fs::remove_file(&path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if bytes == 0 {
        return Ok(true);
    }
    if free_bytes(dir)? < 2 * bytes {
        return Ok(false);
    }
    let file = std::fs::File::create(&path)?;
    let made = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes)
        .map_err(std::io::Error::from)
        .and_then(|_| file.sync_all());
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(true)
}

/// A key for a message: text when it is text, hex otherwise.
fn printable(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
        _ => hex::encode(key),
    }
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

fn wal_err(e: WalError) -> StoreError {
    match e {
        WalError::Damaged { .. } => StoreError::Damaged(e.to_string()),
        WalError::Io { .. } | WalError::NotWritten { .. } => StoreError::Io(e.to_string()),
    }
}

/// Refuses a data dir the daemon could not fully read and write, naming the first
/// path that is not (sled's own error names none): the dir, `sled/` and `wal/` and
/// every file in them. What does not exist yet is created later.
fn check_access(dir: &Path) -> Result<(), StoreError> {
    use rustix::fs::{access, Access};
    let refuse = |path: &Path, what: &str, e: &dyn std::fmt::Display| {
        StoreError::Io(format!(
            "cannot open store in {}: {} {what}: {e} (the data dir must be readable and \
             writable by the user triaged runs as)",
            dir.display(),
            path.display()
        ))
    };
    let dir_ok = |path: &Path| -> Result<bool, StoreError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(refuse(path, "cannot be read", &e)),
            Ok(m) if !m.is_dir() => Err(refuse(path, "is not a directory", &"")),
            Ok(_) => access(path, Access::READ_OK | Access::WRITE_OK | Access::EXEC_OK)
                .map(|_| true)
                .map_err(|e| refuse(path, "is not readable and writable", &e)),
        }
    };
    if !dir_ok(dir)? {
        return Ok(());
    }
    for sub in ["sled", "wal"] {
        let sub = dir.join(sub);
        if !dir_ok(&sub)? {
            continue;
        }
        let entries = std::fs::read_dir(&sub).map_err(|e| refuse(&sub, "cannot be listed", &e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| refuse(&sub, "cannot be listed", &e))?
                .path();
            if path.is_dir() {
                dir_ok(&path)?;
            } else {
                access(&path, Access::READ_OK | Access::WRITE_OK)
                    .map_err(|e| refuse(&path, "is not readable and writable", &e))?;
            }
        }
    }
    Ok(())
}

/// Free bytes on the filesystem holding `dir` for an unprivileged writer.
pub(crate) fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

fn lock_poisoned() -> StoreError {
    StoreError::Io("a store thread panicked while holding a lock".into())
}

fn u64_of(tree: &'static str, key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt {
            tree,
            key: String::from_utf8_lossy(key).into_owned(),
            message: format!("expected an 8-byte number, got {} bytes", bytes.len()),
        })?;
    Ok(u64::from_be_bytes(arr))
}

fn decoded<V, T>(tree: &'static str, key: &[u8], bytes: &[u8]) -> Result<T, StoreError>
where
    V: serde::de::DeserializeOwned + Into<T>,
{
    decode::<V>(bytes)
        .map(Into::into)
        .map_err(|message| StoreError::Corrupt {
            tree,
            key: String::from_utf8_lossy(key).into_owned(),
            message,
        })
}

/// Writes `items` into `tree` in key order, one insert each. Not `apply_batch`: sled
/// 0.34 rolls its IO buffer before and seals it after every batch (`PageCache::pin_log`,
/// "rolling the io buffer before AND after"), so batches of 64 made a small write on
/// sled's IO threads per batch: ~6 000 thread wake-ups a second under load, ~300 with
/// single inserts, and 4 % less CPU (BENCHMARKS.md, session 7). Nothing needs the
/// records of a checkpoint to land together: the log keeps all of them until the
/// checkpoint has flushed sled, and a checkpoint cut short is written again from it.
/// Each insert holds its own epoch guard, so the pages it replaces are freed as it
/// goes: a batch keeps them all until it ends (200k random 300-byte inserts peaked at
/// 527 MB allocated in batches of 1000, BENCHMARKS.md).
fn put_sorted<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    tree: &Tree,
    mut items: Vec<(K, V)>,
) -> Result<(), StoreError> {
    items.sort_unstable_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    for (k, v) in &items {
        tree.insert(k.as_ref(), v.as_ref()).map_err(io)?;
    }
    Ok(())
}

/// Opens sled, waiting up to `wait` for the directory lock: sled releases it from a
/// background thread after the previous owner (a store dropped in this process) has
/// gone; the daemon waits 5 s.
fn open_sled_within(config: &sled::Config, wait: Duration) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match config.open() {
            // sled reports the lock as ErrorKind::Other with the OS error in the text
            // (sled 0.34 config.rs, "could not acquire lock on …").
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// `deliveries` and `delivery_queue` key: seq (big-endian) ++ sink.
fn delivery_key(seq: u64, sink: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + sink.len());
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(sink.as_bytes());
    k
}

fn state_byte(state: DeliveryState) -> u8 {
    match state {
        DeliveryState::Pending => 0,
        DeliveryState::Delivered => 1,
        DeliveryState::Dead => 2,
    }
}

fn log_offset_key(watcher: &str, file: &str) -> Vec<u8> {
    let mut k = watcher.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(file.as_bytes());
    k
}

fn index_prefix(record: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(record.len() + 9);
    k.extend_from_slice(record.as_bytes());
    k.push(0);
    k
}

fn index_key(record: &str, checkpoint: u64) -> Vec<u8> {
    let mut k = index_prefix(record);
    k.extend_from_slice(&checkpoint.to_be_bytes());
    k
}

fn link_key(id: IncidentId, checkpoint: u64) -> Vec<u8> {
    let mut k = id.0.to_be_bytes().to_vec();
    k.extend_from_slice(&checkpoint.to_be_bytes());
    k
}

/// A timestamp as 8 sortable bytes: nanoseconds since the epoch, offset so that
/// earlier times sort first (saturating outside ±292 years).
fn ns_key(t: jiff::Timestamp) -> [u8; 8] {
    let ns = i64::try_from(t.as_nanosecond()).unwrap_or(if t.as_second() < 0 {
        i64::MIN
    } else {
        i64::MAX
    });
    ((ns as u64) ^ (1 << 63)).to_be_bytes()
}

fn change_index_key(c: &ChangeRecord) -> Vec<u8> {
    let mut k = c.service.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&ns_key(c.window_end));
    k.extend_from_slice(&c.id.0.to_be_bytes());
    k
}

/// Records with ids after `after`, oldest first, `limit` at most: the overlays'
/// versions (`overlay`, by id, all after `after`) over a sled tree keyed by
/// big-endian ids.
fn ascending_page<T>(
    tree: &Tree,
    overlay: BTreeMap<u64, T>,
    after: u64,
    limit: usize,
    decode: impl Fn(&[u8], &[u8]) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let sled = tree.range(after.saturating_add(1).to_be_bytes()..);
    merge_by_id(sled, overlay.into_iter(), true, limit, decode)
}

/// Records newest first (by id, descending), `limit` at most: the overlays' versions
/// (`overlay`, by id) over a sled tree keyed by big-endian ids.
fn newest_first<T>(
    tree: &Tree,
    overlay: BTreeMap<u64, T>,
    limit: usize,
    decode: impl Fn(&[u8], &[u8]) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    merge_by_id(
        tree.iter().rev(),
        overlay.into_iter().rev(),
        false,
        limit,
        decode,
    )
}

/// Merges records read from sled and from the overlays, both in the same id order
/// (`ascending` or not); the overlay's version of an id wins.
fn merge_by_id<T>(
    sled: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    overlay: impl Iterator<Item = (u64, T)>,
    ascending: bool,
    limit: usize,
    decode: impl Fn(&[u8], &[u8]) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut from_sled = sled.peekable();
    let mut from_overlay = overlay.peekable();
    while out.len() < limit {
        let sled_id = match from_sled.peek() {
            Some(Ok((k, _))) => Some(u64_of("records", k, k)?),
            Some(Err(_)) => return Err(io(from_sled.next().expect("peeked").unwrap_err())),
            None => None,
        };
        let overlay_id = from_overlay.peek().map(|(id, _)| *id);
        match (sled_id, overlay_id) {
            (None, None) => break,
            (Some(s), Some(o)) if (ascending && o <= s) || (!ascending && o >= s) => {
                if o == s {
                    from_sled.next();
                }
                out.push(from_overlay.next().expect("peeked").1);
            }
            (None, Some(_)) => out.push(from_overlay.next().expect("peeked").1),
            (Some(_), _) => {
                let (k, v) = from_sled.next().expect("peeked").map_err(io)?;
                out.push(decode(&k, &v)?);
            }
        }
    }
    Ok(out)
}

/// What one commit changed, in memory form: the unit of the log and of the overlay.
struct Applied {
    /// Encoded `AlertV1` records by fingerprint: encoded once, kept so in memory (a
    /// third of the size of an `Alert`), written to sled as they are.
    contents: Vec<(String, Vec<u8>)>,
    states: Vec<(String, AlertState)>,
    incidents: Vec<Incident>,
    keys: Vec<(String, IncidentId)>,
    links: Vec<(IncidentId, String)>,
    audit: Vec<EncodedEntry>,
    next_incident: u64,
    problems: Vec<Problem>,
    problem_keys: Vec<(String, ProblemId)>,
    next_problem: u64,
    changes: Vec<ChangeRecord>,
    change_refs: Vec<(String, ChangeId)>,
    next_change: u64,
    outbox: Vec<OutboxEvent>,
    /// The new events' deliveries and changed ones.
    deliveries: Vec<Delivery>,
    silences: Vec<Silence>,
    log_offsets: Vec<((String, String), u64)>,
}

/// An audit entry kept encoded (`AuditEntryV1`) in memory and in the log: a third of
/// the size of an `AuditEntry` with its seven strings.
#[derive(Clone)]
struct EncodedEntry {
    seq: u64,
    record: String,
    hash: String,
    bytes: Vec<u8>,
}

impl EncodedEntry {
    fn new(e: &AuditEntry) -> Self {
        EncodedEntry {
            seq: e.seq,
            record: e.change.record.clone(),
            hash: e.hash.clone(),
            bytes: encode(&AuditEntryV1::from(e)),
        }
    }
}

/// An `Applied` batch as the log stores it: serialized exactly as its `WalBatchV1`
/// (the same fields in the same order; postcard writes no names), from borrowed
/// records, without the copies building a `WalBatchV1` takes.
struct WalView<'a>(&'a Applied);

/// A sequence serialized from an iterator made on demand.
struct SeqOf<F>(F);

impl<F, I> serde::Serialize for SeqOf<F>
where
    F: Fn() -> I,
    I: ExactSizeIterator,
    I::Item: serde::Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

impl serde::Serialize for WalView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let a = self.0;
        let mut w = serializer.serialize_struct("WalBatchV1", 18)?;
        w.serialize_field("contents", &a.contents)?;
        w.serialize_field(
            "states",
            &SeqOf(|| a.states.iter().map(|(fp, st)| (fp, AlertStateV1::from(st)))),
        )?;
        w.serialize_field(
            "incidents",
            &SeqOf(|| a.incidents.iter().map(IncidentV1Ref::from)),
        )?;
        w.serialize_field("keys", &SeqOf(|| a.keys.iter().map(|(k, id)| (k, id.0))))?;
        w.serialize_field(
            "links",
            &SeqOf(|| a.links.iter().map(|(id, fp)| (id.0, fp))),
        )?;
        w.serialize_field("audit", &SeqOf(|| a.audit.iter().map(|e| &e.bytes)))?;
        w.serialize_field("next_incident", &a.next_incident)?;
        w.serialize_field(
            "problems",
            &SeqOf(|| a.problems.iter().map(ProblemV1::from)),
        )?;
        w.serialize_field(
            "problem_keys",
            &SeqOf(|| a.problem_keys.iter().map(|(k, id)| (k, id.0))),
        )?;
        w.serialize_field("next_problem", &a.next_problem)?;
        w.serialize_field("changes", &SeqOf(|| a.changes.iter().map(ChangeV1::from)))?;
        w.serialize_field(
            "change_refs",
            &SeqOf(|| a.change_refs.iter().map(|(k, id)| (k, id.0))),
        )?;
        w.serialize_field("next_change", &a.next_change)?;
        w.serialize_field(
            "outbox",
            &SeqOf(|| a.outbox.iter().map(OutboxEventV1::from)),
        )?;
        w.serialize_field(
            "deliveries",
            &SeqOf(|| a.deliveries.iter().map(DeliveryV1::from)),
        )?;
        w.serialize_field(
            "silences",
            &SeqOf(|| a.silences.iter().map(SilenceV1::from)),
        )?;
        w.serialize_field("log_offsets", &a.log_offsets)?;
        w.end()
    }
}

impl Applied {
    /// The batch as a `WalBatchV1` (what the log's records decode to).
    #[cfg(test)]
    fn to_wal(&self) -> WalBatchV1 {
        WalBatchV1 {
            contents: self.contents.clone(),
            states: self
                .states
                .iter()
                .map(|(fp, s)| (fp.clone(), s.into()))
                .collect(),
            incidents: self
                .incidents
                .iter()
                .map(|i| decode(&encode(&IncidentV1Ref::from(i))).expect("an IncidentV1"))
                .collect(),
            keys: self.keys.iter().map(|(k, id)| (k.clone(), id.0)).collect(),
            links: self
                .links
                .iter()
                .map(|(id, fp)| (id.0, fp.clone()))
                .collect(),
            audit: self.audit.iter().map(|e| e.bytes.clone()).collect(),
            next_incident: self.next_incident,
            problems: self.problems.iter().map(ProblemV1::from).collect(),
            problem_keys: self
                .problem_keys
                .iter()
                .map(|(k, id)| (k.clone(), id.0))
                .collect(),
            next_problem: self.next_problem,
            changes: self.changes.iter().map(ChangeV1::from).collect(),
            change_refs: self
                .change_refs
                .iter()
                .map(|(k, id)| (k.clone(), id.0))
                .collect(),
            next_change: self.next_change,
            outbox: self.outbox.iter().map(OutboxEventV1::from).collect(),
            deliveries: self.deliveries.iter().map(DeliveryV1::from).collect(),
            silences: self.silences.iter().map(SilenceV1::from).collect(),
            log_offsets: self.log_offsets.clone(),
        }
    }

    fn from_wal(w: WalBatchV1) -> Result<Applied, String> {
        let mut audit = Vec::with_capacity(w.audit.len());
        for bytes in w.audit {
            let e: AuditEntry = decode::<AuditEntryV1>(&bytes)?.into();
            audit.push(EncodedEntry {
                seq: e.seq,
                record: e.change.record,
                hash: e.hash,
                bytes,
            });
        }
        Ok(Applied {
            contents: w.contents,
            states: w.states.into_iter().map(|(fp, s)| (fp, s.into())).collect(),
            incidents: w.incidents.into_iter().map(Into::into).collect(),
            keys: w
                .keys
                .into_iter()
                .map(|(k, id)| (k, IncidentId(id)))
                .collect(),
            links: w
                .links
                .into_iter()
                .map(|(id, fp)| (IncidentId(id), fp))
                .collect(),
            audit,
            next_incident: w.next_incident,
            problems: w.problems.into_iter().map(Into::into).collect(),
            problem_keys: w
                .problem_keys
                .into_iter()
                .map(|(k, id)| (k, ProblemId(id)))
                .collect(),
            next_problem: w.next_problem,
            changes: w.changes.into_iter().map(Into::into).collect(),
            change_refs: w
                .change_refs
                .into_iter()
                .map(|(k, id)| (k, ChangeId(id)))
                .collect(),
            next_change: w.next_change,
            outbox: w.outbox.into_iter().map(Into::into).collect(),
            deliveries: w.deliveries.into_iter().map(Into::into).collect(),
            silences: w
                .silences
                .into_iter()
                .map(Silence::try_from)
                .collect::<Result<_, _>>()?,
            log_offsets: w.log_offsets,
        })
    }
}

/// Records committed to the log and not yet checkpointed into sled: the newest
/// version of each.
#[derive(Default, Clone)]
struct Overlay {
    contents: HashMap<String, Vec<u8>>,
    states: HashMap<String, AlertState>,
    incidents: BTreeMap<IncidentId, Incident>,
    keys: HashMap<String, IncidentId>,
    links: BTreeSet<(IncidentId, String)>,
    audit: BTreeMap<u64, EncodedEntry>,
    problems: BTreeMap<ProblemId, Problem>,
    problem_keys: HashMap<String, ProblemId>,
    changes: BTreeMap<ChangeId, ChangeRecord>,
    change_refs: HashMap<String, ChangeId>,
    outbox: BTreeMap<u64, OutboxEvent>,
    deliveries: BTreeMap<(u64, String), Delivery>,
    silences: BTreeMap<SilenceId, Silence>,
    log_offsets: HashMap<(String, String), u64>,
}

impl Overlay {
    fn len(&self) -> usize {
        self.contents.len()
            + self.states.len()
            + self.incidents.len()
            + self.keys.len()
            + self.links.len()
            + self.audit.len()
            + self.problems.len()
            + self.problem_keys.len()
            + self.changes.len()
            + self.change_refs.len()
            + self.outbox.len()
            + self.deliveries.len()
            + self.silences.len()
            + self.log_offsets.len()
    }

    fn apply(&mut self, a: Applied) {
        self.contents.extend(a.contents);
        self.states.extend(a.states);
        for i in a.incidents {
            self.incidents.insert(i.id, i);
        }
        self.keys.extend(a.keys);
        self.links.extend(a.links);
        for e in a.audit {
            self.audit.insert(e.seq, e);
        }
        for p in a.problems {
            self.problems.insert(p.id, p);
        }
        self.problem_keys.extend(a.problem_keys);
        for c in a.changes {
            self.changes.insert(c.id, c);
        }
        self.change_refs.extend(a.change_refs);
        for e in a.outbox {
            self.outbox.insert(e.seq, e);
        }
        for d in a.deliveries {
            self.deliveries.insert((d.seq, d.sink.clone()), d);
        }
        for x in a.silences {
            self.silences.insert(x.id, x);
        }
        self.log_offsets.extend(a.log_offsets);
    }

    /// `newer` laid over `self`.
    fn absorb(&mut self, newer: Overlay) {
        self.contents.extend(newer.contents);
        self.states.extend(newer.states);
        self.incidents.extend(newer.incidents);
        self.keys.extend(newer.keys);
        self.links.extend(newer.links);
        self.audit.extend(newer.audit);
        self.problems.extend(newer.problems);
        self.problem_keys.extend(newer.problem_keys);
        self.changes.extend(newer.changes);
        self.change_refs.extend(newer.change_refs);
        self.outbox.extend(newer.outbox);
        self.deliveries.extend(newer.deliveries);
        self.silences.extend(newer.silences);
        self.log_offsets.extend(newer.log_offsets);
    }
}

struct State {
    live: Overlay,
    /// What a running checkpoint is writing into sled; read after `live`.
    frozen: Option<Arc<Overlay>>,
    /// Alert states already in sled, kept in memory for correlation's lookups: every
    /// firing alert and recently seen resolved ones. Read after the overlays.
    clean: HotStates,
    /// Hashes of every fingerprint the store holds: a miss here means a new alert, with
    /// no sled read (sled reads on the correlation thread are slow under checkpoints).
    known: HashSet<u64>,
    /// False until the background scan has put every stored fingerprint in `known`.
    known_complete: bool,
    /// Every correlation key with its latest incident (keys are few: one per group).
    keys: HashMap<String, IncidentId>,
    /// Open incidents already in sled, cached for correlation.
    open: HashMap<IncidentId, Incident>,
    next_incident: u64,
    /// Every problem key with its latest problem (few).
    problem_keys: HashMap<String, ProblemId>,
    next_problem: u64,
    next_change: u64,
    audit_seq: u64,
    audit_hash: String,
    /// The last outbox event's seq.
    outbox_seq: u64,
    /// The highest silence id stored.
    last_silence: u64,
}

fn fingerprint_hash(fingerprint: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(fingerprint)
}

impl State {
    /// Looks a value up in the live overlay, then in the frozen one.
    fn find<T: Clone>(&self, get: impl Fn(&Overlay) -> Option<&T>) -> Option<T> {
        get(&self.live)
            .or_else(|| self.frozen.as_deref().and_then(&get))
            .cloned()
    }

    /// Applies a committed (or replayed) batch.
    fn apply(&mut self, applied: Applied) {
        for (fp, _) in &applied.states {
            self.known.insert(fingerprint_hash(fp));
        }
        self.keys.extend(applied.keys.iter().cloned());
        self.next_incident = self.next_incident.max(applied.next_incident);
        self.problem_keys
            .extend(applied.problem_keys.iter().cloned());
        self.next_problem = self.next_problem.max(applied.next_problem);
        self.next_change = self.next_change.max(applied.next_change);
        if let Some(last) = applied.outbox.last() {
            self.outbox_seq = self.outbox_seq.max(last.seq);
        }
        for x in &applied.silences {
            self.last_silence = self.last_silence.max(x.id.0);
        }
        if let Some(last) = applied.audit.last() {
            if last.seq > self.audit_seq {
                self.audit_seq = last.seq;
                self.audit_hash.clone_from(&last.hash);
            }
        }
        self.live.apply(applied);
    }

    fn overlays(&self) -> impl Iterator<Item = &Overlay> {
        self.frozen
            .as_deref()
            .into_iter()
            .chain(std::iter::once(&self.live))
    }
}

struct Trees {
    alerts: Tree,
    alert_state: Tree,
    incidents: Tree,
    keys: Tree,
    incident_alerts: Tree,
    audit: Tree,
    audit_index: Tree,
    /// Incident id → nothing, for every flapping incident as of the last checkpoint.
    flapping: Tree,
    problems: Tree,
    problem_keys: Tree,
    changes: Tree,
    /// External id → change id.
    change_refs: Tree,
    /// service ++ 0 ++ window end (ns, big-endian) ++ change id → nothing.
    change_index: Tree,
    /// Incident id → nothing, for every open incident as of the last checkpoint.
    open_incidents: Tree,
    /// seq → outbox event.
    outbox: Tree,
    /// seq ++ sink → delivery.
    deliveries: Tree,
    /// seq ++ sink → state byte, for every delivery not delivered (pending or dead).
    delivery_queue: Tree,
    /// Silence id → silence.
    silences: Tree,
    /// watcher ++ 0 ++ file fingerprint → offset (u64, big-endian).
    log_offsets: Tree,
    meta: Tree,
}

/// The database and its trees, owned by [`Inner`] until it is dropped.
struct Sled {
    db: sled::Db,
    t: Trees,
}

/// The log and the head of what has been appended to it (durable or not yet).
struct Log {
    wal: Wal,
    next_incident: u64,
    next_problem: u64,
    next_change: u64,
    audit_seq: u64,
    audit_hash: String,
    outbox_seq: u64,
    /// The last ticket handed out.
    ticket: Ticket,
    /// Set after a sync of the log (or the undo of a failed write) failed, or sled
    /// failed a write: what was written since is in an unknown state, so every later
    /// write is refused until a restart (which replays what did reach the disk).
    failed: Option<String>,
    /// Why the last write was refused with the log intact (no space): cleared by the
    /// next write that succeeds.
    refused: Option<String>,
    /// Why the last checkpoint did not start (no space): cleared by the next one
    /// that completes.
    blocked: Option<String>,
    /// The buffer batches are encoded in, kept between appends up to
    /// [`SCRATCH_KEPT_BYTES`].
    scratch: Vec<u8>,
}

/// The encoding buffer's capacity kept for the next append (a storm's big batch does
/// not pin its buffer).
const SCRATCH_KEPT_BYTES: usize = 1 << 20;

impl Log {
    fn check(&self) -> Result<(), StoreError> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(StoreError::Io(format!(
                "the write-ahead log failed earlier ({why}); restart triaged"
            ))),
        }
    }

    fn fail(&mut self, e: WalError) -> StoreError {
        let e = wal_err(e);
        self.failed = Some(e.to_string());
        e
    }
}

struct Inner {
    /// The data dir (its filesystem's free space is checked before a checkpoint).
    dir: PathBuf,
    /// The ballast file's size (0: none).
    ballast_bytes: u64,
    /// sled's configuration, to open it again when the store is dropped.
    sled_config: sled::Config,
    /// Taken only when the store is dropped ([`Inner::snapshot_sled`]).
    sled: Option<Sled>,
    /// Set once a checkpoint has written to sled since it was opened.
    sled_written: std::sync::atomic::AtomicBool,
    log: Mutex<Log>,
    /// Appended batches not yet known durable, oldest first; applied to the overlay
    /// by the sync that covers them. Lock order: `log`, `pending`, `state`.
    pending: Mutex<std::collections::VecDeque<(Ticket, Applied)>>,
    /// The highest ticket applied to the overlay.
    durable: std::sync::atomic::AtomicU64,
    /// One log write at a time (a sync's, or a rotation's). Lock order: `syncing`,
    /// then `log`.
    syncing: Mutex<()>,
    state: RwLock<State>,
    /// Held for the whole of a checkpoint: one at a time.
    checkpointing: Mutex<()>,
    max_records: usize,
    wake: SyncSender<Signal>,
    /// Set when the store is dropped: the index thread stops early.
    stopping: std::sync::atomic::AtomicBool,
    checkpoints_ok: std::sync::atomic::AtomicU64,
    checkpoints_failed: std::sync::atomic::AtomicU64,
    /// f64 seconds, as bits.
    last_checkpoint_secs_bits: std::sync::atomic::AtomicU64,
    /// The number of the next checkpoint (keys of the packed links and index entries).
    checkpoint_seq: std::sync::atomic::AtomicU64,
    /// Makes the next checkpoint's sled writes fail, as sled's do once it met an I/O
    /// error (tests only: sled's own failpoints are not in its published build).
    #[cfg(test)]
    fail_sled_writes: std::sync::atomic::AtomicBool,
}

/// What the checkpoint thread is told.
enum Signal {
    /// The overlay or the log grew past a threshold: checkpoint now.
    Grown,
    Stop,
}

pub struct SledStore {
    inner: Arc<Inner>,
    checkpointer: Option<JoinHandle<()>>,
    indexer: Option<JoinHandle<()>>,
}

impl SledStore {
    /// Opens (or creates) the store in `settings.data_dir`: sled in `sled/`, the log in
    /// `wal/`, replayed into the overlay. A directory written by a newer schema, or a
    /// damaged log, is refused.
    pub fn open(settings: &StoreSettings) -> Result<SledStore, StoreError> {
        SledStore::open_within(settings, Duration::from_secs(5))
    }

    /// `open`, waiting at most `wait` for the directory lock (zero for the offline
    /// commands: a lock held by another process is not released by waiting).
    pub fn open_within(settings: &StoreSettings, wait: Duration) -> Result<SledStore, StoreError> {
        let dir = &settings.data_dir;
        check_access(dir)?;
        // Before sled tries: a sled open that fails for want of space can leave a
        // partial snapshot behind that an immediate second open takes for damage.
        let ballast = dir.join(BALLAST);
        let held = std::fs::metadata(&ballast).map_or(0, |m| m.len());
        if held > 0 && free_bytes(dir).is_ok_and(|f| f < held.max(settings.ballast_bytes)) {
            tracing::warn!(
                free_bytes = free_bytes(dir).unwrap_or(0),
                "the disk is full: giving up the ballast file to open the store"
            );
            std::fs::remove_file(&ballast)
                .map_err(|e| StoreError::Io(format!("cannot remove {}: {e}", ballast.display())))?;
        }
        let store = SledStore::open_once(settings, wait)?;
        match ensure_ballast(dir, settings.ballast_bytes) {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "too little free space in {} for the ballast file; made again once there is room",
                dir.display()
            ),
            Err(e) => tracing::warn!(error = %e, "cannot make the ballast file"),
        }
        Ok(store)
    }

    fn open_once(settings: &StoreSettings, wait: Duration) -> Result<SledStore, StoreError> {
        let dir = &settings.data_dir;
        let config = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(settings.cache_capacity_bytes);
        let db = open_sled_within(&config, wait).map_err(|e| match e {
            sled::Error::Corruption { .. } => StoreError::Damaged(format!(
                "the database in {} cannot be read back ({e}); restore the data dir \
                 from a backup (README: Backup)",
                dir.join("sled").display()
            )),
            e => StoreError::Io(format!("cannot open store in {}: {e}", dir.display())),
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(io);
        let t = Trees {
            alerts: tree("alerts")?,
            alert_state: tree("alert_state")?,
            incidents: tree("incidents")?,
            keys: tree("incident_keys")?,
            incident_alerts: tree("incident_alerts")?,
            audit: tree("audit")?,
            audit_index: tree("audit_index")?,
            flapping: tree("flapping")?,
            problems: tree("problems")?,
            problem_keys: tree("problem_keys")?,
            changes: tree("changes")?,
            change_refs: tree("change_refs")?,
            change_index: tree("change_index")?,
            open_incidents: tree("open_incidents")?,
            outbox: tree("outbox")?,
            deliveries: tree("deliveries")?,
            delivery_queue: tree("delivery_queue")?,
            silences: tree("silences")?,
            log_offsets: tree("log_offsets")?,
            meta: tree("meta")?,
        };
        match t.meta.get(SCHEMA_KEY).map_err(io)? {
            None => {
                t.meta
                    .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(io)?;
                db.flush().map_err(io)?;
            }
            Some(v) => {
                let version = u64_of("meta", SCHEMA_KEY, &v)?;
                if version != SCHEMA_VERSION {
                    return Err(StoreError::Corrupt {
                        tree: "meta",
                        key: "schema_version".into(),
                        message: format!(
                            "store schema {version}, this triaged reads schema {SCHEMA_VERSION}"
                        ),
                    });
                }
            }
        }
        let next_incident = match t.meta.get(NEXT_INCIDENT).map_err(io)? {
            None => 1,
            Some(v) => u64_of("meta", NEXT_INCIDENT, &v)?,
        };
        let next_problem = match t.meta.get(NEXT_PROBLEM).map_err(io)? {
            None => 1,
            Some(v) => u64_of("meta", NEXT_PROBLEM, &v)?,
        };
        let next_change = match t.meta.get(NEXT_CHANGE).map_err(io)? {
            None => 1,
            Some(v) => u64_of("meta", NEXT_CHANGE, &v)?,
        };
        let checkpoint_seq = match t.meta.get(CHECKPOINT_SEQ).map_err(io)? {
            None => 1,
            Some(v) => u64_of("meta", CHECKPOINT_SEQ, &v)?,
        };
        let (audit_seq, audit_hash) = match t.meta.get(AUDIT_HEAD).map_err(io)? {
            None => (0, GENESIS_HASH.to_string()),
            Some(b) => (
                u64_of("meta", AUDIT_HEAD, &b)?,
                String::from_utf8_lossy(&b[8..]).into_owned(),
            ),
        };

        let mut state = State {
            live: Overlay::default(),
            frozen: None,
            clean: HotStates::default(),
            known: HashSet::new(),
            known_complete: false,
            keys: HashMap::new(),
            open: HashMap::new(),
            next_incident,
            problem_keys: HashMap::new(),
            next_problem,
            next_change,
            audit_seq,
            audit_hash,
            outbox_seq: match t.outbox.last().map_err(io)? {
                None => 0,
                Some((k, _)) => u64_of("outbox", &k, &k)?,
            },
            last_silence: match t.silences.last().map_err(io)? {
                None => 0,
                Some((k, _)) => u64_of("silences", &k, &k)?,
            },
        };
        for kv in t.problem_keys.iter() {
            let (k, v) = kv.map_err(io)?;
            let id = ProblemId(u64_of("problem_keys", &k, &v)?);
            state
                .problem_keys
                .insert(String::from_utf8_lossy(&k).into_owned(), id);
        }
        // Every correlation key in memory now (few); the fingerprint index is built by
        // a background thread so that a large store starts fast.
        for kv in t.keys.iter() {
            let (k, v) = kv.map_err(io)?;
            let id = IncidentId(u64_of("incident_keys", &k, &v)?);
            state
                .keys
                .insert(String::from_utf8_lossy(&k).into_owned(), id);
        }

        let (wal, records) = Wal::open(&dir.join("wal")).map_err(wal_err)?;
        let replayed = records.len();
        for (i, bytes) in records.into_iter().enumerate() {
            let batch = decode::<WalBatchV1>(&bytes).map_err(|message| StoreError::Corrupt {
                tree: "wal",
                key: format!("record {i}"),
                message,
            })?;
            let applied = Applied::from_wal(batch).map_err(|message| StoreError::Corrupt {
                tree: "wal",
                key: format!("record {i}"),
                message,
            })?;
            state.apply(applied);
        }
        if replayed > 0 {
            tracing::info!(
                batches = replayed,
                records = state.live.len(),
                "replayed the write-ahead log"
            );
        }

        let (wake, woken) = mpsc::sync_channel(1);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            ballast_bytes: settings.ballast_bytes,
            sled_config: config,
            sled: Some(Sled { db, t }),
            sled_written: std::sync::atomic::AtomicBool::new(false),
            log: Mutex::new(Log {
                wal,
                next_incident: state.next_incident,
                next_problem: state.next_problem,
                next_change: state.next_change,
                audit_seq: state.audit_seq,
                audit_hash: state.audit_hash.clone(),
                outbox_seq: state.outbox_seq,
                ticket: 0,
                failed: None,
                refused: None,
                blocked: None,
                scratch: Vec::new(),
            }),
            pending: Mutex::new(std::collections::VecDeque::new()),
            durable: std::sync::atomic::AtomicU64::new(0),
            syncing: Mutex::new(()),
            state: RwLock::new(state),
            checkpointing: Mutex::new(()),
            max_records: settings.checkpoint_max_records,
            wake,
            stopping: std::sync::atomic::AtomicBool::new(false),
            checkpoints_ok: std::sync::atomic::AtomicU64::new(0),
            checkpoints_failed: std::sync::atomic::AtomicU64::new(0),
            last_checkpoint_secs_bits: std::sync::atomic::AtomicU64::new(0),
            checkpoint_seq: std::sync::atomic::AtomicU64::new(checkpoint_seq),
            #[cfg(test)]
            fail_sled_writes: std::sync::atomic::AtomicBool::new(false),
        });
        let worker = inner.clone();
        let interval = Duration::from_secs(settings.checkpoint_interval_secs);
        let checkpointer = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                super::background::lower_this_thread();
                worker.checkpoint_loop(woken, interval)
            })
            .map_err(|e| StoreError::Io(format!("cannot start the checkpoint thread: {e}")))?;
        let worker = inner.clone();
        let indexer = std::thread::Builder::new()
            .name("store-index".into())
            .spawn(move || {
                super::background::lower_this_thread();
                if let Err(e) = worker.index_fingerprints() {
                    tracing::error!(error = %e, "cannot index stored alerts; lookups go to sled");
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the index thread: {e}")))?;
        Ok(SledStore {
            inner,
            checkpointer: Some(checkpointer),
            indexer: Some(indexer),
        })
    }

    /// Writes everything the log holds into sled now (also done in the background).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.inner.checkpoint()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.snapshot_sled();
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.indexer.take() {
            let _ = h.join();
        }
        let _ = self.inner.wake.send(Signal::Stop);
        if let Some(h) = self.checkpointer.take() {
            let _ = h.join();
        }
    }
}

impl Inner {
    fn sled(&self) -> &Sled {
        self.sled
            .as_ref()
            .expect("sled stays open until the store is dropped")
    }

    fn t(&self) -> &Trees {
        &self.sled().t
    }

    fn db(&self) -> &sled::Db {
        &self.sled().db
    }

    /// Closes sled and opens it once more, so that the next start does not replay
    /// what this one wrote. sled 0.34 writes its page-table snapshot only while it
    /// opens (`pagecache::snapshot::read_snapshot_or_default`, the only caller of
    /// `advance_snapshot`; `Config::snapshot_after_ops` is a no-op since 0.34): an
    /// open reads every log segment written since the last snapshot, which after
    /// seeding 1M incidents is 2.7 GB and 2.6 s. Done here, on the way out, that
    /// time is spent once at shutdown instead of at the next start, and is bounded by
    /// what this run wrote. Skipped when nothing was written, or when the disk has too
    /// little room for the snapshot (a snapshot cut short by a full disk reads back
    /// as damage).
    fn snapshot_sled(&mut self) {
        let Some(sled) = self.sled.take() else {
            return;
        };
        if !self.sled_written.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let dir = self.dir.join("sled");
        let snapshots: u64 = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("snap."))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let need = snapshots.saturating_mul(2) + self.ballast_bytes.max(SNAPSHOT_RESERVE);
        if free_bytes(&self.dir).is_ok_and(|free| free < need) {
            tracing::warn!(
                need_mib = need >> 20,
                "too little free space to write sled's snapshot; the next start reads sled's log"
            );
            return;
        }
        if let Err(e) = sled.db.flush() {
            tracing::warn!(error = %e, "cannot flush sled; the next start reads sled's log");
            return;
        }
        drop(sled);
        let started = std::time::Instant::now();
        match open_sled_within(&self.sled_config, Duration::from_secs(5)) {
            Ok(db) => {
                drop(db);
                tracing::info!(
                    seconds = started.elapsed().as_secs_f64(),
                    "sled's snapshot written"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open sled again to write its snapshot; the next start reads sled's log");
            }
        }
    }

    fn state(&self) -> Result<std::sync::RwLockReadGuard<'_, State>, StoreError> {
        self.state.read().map_err(|_| lock_poisoned())
    }

    /// Fills `known` with every stored fingerprint and `clean` with the firing alerts'
    /// states, in chunks so that commits are not held up, then marks `known` complete.
    /// Until then a fingerprint missing from memory is looked up in sled.
    fn index_fingerprints(&self) -> Result<(), StoreError> {
        const CHUNK: usize = 4096;
        let started = std::time::Instant::now();
        let mut iter = self.t().alert_state.iter();
        let mut total = 0usize;
        loop {
            if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(());
            }
            let mut chunk = Vec::with_capacity(CHUNK);
            for kv in iter.by_ref().take(CHUNK) {
                let (k, v) = kv.map_err(io)?;
                let fp = String::from_utf8_lossy(&k).into_owned();
                let st: AlertState = decoded::<AlertStateV1, _>("alert_state", &k, &v)?;
                chunk.push((fp, st));
            }
            let done = chunk.len() < CHUNK;
            total += chunk.len();
            let mut state = self.state.write().map_err(|_| lock_poisoned())?;
            for (fp, st) in chunk {
                state.known.insert(fingerprint_hash(&fp));
                if st.status == AlertStatus::Firing && state.find(|o| o.states.get(&fp)).is_none() {
                    state.clean.insert_if_absent(&fp, st);
                }
            }
            if done {
                state.known_complete = true;
                tracing::debug!(
                    alerts = total,
                    seconds = started.elapsed().as_secs_f64(),
                    "stored alerts indexed"
                );
                return Ok(());
            }
        }
    }

    fn checkpoint_loop(&self, signals: mpsc::Receiver<Signal>, interval: Duration) {
        loop {
            match signals.recv_timeout(interval) {
                Ok(Signal::Grown) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
            // sled's IO threads write what the checkpoint inserts: they run at its
            // priority (sled starts them on demand, so look again each time).
            super::background::lower_sled_threads();
            if let Err(e) = self.checkpoint() {
                tracing::error!(error = %e, "checkpoint failed; the write-ahead log keeps the data, will retry");
            }
        }
    }

    /// Applies the pending batches up to `upto` (known durable) to the overlay.
    fn apply_pending(&self, upto: Ticket) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().map_err(|_| lock_poisoned())?;
        let mut st = self.state.write().map_err(|_| lock_poisoned())?;
        while pending.front().is_some_and(|(t, _)| *t <= upto) {
            let (_, applied) = pending.pop_front().expect("checked");
            st.apply(applied);
        }
        self.durable
            .fetch_max(upto, std::sync::atomic::Ordering::SeqCst);
        if st.live.len() >= self.max_records {
            let _ = self.wake.try_send(Signal::Grown);
        }
        Ok(())
    }

    /// Makes every batch appended up to `upto` durable (one fdatasync covers all that
    /// were written before it) and visible to reads.
    fn sync(&self, upto: Ticket) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.durable.load(Ordering::SeqCst) >= upto {
            return Ok(());
        }
        let _one = self.syncing.lock().map_err(|_| lock_poisoned())?;
        if self.durable.load(Ordering::SeqCst) >= upto {
            return Ok(());
        }
        let (write, target) = {
            let mut log = self.log.lock().map_err(|_| lock_poisoned())?;
            log.check()?;
            (log.wal.take_write(), log.ticket)
        };
        // Without the log lock: appends go on while the disk writes. Batches added
        // after `target` are in a later write, applied by a later sync.
        if let Some(Err(e)) = write.map(|w| w.run()) {
            let mut log = self.log.lock().map_err(|_| lock_poisoned())?;
            return Err(log.fail(WalError::Io {
                path: "wal".into(),
                source: e,
            }));
        }
        self.apply_pending(target)
    }

    /// Runs a checkpoint, counting and timing it.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let one = self.checkpointing.lock().map_err(|_| lock_poisoned())?;
        self.checkpoint_held(&one)
    }

    /// [`Inner::checkpoint`] with the checkpoint lock already held.
    fn checkpoint_held(&self, _one: &std::sync::MutexGuard<'_, ()>) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let started = std::time::Instant::now();
        let result = self.checkpoint_once();
        let seconds = started.elapsed().as_secs_f64();
        self.last_checkpoint_secs_bits
            .store(seconds.to_bits(), Relaxed);
        match &result {
            Ok(()) => self.checkpoints_ok.fetch_add(1, Relaxed),
            Err(_) => self.checkpoints_failed.fetch_add(1, Relaxed),
        };
        result
    }

    /// One checkpoint; the caller holds `checkpointing`.
    fn checkpoint_once(&self) -> Result<(), StoreError> {
        let (frozen, kept, counters, audit_seq, audit_hash) = {
            // Rotating writes the log's last records: no other write may run meanwhile
            // (each rewrites the block the one before it ended in).
            let _one = self.syncing.lock().map_err(|_| lock_poisoned())?;
            let mut log = self.log.lock().map_err(|_| lock_poisoned())?;
            log.check()?;
            if let Err(why) = self.room_for_checkpoint(&log.wal) {
                if log.blocked.is_none() {
                    tracing::warn!(reason = %why, "checkpoint put off; the write-ahead log keeps every commit");
                }
                log.blocked = Some(why.clone());
                return Err(StoreError::Io(why));
            }
            // Rotating syncs the log: everything appended is durable, so it joins the
            // overlay before the overlay is frozen (the older segments are cut after
            // the checkpoint, so nothing in them may be left out of it).
            let kept = match log.wal.rotate() {
                Ok(kept) => kept,
                Err(e @ WalError::NotWritten { .. }) => {
                    // No room for the next segment: appends go on in this one.
                    let e = wal_err(e);
                    log.blocked = Some(e.to_string());
                    return Err(e);
                }
                Err(e) => return Err(log.fail(e)),
            };
            let last = log.ticket;
            self.apply_pending(last)?;
            let mut st = self.state.write().map_err(|_| lock_poisoned())?;
            if st.live.len() == 0 {
                // Everything older segments held is in sled already.
                drop(st);
                log.blocked = None;
                log.refused = None;
                log.wal.remove_before(kept).map_err(wal_err)?;
                drop(log);
                self.keep_ballast();
                return Ok(());
            }
            let frozen = Arc::new(std::mem::take(&mut st.live));
            st.frozen = Some(frozen.clone());
            (
                frozen,
                kept,
                (st.next_incident, st.next_problem, st.next_change),
                st.audit_seq,
                st.audit_hash.clone(),
            )
        };
        let checkpoint = self
            .checkpoint_seq
            .load(std::sync::atomic::Ordering::SeqCst);
        let written = self.write_to_sled(&frozen, checkpoint, counters, audit_seq, &audit_hash);
        // `st.frozen` is then the only reference: taking it back moves the overlay
        // (without this drop, `try_unwrap` below failed and copied all of it on every
        // checkpoint).
        drop(frozen);
        let mut st = self.state.write().map_err(|_| lock_poisoned())?;
        let frozen = st
            .frozen
            .take()
            .expect("the frozen overlay stays until the checkpoint ends");
        let mut frozen = Arc::try_unwrap(frozen).unwrap_or_else(|shared| {
            tracing::warn!("the frozen overlay is still shared; copying it");
            (*shared).clone()
        });
        if let Err(e) = written {
            // Keep serving what the log holds: lay the live overlay over the frozen one.
            frozen.absorb(std::mem::take(&mut st.live));
            st.live = frozen;
            drop(st);
            // sled refuses every write after its first failed one until it is opened
            // again, so no later checkpoint could succeed and the overlay would only
            // grow: refuse writes now (503) and say a restart is needed (the
            // watchdog's health check fails, so systemd restarts the service).
            let mut log = self.log.lock().map_err(|_| lock_poisoned())?;
            log.failed = Some(format!(
                "a checkpoint could not write to sled ({e}); sled takes no more writes until it is opened again"
            ));
            return Err(e);
        }
        self.checkpoint_seq
            .store(checkpoint + 1, std::sync::atomic::Ordering::SeqCst);
        // The states are in sled now; keep the hot ones at hand, forget old resolved ones.
        let forget_before = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(CLEAN_RESOLVED_SECS))
            .unwrap_or(jiff::Timestamp::MIN);
        for (fp, state) in frozen.states {
            st.clean.insert(&fp, state);
        }
        st.clean.retain(|status, last_seen| {
            status == AlertStatus::Firing || last_seen >= forget_before
        });
        for (id, inc) in frozen.incidents {
            if inc.status.is_open() {
                st.open.insert(id, inc);
            } else {
                st.open.remove(&id);
            }
        }
        drop(st);
        let mut log = self.log.lock().map_err(|_| lock_poisoned())?;
        if log.blocked.take().is_some() {
            tracing::info!("checkpoints run again");
        }
        // The checkpoint found room, so a write would too: readiness need not wait
        // for one to say so.
        log.refused = None;
        log.wal.remove_before(kept).map_err(wal_err)?;
        drop(log);
        self.keep_ballast();
        Ok(())
    }

    /// After a checkpoint: the ballast file made again if it was given up and there is
    /// room now.
    fn keep_ballast(&self) {
        if let Err(e) = ensure_ballast(&self.dir, self.ballast_bytes) {
            tracing::warn!(error = %e, "cannot make the ballast file");
        }
    }

    /// A consistent copy of everything appended so far, into the new directory `dest`:
    /// under the checkpoint lock (so sled does not change meanwhile) a checkpoint
    /// moves the log into sled, then every sled tree is copied into a new sled
    /// database in `dest/sled` and `dest/backup.json` says what it holds. Reads and
    /// commits go on; checkpoints wait until the copy is done.
    fn backup(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        let one = self.checkpointing.lock().map_err(|_| lock_poisoned())?;
        self.checkpoint_held(&one)?;
        std::fs::create_dir(dest).map_err(|e| {
            StoreError::Io(format!(
                "cannot create the backup directory {}: {e}",
                dest.display()
            ))
        })?;
        let copied = self.copy_sled(dest);
        if copied.is_err() {
            let _ = std::fs::remove_dir_all(dest);
        }
        copied
    }

    fn copy_sled(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Io(format!("backup to {}: {what}: {e}", dest.display()))
        };
        let target = sled::Config::new()
            .path(dest.join("sled"))
            .cache_capacity(16 << 20)
            .open()
            .map_err(|e| failed("cannot create its database", &e))?;
        let mut records = BTreeMap::new();
        for name in self.db().tree_names() {
            let from = self.db().open_tree(&name).map_err(io)?;
            let to = target
                .open_tree(&name)
                .map_err(|e| failed("cannot write", &e))?;
            let mut n = 0u64;
            // Single inserts, as in a checkpoint (`put_sorted`); the copy is flushed
            // once at the end and `backup.json` is written only after that.
            for kv in from.iter() {
                let (k, v) = kv.map_err(io)?;
                to.insert(k, v).map_err(|e| failed("cannot write", &e))?;
                n += 1;
            }
            records.insert(String::from_utf8_lossy(&name).into_owned(), n);
        }
        target.flush().map_err(|e| failed("cannot write", &e))?;
        drop(target);
        let (incidents, audit_entries, audit_head) = {
            let st = self.state()?;
            (st.next_incident - 1, st.audit_seq, st.audit_hash.clone())
        };
        let report = BackupReport {
            path: dest.to_path_buf(),
            created_at: jiff::Timestamp::now(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            incidents,
            audit_entries,
            audit_head,
            records,
        };
        let manifest = dest.join("backup.json");
        let json = serde_json::to_vec_pretty(&report).expect("the report serializes");
        std::fs::write(&manifest, json)
            .and_then(|_| std::fs::File::open(&manifest)?.sync_all())
            .and_then(|_| std::fs::File::open(dest)?.sync_all())
            .map_err(|e| failed("cannot write backup.json", &e))?;
        Ok(report)
    }

    /// `Err` with the reason when the data dir's filesystem has too little free space
    /// for a checkpoint of what the log holds ([`CHECKPOINT_SPACE_FACTOR`]).
    fn room_for_checkpoint(&self, wal: &Wal) -> Result<(), String> {
        let need = wal.log_bytes().saturating_mul(CHECKPOINT_SPACE_FACTOR)
            + CHECKPOINT_RESERVE
            + wal.next_segment_bytes();
        match free_bytes(&self.dir) {
            Ok(free) if free < need => Err(format!(
                "too little free space in {} for a checkpoint: {} MiB free, {} MiB needed \
                 (twice the write-ahead log's {} MiB, a reserve and the next log segment)",
                self.dir.display(),
                free >> 20,
                need.div_ceil(1 << 20),
                wal.log_bytes().div_ceil(1 << 20),
            )),
            Ok(_) => Ok(()),
            Err(e) => {
                // Not knowing is no reason to stop: sled's own error would still say.
                tracing::warn!(error = %e, "cannot read the data dir's free space");
                Ok(())
            }
        }
    }

    fn write_to_sled(
        &self,
        o: &Overlay,
        checkpoint: u64,
        (next_incident, next_problem, next_change): (u64, u64, u64),
        audit_seq: u64,
        audit_hash: &str,
    ) -> Result<(), StoreError> {
        #[cfg(test)]
        if self
            .fail_sled_writes
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Io("IO error: injected".into()));
        }
        let t = self.t();
        put_sorted(
            &t.alerts,
            o.contents
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_slice()))
                .collect(),
        )?;
        let states: Vec<(Vec<u8>, Vec<u8>)> = o
            .states
            .iter()
            .map(|(fp, st)| (fp.as_bytes().to_vec(), encode(&AlertStateV1::from(st))))
            .collect();
        put_sorted(&t.alert_state, states)?;
        let incidents: Vec<(Vec<u8>, Vec<u8>)> = o
            .incidents
            .iter()
            .map(|(id, i)| (id.0.to_be_bytes().to_vec(), encode(&IncidentV1Ref::from(i))))
            .collect();
        put_sorted(&t.incidents, incidents)?;
        let mut flapping = sled::Batch::default();
        for (id, inc) in &o.incidents {
            match inc.flapping_since {
                Some(_) => flapping.insert(&id.0.to_be_bytes(), &[]),
                None => flapping.remove(&id.0.to_be_bytes()),
            }
        }
        t.flapping.apply_batch(flapping).map_err(io)?;
        let mut open = sled::Batch::default();
        for (id, inc) in &o.incidents {
            match inc.status.is_open() {
                true => open.insert(&id.0.to_be_bytes(), &[]),
                false => open.remove(&id.0.to_be_bytes()),
            }
        }
        t.open_incidents.apply_batch(open).map_err(io)?;
        put_sorted(
            &t.log_offsets,
            o.log_offsets
                .iter()
                .map(|((w, f), off)| (log_offset_key(w, f), off.to_be_bytes()))
                .collect(),
        )?;
        put_sorted(
            &t.silences,
            o.silences
                .iter()
                .map(|(id, x)| (id.0.to_be_bytes().to_vec(), encode(&SilenceV1::from(x))))
                .collect(),
        )?;
        put_sorted(
            &t.outbox,
            o.outbox
                .iter()
                .map(|(seq, e)| (seq.to_be_bytes().to_vec(), encode(&OutboxEventV1::from(e))))
                .collect(),
        )?;
        put_sorted(
            &t.deliveries,
            o.deliveries
                .iter()
                .map(|((seq, sink), d)| (delivery_key(*seq, sink), encode(&DeliveryV1::from(d))))
                .collect(),
        )?;
        let mut queue = sled::Batch::default();
        for ((seq, sink), d) in &o.deliveries {
            match d.state {
                DeliveryState::Delivered => queue.remove(delivery_key(*seq, sink)),
                state => queue.insert(delivery_key(*seq, sink), &[state_byte(state)]),
            }
        }
        t.delivery_queue.apply_batch(queue).map_err(io)?;
        put_sorted(
            &t.problems,
            o.problems
                .iter()
                .map(|(id, p)| (id.0.to_be_bytes().to_vec(), encode(&ProblemV1::from(p))))
                .collect(),
        )?;
        // Changes: the index entry of a change's previous version goes first.
        let mut index = sled::Batch::default();
        for (id, c) in &o.changes {
            let key = id.0.to_be_bytes();
            if let Some(old) = t.changes.get(key).map_err(io)? {
                let old: ChangeRecord = decoded::<ChangeV1, _>("changes", &key, &old)?;
                index.remove(change_index_key(&old));
            }
            index.insert(change_index_key(c), &[]);
        }
        put_sorted(
            &t.changes,
            o.changes
                .iter()
                .map(|(id, c)| (id.0.to_be_bytes().to_vec(), encode(&ChangeV1::from(c))))
                .collect(),
        )?;
        t.change_index.apply_batch(index).map_err(io)?;
        put_sorted(
            &t.change_refs,
            o.change_refs
                .iter()
                .map(|(k, id)| (k.as_bytes().to_vec(), id.0.to_be_bytes()))
                .collect(),
        )?;
        put_sorted(
            &t.problem_keys,
            o.problem_keys
                .iter()
                .map(|(k, id)| (k.as_bytes().to_vec(), id.0.to_be_bytes()))
                .collect(),
        )?;
        put_sorted(
            &t.keys,
            o.keys
                .iter()
                .map(|(k, id)| (k.as_bytes().to_vec(), id.0.to_be_bytes()))
                .collect(),
        )?;
        let mut links: BTreeMap<IncidentId, Vec<&str>> = BTreeMap::new();
        for (id, fp) in &o.links {
            links.entry(*id).or_default().push(fp);
        }
        put_sorted(
            &t.incident_alerts,
            links
                .into_iter()
                .map(|(id, fps)| (link_key(id, checkpoint), encode(&fps)))
                .collect(),
        )?;
        put_sorted(
            &t.audit,
            o.audit
                .iter()
                .map(|(seq, e)| (seq.to_be_bytes().to_vec(), e.bytes.as_slice()))
                .collect(),
        )?;
        let mut index: HashMap<&str, Vec<u64>> = HashMap::new();
        for (seq, e) in &o.audit {
            index.entry(&e.record).or_default().push(*seq);
        }
        put_sorted(
            &t.audit_index,
            index
                .into_iter()
                .map(|(record, seqs)| (index_key(record, checkpoint), encode(&seqs)))
                .collect(),
        )?;
        let mut head = audit_seq.to_be_bytes().to_vec();
        head.extend_from_slice(audit_hash.as_bytes());
        let mut b = sled::Batch::default();
        b.insert(NEXT_INCIDENT, &next_incident.to_be_bytes());
        b.insert(NEXT_PROBLEM, &next_problem.to_be_bytes());
        b.insert(NEXT_CHANGE, &next_change.to_be_bytes());
        b.insert(AUDIT_HEAD, head);
        b.insert(CHECKPOINT_SEQ, &(checkpoint + 1).to_be_bytes());
        t.meta.apply_batch(b).map_err(io)?;
        self.db().flush().map_err(io)?;
        self.sled_written
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn sled_incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        let key = id.0.to_be_bytes();
        self.t()
            .incidents
            .get(key)
            .map_err(io)?
            .map(|v| decoded::<IncidentV1, _>("incidents", &key, &v))
            .transpose()
    }
}

impl SledStore {
    /// Alerts in fingerprint order after `after`, optionally of one status.
    fn alerts_from(
        &self,
        after: Option<&str>,
        status: Option<AlertStatus>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Unbounded,
        };
        let mut overlay: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for o in self.inner.state()?.overlays() {
            overlay.extend(
                o.contents
                    .iter()
                    .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        let sled_start: Bound<Vec<u8>> = match &start {
            Bound::Excluded(a) => Bound::Excluded(a.as_bytes().to_vec()),
            _ => Bound::Unbounded,
        };
        let mut from_sled = self
            .inner
            .t()
            .alerts
            .range::<Vec<u8>, _>((sled_start, Bound::Unbounded))
            .peekable();
        let mut from_overlay = overlay.into_iter().peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let sled_key = match from_sled.peek() {
                Some(Ok((k, _))) => Some(k.to_vec()),
                Some(Err(_)) => return Err(io(from_sled.next().expect("peeked").unwrap_err())),
                None => None,
            };
            let overlay_key = from_overlay.peek().map(|(k, _)| k.as_bytes().to_vec());
            let (key, bytes) = match (sled_key, overlay_key) {
                (None, None) => break,
                (Some(s), Some(o)) if o <= s => {
                    if o == s {
                        from_sled.next();
                    }
                    from_overlay.next().expect("peeked")
                }
                (None, Some(_)) => from_overlay.next().expect("peeked"),
                (Some(_), _) => {
                    let (k, v) = from_sled.next().expect("peeked").map_err(io)?;
                    (String::from_utf8_lossy(&k).into_owned(), v.to_vec())
                }
            };
            let content: Alert = decoded::<AlertV1, _>("alerts", key.as_bytes(), &bytes)?;
            let Some(state) = self.alert_state(&content.fingerprint)? else {
                continue;
            };
            if status.is_none_or(|s| s == state.status) {
                out.push(AlertRecord::from_parts(content, state));
            }
        }
        Ok(out)
    }
}

impl Store for SledStore {
    fn alert_state(&self, fingerprint: &str) -> Result<Option<AlertState>, StoreError> {
        {
            let st = self.inner.state()?;
            if let Some(s) = st
                .find(|o| o.states.get(fingerprint))
                .or_else(|| st.clean.get(fingerprint))
            {
                return Ok(Some(s));
            }
            if st.known_complete && !st.known.contains(&fingerprint_hash(fingerprint)) {
                return Ok(None);
            }
        }
        let Some(v) = self.inner.t().alert_state.get(fingerprint).map_err(io)? else {
            return Ok(None);
        };
        let state: AlertState =
            decoded::<AlertStateV1, _>("alert_state", fingerprint.as_bytes(), &v)?;
        let mut st = self.inner.state.write().map_err(|_| lock_poisoned())?;
        // Unless a commit got there first, remember it (a returning alert is hot again).
        if st.find(|o| o.states.get(fingerprint)).is_none() {
            st.clean.insert_if_absent(fingerprint, state.clone());
        }
        Ok(Some(state))
    }

    fn alert(&self, fingerprint: &str) -> Result<Option<AlertRecord>, StoreError> {
        let bytes = self.inner.state()?.find(|o| o.contents.get(fingerprint));
        let bytes = match bytes {
            Some(b) => b,
            None => match self.inner.t().alerts.get(fingerprint).map_err(io)? {
                None => return Ok(None),
                Some(v) => v.to_vec(),
            },
        };
        let content: Alert = decoded::<AlertV1, _>("alerts", fingerprint.as_bytes(), &bytes)?;
        let state = self
            .alert_state(fingerprint)?
            .ok_or_else(|| StoreError::Corrupt {
                tree: "alert_state",
                key: fingerprint.to_string(),
                message: "an alert has content but no state".into(),
            })?;
        Ok(Some(AlertRecord::from_parts(content, state)))
    }

    fn list_alerts(
        &self,
        status: Option<AlertStatus>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.alerts_from(None, status, limit)
    }

    fn alerts_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.alerts_from(after, None, limit)
    }

    fn incidents_page(&self, after: u64, limit: usize) -> Result<Vec<Incident>, StoreError> {
        let mut overlay = BTreeMap::new();
        for o in self.inner.state()?.overlays() {
            overlay.extend(
                o.incidents
                    .range(IncidentId(after.saturating_add(1))..)
                    .map(|(k, v)| (k.0, v.clone())),
            );
        }
        ascending_page(&self.inner.t().incidents, overlay, after, limit, |k, v| {
            decoded::<IncidentV1, _>("incidents", k, v)
        })
    }

    fn problems_page(&self, after: u64, limit: usize) -> Result<Vec<Problem>, StoreError> {
        let mut overlay = BTreeMap::new();
        for o in self.inner.state()?.overlays() {
            overlay.extend(
                o.problems
                    .range(ProblemId(after.saturating_add(1))..)
                    .map(|(k, v)| (k.0, v.clone())),
            );
        }
        ascending_page(&self.inner.t().problems, overlay, after, limit, |k, v| {
            decoded::<ProblemV1, _>("problems", k, v)
        })
    }

    fn changes_page(&self, after: u64, limit: usize) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut overlay = BTreeMap::new();
        for o in self.inner.state()?.overlays() {
            overlay.extend(
                o.changes
                    .range(ChangeId(after.saturating_add(1))..)
                    .map(|(k, v)| (k.0, v.clone())),
            );
        }
        ascending_page(&self.inner.t().changes, overlay, after, limit, |k, v| {
            decoded::<ChangeV1, _>("changes", k, v)
        })
    }

    fn incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        {
            let st = self.inner.state()?;
            if let Some(i) = st
                .find(|o| o.incidents.get(&id))
                .or_else(|| st.open.get(&id).cloned())
            {
                return Ok(Some(i));
            }
        }
        let found = self.inner.sled_incident(id)?;
        if let Some(inc) = found.as_ref().filter(|i| i.status.is_open()) {
            let mut st = self.inner.state.write().map_err(|_| lock_poisoned())?;
            if st.find(|o| o.incidents.get(&id)).is_none() {
                st.open.entry(id).or_insert_with(|| inc.clone());
            }
        }
        Ok(found)
    }

    fn incident_for_key(&self, key: &str) -> Result<Option<Incident>, StoreError> {
        let id = self.inner.state()?.keys.get(key).copied();
        match id {
            Some(id) => self.incident(id),
            None => Ok(None),
        }
    }

    fn list_incidents(
        &self,
        filter: &IncidentFilter,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        let mut overlay: BTreeMap<IncidentId, Incident> = BTreeMap::new();
        for o in self.inner.state()?.overlays() {
            overlay.extend(o.incidents.iter().map(|(k, v)| (*k, v.clone())));
        }
        let mut from_sled = self.inner.t().incidents.iter().rev().peekable();
        let mut from_overlay = overlay.into_iter().rev().peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let sled_id = match from_sled.peek() {
                Some(Ok((k, _))) => Some(u64_of("incidents", k, k)?),
                Some(Err(_)) => return Err(io(from_sled.next().expect("peeked").unwrap_err())),
                None => None,
            };
            let overlay_id = from_overlay.peek().map(|(id, _)| id.0);
            let inc = match (sled_id, overlay_id) {
                (None, None) => break,
                (Some(s), Some(o)) if o >= s => {
                    if o == s {
                        from_sled.next();
                    }
                    from_overlay.next().expect("peeked").1
                }
                (None, Some(_)) => from_overlay.next().expect("peeked").1,
                (Some(_), _) => {
                    let (k, v) = from_sled.next().expect("peeked").map_err(io)?;
                    decoded::<IncidentV1, _>("incidents", &k, &v)?
                }
            };
            if filter.matches(&inc) {
                out.push(inc);
            }
        }
        Ok(out)
    }

    fn incident_alerts(&self, id: IncidentId) -> Result<Vec<AlertRecord>, StoreError> {
        let mut fingerprints = BTreeSet::new();
        for kv in self
            .inner
            .t()
            .incident_alerts
            .scan_prefix(id.0.to_be_bytes())
        {
            let (k, v) = kv.map_err(io)?;
            let packed: Vec<String> = decode(&v).map_err(|message| StoreError::Corrupt {
                tree: "incident_alerts",
                key: format!("{id} {}", hex::encode(&k[8..])),
                message,
            })?;
            fingerprints.extend(packed);
        }
        for o in self.inner.state()?.overlays() {
            let from = (id, String::new());
            let to = (IncidentId(id.0 + 1), String::new());
            fingerprints.extend(o.links.range(from..to).map(|(_, fp)| fp.clone()));
        }
        let mut out = Vec::with_capacity(fingerprints.len());
        for fp in fingerprints {
            if let Some(rec) = self.alert(&fp)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    fn timeline(&self, record: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let prefix = index_prefix(record);
        let mut seqs = BTreeSet::new();
        for kv in self.inner.t().audit_index.scan_prefix(&prefix) {
            let (k, v) = kv.map_err(io)?;
            let packed: Vec<u64> = decode(&v).map_err(|message| StoreError::Corrupt {
                tree: "audit_index",
                key: format!("{record} {}", hex::encode(&k[prefix.len()..])),
                message,
            })?;
            seqs.extend(packed);
        }
        let mut entries = BTreeMap::new();
        for seq in seqs {
            let key = seq.to_be_bytes();
            let v =
                self.inner
                    .t()
                    .audit
                    .get(key)
                    .map_err(io)?
                    .ok_or_else(|| StoreError::Corrupt {
                        tree: "audit",
                        key: seq.to_string(),
                        message: format!("entry indexed for {record} is missing"),
                    })?;
            let e: AuditEntry = decoded::<AuditEntryV1, _>("audit", &key, &v)?;
            entries.insert(e.seq, e);
        }
        for o in self.inner.state()?.overlays() {
            for e in o.audit.values().filter(|e| e.record == record) {
                let entry: AuditEntry =
                    decoded::<AuditEntryV1, _>("wal", record.as_bytes(), &e.bytes)?;
                entries.insert(e.seq, entry);
            }
        }
        Ok(entries.into_values().collect())
    }

    fn open_incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        let mut ids = BTreeSet::new();
        for kv in self.inner.t().open_incidents.iter() {
            let (k, _) = kv.map_err(io)?;
            ids.insert(IncidentId(u64_of("open_incidents", &k, &k)?));
        }
        for o in self.inner.state()?.overlays() {
            for (id, inc) in &o.incidents {
                if inc.status.is_open() {
                    ids.insert(*id);
                } else {
                    ids.remove(id);
                }
            }
        }
        Ok(ids.into_iter().collect())
    }

    fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let mut all: BTreeMap<SilenceId, Silence> = BTreeMap::new();
        for kv in self.inner.t().silences.iter() {
            let (k, v) = kv.map_err(io)?;
            let x = decoded::<SilenceV1, SilenceV1>("silences", &k, &v)?;
            let x = Silence::try_from(x).map_err(|message| StoreError::Corrupt {
                tree: "silences",
                key: format!("{k:?}"),
                message,
            })?;
            all.insert(x.id, x);
        }
        for o in self.inner.state()?.overlays() {
            all.extend(o.silences.iter().map(|(k, v)| (*k, v.clone())));
        }
        Ok(all.into_values().collect())
    }

    fn silence(&self, id: SilenceId) -> Result<Option<Silence>, StoreError> {
        if let Some(x) = self.inner.state()?.find(|o| o.silences.get(&id)) {
            return Ok(Some(x));
        }
        let key = id.0.to_be_bytes();
        match self.inner.t().silences.get(key).map_err(io)? {
            None => Ok(None),
            Some(v) => {
                let x = decoded::<SilenceV1, SilenceV1>("silences", &key, &v)?;
                Silence::try_from(x)
                    .map(Some)
                    .map_err(|message| StoreError::Corrupt {
                        tree: "silences",
                        key: id.to_string(),
                        message,
                    })
            }
        }
    }

    fn log_offsets(&self, watcher: &str) -> Result<HashMap<String, u64>, StoreError> {
        let mut out = HashMap::new();
        let prefix = log_offset_key(watcher, "");
        for kv in self.inner.t().log_offsets.scan_prefix(&prefix) {
            let (k, v) = kv.map_err(io)?;
            let file = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.insert(file, u64_of("log_offsets", &k, &v)?);
        }
        for o in self.inner.state()?.overlays() {
            for ((w, f), off) in &o.log_offsets {
                if w == watcher {
                    out.insert(f.clone(), *off);
                }
            }
        }
        Ok(out)
    }

    fn next_silence_number(&self) -> Result<u64, StoreError> {
        Ok(self.inner.state()?.last_silence + 1)
    }

    fn outbox_page(&self, after: u64, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut page: BTreeMap<u64, OutboxEvent> = BTreeMap::new();
        let from = after.saturating_add(1).to_be_bytes();
        for kv in self.inner.t().outbox.range(from..).take(limit) {
            let (k, v) = kv.map_err(io)?;
            let e: OutboxEvent = decoded::<OutboxEventV1, _>("outbox", &k, &v)?;
            page.insert(e.seq, e);
        }
        for o in self.inner.state()?.overlays() {
            for (seq, e) in o.outbox.range(after.saturating_add(1)..).take(limit) {
                page.insert(*seq, e.clone());
            }
        }
        Ok(page.into_values().take(limit).collect())
    }

    fn outbox_last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.inner.state()?.outbox_seq)
    }

    fn outbox_event(&self, seq: u64) -> Result<Option<OutboxEvent>, StoreError> {
        if let Some(e) = self.inner.state()?.find(|o| o.outbox.get(&seq)) {
            return Ok(Some(e));
        }
        let key = seq.to_be_bytes();
        match self.inner.t().outbox.get(key).map_err(io)? {
            Some(v) => Ok(Some(decoded::<OutboxEventV1, _>("outbox", &key, &v)?)),
            None => Ok(None),
        }
    }

    fn deliveries_of(&self, seq: u64) -> Result<Vec<Delivery>, StoreError> {
        let mut out: BTreeMap<String, Delivery> = BTreeMap::new();
        for kv in self.inner.t().deliveries.scan_prefix(seq.to_be_bytes()) {
            let (k, v) = kv.map_err(io)?;
            let d: Delivery = decoded::<DeliveryV1, _>("deliveries", &k, &v)?;
            out.insert(d.sink.clone(), d);
        }
        for o in self.inner.state()?.overlays() {
            for ((_, sink), d) in o
                .deliveries
                .range((seq, String::new())..)
                .take_while(|((s, _), _)| *s == seq)
            {
                out.insert(sink.clone(), d.clone());
            }
        }
        Ok(out.into_values().collect())
    }

    fn queued_deliveries(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        use std::ops::Bound;
        let (lower, after_key) = match &after {
            Some((seq, sink)) => (
                Bound::Excluded((*seq, sink.clone())),
                Bound::Excluded(delivery_key(*seq, sink)),
            ),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        // Newest versions first (live, then frozen), then sled's queue for the rest.
        let st = self.inner.state()?;
        let mut newest: BTreeMap<(u64, String), Delivery> = BTreeMap::new();
        for o in st.overlays() {
            for (k, d) in o.deliveries.range((lower.clone(), Bound::Unbounded)) {
                newest.insert(k.clone(), d.clone());
            }
        }
        drop(st);
        let mut out: BTreeMap<(u64, String), Delivery> = BTreeMap::new();
        let mut from_sled = 0;
        for kv in self
            .inner
            .t()
            .delivery_queue
            .range::<Vec<u8>, _>((after_key, Bound::Unbounded))
        {
            if from_sled >= limit {
                break;
            }
            let (k, _) = kv.map_err(io)?;
            let seq = u64_of("delivery_queue", &k, &k[..8])?;
            let sink = String::from_utf8_lossy(&k[8..]).into_owned();
            if newest.contains_key(&(seq, sink.clone())) {
                continue;
            }
            let Some(v) = self.inner.t().deliveries.get(&k).map_err(io)? else {
                continue;
            };
            let d: Delivery = decoded::<DeliveryV1, _>("deliveries", &k, &v)?;
            out.insert((seq, sink), d);
            from_sled += 1;
        }
        // The `limit` first from sled are complete up to the last of them; overlay
        // versions beyond it may be cut off with the rest.
        let bound = (from_sled >= limit)
            .then(|| out.keys().next_back().cloned())
            .flatten();
        for (k, d) in newest {
            if d.state != DeliveryState::Delivered && bound.as_ref().is_none_or(|b| &k <= b) {
                out.insert(k, d);
            }
        }
        Ok(out.into_values().take(limit).collect())
    }

    fn flapping_incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        let mut ids = BTreeSet::new();
        for kv in self.inner.t().flapping.iter() {
            let (k, _) = kv.map_err(io)?;
            ids.insert(IncidentId(u64_of("flapping", &k, &k)?));
        }
        // The overlays hold newer versions (frozen first, then live).
        for o in self.inner.state()?.overlays() {
            for (id, inc) in &o.incidents {
                if inc.flapping_since.is_some() {
                    ids.insert(*id);
                } else {
                    ids.remove(id);
                }
            }
        }
        Ok(ids.into_iter().collect())
    }

    fn problem(&self, id: ProblemId) -> Result<Option<Problem>, StoreError> {
        if let Some(p) = self.inner.state()?.find(|o| o.problems.get(&id)) {
            return Ok(Some(p));
        }
        let key = id.0.to_be_bytes();
        self.inner
            .t()
            .problems
            .get(key)
            .map_err(io)?
            .map(|v| decoded::<ProblemV1, _>("problems", &key, &v))
            .transpose()
    }

    fn problem_for_key(&self, key: &str) -> Result<Option<Problem>, StoreError> {
        let id = self.inner.state()?.problem_keys.get(key).copied();
        match id {
            Some(id) => self.problem(id),
            None => Ok(None),
        }
    }

    fn list_problems(&self, limit: usize) -> Result<Vec<Problem>, StoreError> {
        let mut overlay = BTreeMap::new();
        for o in self.inner.state()?.overlays() {
            overlay.extend(o.problems.iter().map(|(k, v)| (k.0, v.clone())));
        }
        newest_first(&self.inner.t().problems, overlay, limit, |k, v| {
            decoded::<ProblemV1, _>("problems", k, v)
        })
    }

    fn next_problem_number(&self) -> Result<u64, StoreError> {
        Ok(self.inner.state()?.next_problem)
    }

    fn change(&self, id: ChangeId) -> Result<Option<ChangeRecord>, StoreError> {
        if let Some(c) = self.inner.state()?.find(|o| o.changes.get(&id)) {
            return Ok(Some(c));
        }
        let key = id.0.to_be_bytes();
        self.inner
            .t()
            .changes
            .get(key)
            .map_err(io)?
            .map(|v| decoded::<ChangeV1, _>("changes", &key, &v))
            .transpose()
    }

    fn change_by_external(&self, external_id: &str) -> Result<Option<ChangeRecord>, StoreError> {
        let id = self.inner.state()?.find(|o| o.change_refs.get(external_id));
        let id = match id {
            Some(id) => id,
            None => match self
                .inner
                .t()
                .change_refs
                .get(external_id.as_bytes())
                .map_err(io)?
            {
                Some(v) => ChangeId(u64_of("change_refs", external_id.as_bytes(), &v)?),
                None => return Ok(None),
            },
        };
        self.change(id)
    }

    fn list_changes(&self, limit: usize) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut overlay = BTreeMap::new();
        for o in self.inner.state()?.overlays() {
            overlay.extend(o.changes.iter().map(|(k, v)| (k.0, v.clone())));
        }
        newest_first(&self.inner.t().changes, overlay, limit, |k, v| {
            decoded::<ChangeV1, _>("changes", k, v)
        })
    }

    fn changes_on_service(
        &self,
        service: &str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        // The overlays' versions win; sled's index gives the rest, from windows ending
        // at `since` on.
        let mut found: BTreeMap<ChangeId, ChangeRecord> = BTreeMap::new();
        for o in self.inner.state()?.overlays() {
            found.extend(o.changes.iter().map(|(k, v)| (*k, v.clone())));
        }
        let mut prefix = service.as_bytes().to_vec();
        prefix.push(0);
        let mut from = prefix.clone();
        from.extend_from_slice(&ns_key(since));
        for kv in self.inner.t().change_index.range(from..) {
            let (k, _) = kv.map_err(io)?;
            if !k.starts_with(&prefix) {
                break;
            }
            let id = ChangeId(u64_of("change_index", &k, &k[k.len() - 8..])?);
            if let std::collections::btree_map::Entry::Vacant(e) = found.entry(id) {
                if let Some(c) = self.change(id)? {
                    e.insert(c);
                }
            }
        }
        Ok(found
            .into_values()
            .filter(|c| c.service == service && c.window_end >= since && c.window_start <= until)
            .collect())
    }

    fn next_change_number(&self) -> Result<u64, StoreError> {
        Ok(self.inner.state()?.next_change)
    }

    fn audit_page(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut page: BTreeMap<u64, AuditEntry> = BTreeMap::new();
        let from = after.saturating_add(1).to_be_bytes();
        for kv in self.inner.t().audit.range(from..).take(limit) {
            let (k, v) = kv.map_err(io)?;
            let e: AuditEntry = decoded::<AuditEntryV1, _>("audit", &k, &v)?;
            page.insert(e.seq, e);
        }
        for o in self.inner.state()?.overlays() {
            for (seq, e) in o.audit.range(after.saturating_add(1)..) {
                if page.len() >= limit && page.last_key_value().is_some_and(|(last, _)| seq > last)
                {
                    break;
                }
                let entry: AuditEntry =
                    decoded::<AuditEntryV1, _>("wal", &seq.to_be_bytes(), &e.bytes)?;
                page.insert(*seq, entry);
            }
        }
        Ok(page.into_values().take(limit).collect())
    }

    fn audit_head(&self) -> Result<(u64, String), StoreError> {
        let st = self.inner.state()?;
        Ok((st.audit_seq, st.audit_hash.clone()))
    }

    fn scan(&self) -> Result<super::Scan, StoreError> {
        use serde::de::DeserializeOwned;
        let t = self.inner.t();
        let mut scan = super::Scan::default();
        fn each<V: DeserializeOwned>(
            tree: &Tree,
            name: &'static str,
            scan: &mut super::Scan,
            mut seen: impl FnMut(&[u8], V),
        ) -> Result<(), StoreError> {
            let mut n = 0;
            for kv in tree.iter() {
                let (k, v) = kv.map_err(io)?;
                n += 1;
                match decode::<V>(&v) {
                    Ok(x) => seen(&k, x),
                    Err(e) => scan.problems.push(format!(
                        "{name}: record {} does not decode: {e}",
                        printable(&k)
                    )),
                }
            }
            scan.records.insert(name, n);
            Ok(())
        }
        fn numbers(
            tree: &Tree,
            name: &'static str,
            scan: &mut super::Scan,
            mut seen: impl FnMut(&[u8], u64),
        ) -> Result<(), StoreError> {
            let mut n = 0;
            for kv in tree.iter() {
                let (k, v) = kv.map_err(io)?;
                n += 1;
                match u64_of(name, &k, &v) {
                    Ok(x) => seen(&k, x),
                    Err(e) => scan.problems.push(format!("{name}: {e}")),
                }
            }
            scan.records.insert(name, n);
            Ok(())
        }
        let mut incidents = HashSet::new();
        each::<IncidentV1>(&t.incidents, "incidents", &mut scan, |k, i| {
            incidents.insert((k.to_vec(), i.id));
        })?;
        // By key, so an index entry of a record that does not decode is not reported
        // a second time as naming a missing incident.
        let mut ids: HashSet<u64> = incidents.iter().map(|(_, id)| *id).collect();
        for kv in t.incidents.iter() {
            let (k, _) = kv.map_err(io)?;
            if let Ok(id) = u64_of("incidents", &k, &k) {
                ids.insert(id);
            }
        }
        for (k, id) in &incidents {
            if k.as_slice() != id.to_be_bytes() {
                scan.problems
                    .push(format!("incidents: record {} holds INC-{id}", printable(k)));
            }
        }
        each::<AlertV1>(&t.alerts, "alerts", &mut scan, |_, _| {})?;
        each::<AlertStateV1>(&t.alert_state, "alert_state", &mut scan, |_, _| {})?;
        each::<ProblemV1>(&t.problems, "problems", &mut scan, |_, _| {})?;
        each::<ChangeV1>(&t.changes, "changes", &mut scan, |_, _| {})?;
        each::<SilenceV1>(&t.silences, "silences", &mut scan, |_, _| {})?;
        each::<OutboxEventV1>(&t.outbox, "outbox", &mut scan, |_, _| {})?;
        each::<DeliveryV1>(&t.deliveries, "deliveries", &mut scan, |_, _| {})?;
        each::<AuditEntryV1>(&t.audit, "audit", &mut scan, |_, _| {})?;
        each::<Vec<String>>(&t.incident_alerts, "incident_alerts", &mut scan, |_, _| {})?;
        each::<Vec<u64>>(&t.audit_index, "audit_index", &mut scan, |_, _| {})?;
        let mut keyed = Vec::new();
        numbers(&t.keys, "incident_keys", &mut scan, |k, id| {
            keyed.push((printable(k), id));
        })?;
        numbers(&t.problem_keys, "problem_keys", &mut scan, |_, _| {})?;
        numbers(&t.change_refs, "change_refs", &mut scan, |_, _| {})?;
        numbers(&t.log_offsets, "log_offsets", &mut scan, |_, _| {})?;
        // The indexes name records that are in sled (they are written by the same
        // checkpoint) or still in the log.
        let st = self.inner.state()?;
        let known =
            |id: u64| ids.contains(&id) || st.find(|o| o.incidents.get(&IncidentId(id))).is_some();
        for (key, id) in keyed {
            if !known(id) {
                scan.problems.push(format!(
                    "incident_keys: {key} names INC-{id}, which is not stored"
                ));
            }
        }
        for (name, tree) in [
            ("open_incidents", &t.open_incidents),
            ("flapping", &t.flapping),
        ] {
            for kv in tree.iter() {
                let (k, _) = kv.map_err(io)?;
                match u64_of(name, &k, &k) {
                    Ok(id) if !known(id) => scan
                        .problems
                        .push(format!("{name}: INC-{id} is not stored")),
                    Ok(_) => {}
                    Err(e) => scan.problems.push(format!("{name}: {e}")),
                }
            }
        }
        let highest = ids.iter().copied().max().unwrap_or(0);
        if highest >= st.next_incident {
            scan.problems.push(format!(
                "next_incident: the counter is {} but INC-{highest} is stored (a number would be reused)",
                st.next_incident
            ));
        }
        Ok(scan)
    }

    fn next_incident_number(&self) -> Result<u64, StoreError> {
        Ok(self.inner.state()?.next_incident)
    }

    fn stats(&self) -> Result<Stats, StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let inner = &*self.inner;
        let (log_bytes, failed, refusing_writes, checkpoints_blocked) = {
            let log = inner.log.lock().map_err(|_| lock_poisoned())?;
            (
                log.wal.segment_bytes(),
                log.failed.clone(),
                log.refused.clone(),
                log.blocked.clone(),
            )
        };
        let pending = inner.pending.lock().map_err(|_| lock_poisoned())?.len() as u64;
        let st = inner.state()?;
        let frozen = st.frozen.as_deref().map_or(0, Overlay::len);
        Ok(Stats {
            incidents: st.next_incident - 1,
            audit_entries: st.audit_seq,
            pending_records: (st.live.len() + frozen) as u64 + pending,
            log_bytes,
            checkpoints_ok: inner.checkpoints_ok.load(Relaxed),
            checkpoints_failed: inner.checkpoints_failed.load(Relaxed),
            last_checkpoint_seconds: f64::from_bits(inner.last_checkpoint_secs_bits.load(Relaxed)),
            failed,
            refusing_writes,
            checkpoints_blocked,
            free_bytes: free_bytes(&inner.dir).ok(),
        })
    }

    fn append(&self, batch: Batch) -> Result<Ticket, StoreError> {
        let inner = &*self.inner;
        if batch.is_empty() {
            return Ok(inner.durable.load(std::sync::atomic::Ordering::SeqCst));
        }
        if inner.state()?.live.len() >= inner.max_records * HARD_LIMIT_FACTOR {
            // The background checkpoint is behind: do one here (backpressure).
            if let Err(e) = inner.checkpoint() {
                let mut log = inner.log.lock().map_err(|_| lock_poisoned())?;
                log.refused = Some(format!(
                    "{} records wait for a checkpoint, which failed: {e}",
                    inner.max_records * HARD_LIMIT_FACTOR
                ));
                return Err(e);
            }
        }
        let mut log = inner.log.lock().map_err(|_| lock_poisoned())?;
        log.check()?;
        let current = log.next_incident;
        let next_incident = match batch.incident_counter {
            Some((expected, next)) if expected == current => next,
            Some((expected, _)) => {
                return Err(StoreError::Conflict(format!(
                    "incident counter is {current}, the batch expected {expected}"
                )))
            }
            None => current,
        };
        let current = log.next_problem;
        let next_problem = match batch.problem_counter {
            Some((expected, next)) if expected == current => next,
            Some((expected, _)) => {
                return Err(StoreError::Conflict(format!(
                    "problem counter is {current}, the batch expected {expected}"
                )))
            }
            None => current,
        };
        let current = log.next_change;
        let next_change = match batch.change_counter {
            Some((expected, next)) if expected == current => next,
            Some((expected, _)) => {
                return Err(StoreError::Conflict(format!(
                    "change counter is {current}, the batch expected {expected}"
                )))
            }
            None => current,
        };
        let (mut seq, mut hash) = (log.audit_seq, log.audit_hash.clone());
        let mut audit = Vec::with_capacity(batch.audit.len());
        for (at, actor, change) in batch.audit {
            seq += 1;
            let entry = AuditEntry::chain(seq, at, &actor, change, &hash);
            hash.clone_from(&entry.hash);
            audit.push(EncodedEntry::new(&entry));
        }
        if let Some(d) = batch.deliveries.iter().find(|d| d.seq > log.outbox_seq) {
            return Err(StoreError::Conflict(format!(
                "a delivery of outbox event {} which is not stored (the last is {})",
                d.seq, log.outbox_seq
            )));
        }
        let mut outbox_seq = log.outbox_seq;
        let mut outbox = Vec::with_capacity(batch.outbox.len());
        let mut deliveries = Vec::new();
        for d in batch.outbox {
            outbox_seq += 1;
            let (event, ds) = OutboxEvent::numbered(outbox_seq, d);
            outbox.push(event);
            deliveries.extend(ds);
        }
        deliveries.extend(batch.deliveries);
        let applied = Applied {
            outbox,
            deliveries,
            silences: batch.silences,
            log_offsets: batch.log_offsets,
            contents: batch
                .alert_contents
                .iter()
                .map(|a| (a.fingerprint.clone(), encode(&AlertV1::from(a))))
                .collect(),
            states: batch.alert_states,
            incidents: batch.incidents,
            keys: batch.keys,
            links: batch.attachments,
            audit,
            next_incident,
            problems: batch.problems,
            problem_keys: batch.problem_keys,
            next_problem,
            changes: batch.changes,
            change_refs: batch.change_refs,
            next_change,
        };
        let buf = encode_into(&WalView(&applied), std::mem::take(&mut log.scratch));
        let written = log.wal.write(&buf);
        if buf.capacity() <= SCRATCH_KEPT_BYTES {
            log.scratch = buf;
        }
        match written {
            Ok(()) => {
                if log.refused.is_some() {
                    tracing::info!("the write-ahead log takes writes again");
                    log.refused = None;
                }
            }
            Err(e @ WalError::NotWritten { .. }) => {
                // Nothing of the batch is stored and the log is intact: this request
                // gets 503 (Retry-After), the next write tries again.
                let e = wal_err(e);
                log.refused = Some(e.to_string());
                return Err(e);
            }
            Err(e) => return Err(log.fail(e)),
        }
        log.next_incident = next_incident;
        log.next_problem = next_problem;
        log.next_change = next_change;
        log.audit_seq = seq;
        log.audit_hash = hash;
        log.outbox_seq = outbox_seq;
        log.ticket += 1;
        let ticket = log.ticket;
        inner
            .pending
            .lock()
            .map_err(|_| lock_poisoned())?
            .push_back((ticket, applied));
        let segment_bytes = log.wal.segment_bytes();
        drop(log);
        if segment_bytes >= MAX_SEGMENT_BYTES {
            let _ = inner.wake.try_send(Signal::Grown);
        }
        Ok(ticket)
    }

    fn sync(&self, upto: Ticket) -> Result<(), StoreError> {
        self.inner.sync(upto)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.checkpoint()
    }

    fn backup(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        self.inner.backup(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Disposition, Source};
    use crate::audit::Change;
    use crate::incidents::{IncidentSpec, IncidentStatus, Level, ResolutionCode, ALERTS_ATTACHED};
    use crate::store::StatusFilter;
    use jiff::Timestamp;

    fn settings(dir: &Path) -> StoreSettings {
        StoreSettings {
            data_dir: dir.to_path_buf(),
            cache_capacity_bytes: 8 << 20,
            checkpoint_interval_secs: 3600,
            checkpoint_max_records: 100_000,
            backup_dir: std::path::PathBuf::from("backups"),
            ballast_bytes: 0,
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn alert(fp: &str, incident: u64) -> (Alert, AlertState) {
        (
            Alert {
                source: Source::Alertmanager,
                fingerprint: fp.into(),
                status: AlertStatus::Firing,
                labels: [("alertname".to_string(), "A".to_string())].into(),
                annotations: Default::default(),
                starts_at: t(0),
                ends_at: None,
                generator_url: None,
                received_at: t(0),
            },
            AlertState {
                status: AlertStatus::Firing,
                starts_at: t(0),
                first_seen: t(0),
                last_seen: t(0),
                notifications: 1,
                disposition: Disposition::Attached {
                    incident: IncidentId(incident),
                },
                flips: 0,
                flips_since: t(0),
            },
        )
    }

    fn push_alert(b: &mut Batch, fp: &str, incident: u64) {
        let (content, state) = alert(fp, incident);
        b.alert_contents.push(content);
        b.alert_states.push((fp.to_string(), state));
    }

    fn incident(id: u64) -> Incident {
        let spec = IncidentSpec {
            key: format!("key{id}"),
            title: "t".into(),
            service: None,
            ci: None,
            impact: Level::Low,
            urgency: Level::Low,
            major: false,
            sinks: Vec::new(),
        };
        Incident::open(
            IncidentId(id),
            &spec,
            "default",
            t(0),
            t(0),
            &crate::incidents::Policy::default(),
        )
        .0
    }

    /// A batch opening incidents `ids` (each with one alert `f<id>`).
    fn opening(ids: std::ops::Range<u64>) -> Batch {
        let mut b = Batch {
            incident_counter: Some((ids.start, ids.end)),
            ..Batch::default()
        };
        for id in ids {
            push_alert(&mut b, &format!("f{id:03}"), id);
            b.incidents.push(incident(id));
            b.keys.push((format!("key{id}"), IncidentId(id)));
            b.attachments.push((IncidentId(id), format!("f{id:03}")));
            b.audit.push((
                t(0),
                "system".into(),
                Change::new(IncidentId(id).to_string(), "opened"),
            ));
        }
        b
    }

    fn ids(list: Vec<Incident>) -> Vec<u64> {
        list.into_iter().map(|i| i.id.0).collect()
    }

    /// The highest log position a snapshot in `dir/sled` covers (sled names its
    /// snapshot files `snap.` ++ that position in hex).
    fn snapshot_lsn(dir: &Path) -> Option<u64> {
        std::fs::read_dir(dir.join("sled"))
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let hex = name.strip_prefix("snap.")?;
                u64::from_str_radix(hex, 16).ok()
            })
            .max()
    }

    #[test]
    fn the_log_encodes_a_batch_exactly_as_its_wal_record() {
        use crate::changes::ChangeStatus;
        use crate::outbox::{Draft, EventKind, Target};
        use crate::silences::{Matcher, Op};
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&settings(dir.path())).unwrap();
        let mut b = opening(1..3);
        let spec = crate::problems::ProblemSpec {
            key: "key1".into(),
            title: "Recurring".into(),
            link_recent_secs: 60,
        };
        b.problems
            .push(Problem::open(ProblemId(1), &spec, "r", t(0)).0);
        b.problem_counter = Some((1, 2));
        b.problem_keys.push(("key1".into(), ProblemId(1)));
        b.changes.push(ChangeRecord {
            id: ChangeId(1),
            external_id: Some("run-7".into()),
            service: "api".into(),
            summary: "deploy".into(),
            status: ChangeStatus::Approved,
            window_start: t(0),
            window_end: t(60),
            recorded_by: "token:ci".into(),
            recorded_at: t(0),
            updated_at: t(0),
        });
        b.change_counter = Some((1, 4));
        b.change_refs.push(("run-7".into(), ChangeId(1)));
        b.outbox.push(Draft {
            at: t(0),
            kind: EventKind::Opened,
            record: "INC-1".into(),
            detail: "opened".into(),
            by: "system".into(),
            notify: vec!["chat".into()],
            quiet: Some("silence".into()),
            targets: vec![Target {
                sink: "chat".into(),
                to: Some("#ops".into()),
            }],
        });
        b.silences.push(Silence {
            id: SilenceId(1),
            matchers: vec![Matcher::new("service", Op::Equal, "api").unwrap()],
            starts_at: t(0),
            ends_at: t(60),
            created_by: "token:alice".into(),
            comment: "maintenance".into(),
            created_at: t(0),
            updated_at: t(0),
        });
        b.log_offsets.push((("app".into(), "00ff".into()), 42));
        store.append(b).unwrap();
        let pending = store.inner.pending.lock().unwrap();
        let (_, applied) = pending.front().unwrap();
        // Every field, named: a field added to the record fails to compile here
        // until `WalView` writes it too (and the batch above fills it).
        let WalBatchV1 {
            contents,
            states,
            incidents,
            keys,
            links,
            audit,
            next_incident,
            problems,
            problem_keys,
            next_problem,
            changes,
            change_refs,
            next_change,
            outbox,
            deliveries,
            silences,
            log_offsets,
        } = applied.to_wal();
        for (what, filled) in [
            ("contents", !contents.is_empty()),
            ("states", !states.is_empty()),
            ("incidents", !incidents.is_empty()),
            ("keys", !keys.is_empty()),
            ("links", !links.is_empty()),
            ("audit", !audit.is_empty()),
            ("problems", !problems.is_empty()),
            ("problem_keys", !problem_keys.is_empty()),
            ("changes", !changes.is_empty()),
            ("change_refs", !change_refs.is_empty()),
            ("outbox", !outbox.is_empty()),
            ("deliveries", !deliveries.is_empty()),
            ("silences", !silences.is_empty()),
            ("log_offsets", !log_offsets.is_empty()),
            // Distinct counters, so that one written in another's place shows.
            (
                "counters",
                next_incident != next_problem
                    && next_problem != next_change
                    && next_incident != next_change,
            ),
        ] {
            assert!(filled, "the batch leaves {what} empty");
        }
        let viewed = encode_into(&WalView(applied), vec![7; 3]);
        assert_eq!(viewed, encode(&applied.to_wal()));
        let decoded = Applied::from_wal(decode::<WalBatchV1>(&viewed).unwrap()).unwrap();
        assert_eq!(encode(&decoded.to_wal()), viewed);
    }

    #[test]
    fn a_dropped_store_leaves_sled_a_snapshot_of_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&settings(dir.path())).unwrap();
        let at_open = snapshot_lsn(dir.path());
        store.commit(opening(1..200)).unwrap();
        store.checkpoint().unwrap();
        assert_eq!(
            snapshot_lsn(dir.path()),
            at_open,
            "sled writes none while open"
        );
        drop(store);
        let at_close = snapshot_lsn(dir.path());
        assert!(
            at_close > at_open,
            "the snapshot covers the checkpoint: {at_close:?} > {at_open:?}"
        );

        // Nothing written: no new snapshot, and everything reads back.
        let store = SledStore::open(&settings(dir.path())).unwrap();
        let at_open = snapshot_lsn(dir.path());
        assert_eq!(at_open, at_close, "nothing to read past the snapshot");
        assert_eq!(
            store.incident(IncidentId(199)).unwrap().unwrap().id,
            IncidentId(199)
        );
        assert_eq!(store.incidents_page(0, 1000).unwrap().len(), 199);
        drop(store);
        assert_eq!(snapshot_lsn(dir.path()), at_open);
    }

    #[test]
    fn a_scan_reads_every_record_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&settings(dir.path())).unwrap();
        store.commit(opening(1..4)).unwrap();
        store.checkpoint().unwrap();
        // INC-4 only in the log: the indexes may name it.
        store.commit(opening(4..5)).unwrap();
        let scan = store.scan().unwrap();
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        assert_eq!(scan.records["incidents"], 3);
        assert_eq!(scan.records["alerts"], 3);
        assert_eq!(scan.records["incident_keys"], 3);

        // Damage: a record that does not decode, a key naming a missing incident, an
        // open-incident entry without its incident, a counter behind the records.
        let t = store.inner.t();
        t.incidents
            .insert(2u64.to_be_bytes(), &b"\x01garbage"[..])
            .unwrap();
        t.keys.insert("ghost", &9u64.to_be_bytes()[..]).unwrap();
        t.open_incidents
            .insert(7u64.to_be_bytes(), &[][..])
            .unwrap();
        t.incidents
            .insert(
                50u64.to_be_bytes(),
                encode(&IncidentV1Ref::from(&incident(50))),
            )
            .unwrap();
        let problems = store.scan().unwrap().problems;
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].starts_with("incidents: record 0000000000000002 does not decode"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p == "incident_keys: ghost names INC-9, which is not stored"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p == "open_incidents: INC-7 is not stored"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("next_incident: the counter is 5 but INC-50 is stored")),
            "{problems:?}"
        );
    }

    #[test]
    fn reads_merge_the_log_overlay_with_checkpointed_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&settings(dir.path())).unwrap();
        store.commit(opening(1..4)).unwrap();
        store.checkpoint().unwrap();
        assert_eq!(store.inner.state().unwrap().live.len(), 0);

        // INC-2 resolves after the checkpoint; INC-4 and INC-5 open.
        let mut two = incident(2);
        let change = two.resolve(ResolutionCode::Fixed, "n".into(), t(5), t(5));
        let mut b = opening(4..6);
        b.incidents.push(two);
        b.audit.push((t(5), "system".into(), change));
        push_alert(&mut b, "f000", 1);
        store.commit(b).unwrap();

        assert_eq!(
            ids(store
                .list_incidents(&StatusFilter::Any.into(), 100)
                .unwrap()),
            vec![5, 4, 3, 2, 1]
        );
        assert_eq!(
            ids(store
                .list_incidents(&StatusFilter::Open.into(), 100)
                .unwrap()),
            vec![5, 4, 3, 1]
        );
        assert_eq!(
            ids(store
                .list_incidents(&StatusFilter::Is(IncidentStatus::Resolved).into(), 100)
                .unwrap()),
            vec![2]
        );
        assert_eq!(
            ids(store.list_incidents(&StatusFilter::Any.into(), 2).unwrap()),
            vec![5, 4]
        );
        assert_eq!(
            store.incident(IncidentId(2)).unwrap().unwrap().status,
            IncidentStatus::Resolved
        );
        assert_eq!(
            store.incident_for_key("key5").unwrap().unwrap().id,
            IncidentId(5)
        );
        assert_eq!(
            store.incident_for_key("key1").unwrap().unwrap().id,
            IncidentId(1)
        );

        let fps: Vec<String> = store
            .list_alerts(None, 100)
            .unwrap()
            .into_iter()
            .map(|a| a.alert.fingerprint)
            .collect();
        assert_eq!(fps, ["f000", "f001", "f002", "f003", "f004", "f005"]);
        assert_eq!(store.list_alerts(None, 3).unwrap().len(), 3);

        let timeline = store.timeline("INC-2").unwrap();
        let actions: Vec<&str> = timeline.iter().map(|e| e.change.action.as_str()).collect();
        assert_eq!(actions, ["opened", "resolved"]);
        assert_eq!(
            timeline[1].prev_hash,
            store.timeline("INC-5").unwrap()[0].hash
        );
        assert_eq!(
            store.incident_alerts(IncidentId(4)).unwrap()[0]
                .alert
                .fingerprint,
            "f004"
        );
        assert_eq!(store.next_incident_number().unwrap(), 6);
    }

    #[test]
    fn links_and_timelines_span_checkpoints_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let attach = |fp: &str| {
            let mut b = Batch::default();
            push_alert(&mut b, fp, 1);
            b.attachments.push((IncidentId(1), fp.to_string()));
            b.audit
                .push((t(1), "system".into(), Change::new("INC-1", ALERTS_ATTACHED)));
            b
        };
        {
            let store = SledStore::open(&settings(dir.path())).unwrap();
            store.commit(opening(1..3)).unwrap();
            store.checkpoint().unwrap();
            store.commit(attach("g1")).unwrap();
            store.checkpoint().unwrap();
            // g1 again (re-attached after a resolve) and g2: one more packed list.
            store.commit(attach("g1")).unwrap();
            store.commit(attach("g2")).unwrap();
            store.checkpoint().unwrap();
            store.commit(attach("g3")).unwrap();
            // g3 stays in the log only.
        }
        let store = SledStore::open(&settings(dir.path())).unwrap();
        let fps: Vec<String> = store
            .incident_alerts(IncidentId(1))
            .unwrap()
            .into_iter()
            .map(|a| a.alert.fingerprint)
            .collect();
        assert_eq!(fps, ["f001", "g1", "g2", "g3"]);
        let fps: Vec<String> = store
            .incident_alerts(IncidentId(2))
            .unwrap()
            .into_iter()
            .map(|a| a.alert.fingerprint)
            .collect();
        assert_eq!(fps, ["f002"]);
        let seqs: Vec<u64> = store
            .timeline("INC-1")
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [1, 3, 4, 5, 6]);
        assert_eq!(store.timeline("INC-2").unwrap().len(), 1);
        store.checkpoint().unwrap();
        assert_eq!(store.timeline("INC-1").unwrap().len(), 5);
        assert_eq!(store.incident_alerts(IncidentId(1)).unwrap().len(), 4);
    }

    #[test]
    fn a_crash_before_any_checkpoint_is_replayed_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(&settings(dir.path())).unwrap();
            store.commit(opening(1..3)).unwrap();
            store.checkpoint().unwrap();
            store.commit(opening(3..5)).unwrap();
            // Dropped without a checkpoint, as after kill -9.
        }
        let store = SledStore::open(&settings(dir.path())).unwrap();
        assert_eq!(
            ids(store
                .list_incidents(&StatusFilter::Any.into(), 100)
                .unwrap()),
            vec![4, 3, 2, 1]
        );
        assert_eq!(store.next_incident_number().unwrap(), 5);
        assert_eq!(store.stats().unwrap().audit_entries, 4);
        let err = store.commit(opening(3..4)).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        store.commit(opening(5..6)).unwrap();
        let chain: Vec<AuditEntry> = (1..=5)
            .flat_map(|i| store.timeline(&format!("INC-{i}")).unwrap())
            .collect();
        assert!(chain.iter().all(AuditEntry::is_intact));
        assert!(chain
            .windows(2)
            .all(|w| w[1].prev_hash == w[0].hash && w[1].seq == w[0].seq + 1));
        store.checkpoint().unwrap();
        let mut wal_files: Vec<String> = std::fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        wal_files.sort();
        assert_eq!(
            wal_files.len(),
            2,
            "checkpointed segments are deleted: {wal_files:?}"
        );
        assert_eq!(
            wal_files[1], "spare.wal",
            "the newest deleted one is kept for reuse"
        );
    }

    #[test]
    fn stored_alerts_are_found_before_and_after_the_background_index() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(&settings(dir.path())).unwrap();
            store.commit(opening(1..200)).unwrap();
            store.checkpoint().unwrap();
        }
        let store = SledStore::open(&settings(dir.path())).unwrap();
        // Whether or not the index is complete yet, the answers are the same.
        assert!(store.alert_state("f150").unwrap().is_some());
        assert!(store.alert_state("missing").unwrap().is_none());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !store.inner.state().unwrap().known_complete {
            assert!(
                std::time::Instant::now() < deadline,
                "index never completed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(store.alert_state("f150").unwrap().is_some());
        assert!(store.alert_state("f001").unwrap().is_some());
        assert!(store.alert_state("missing").unwrap().is_none());
        assert_eq!(store.inner.state().unwrap().known.len(), 199);
        assert_eq!(
            store.incident_for_key("key150").unwrap().unwrap().id,
            IncidentId(150)
        );
    }

    #[test]
    fn appended_batches_become_visible_with_the_sync_that_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&settings(dir.path())).unwrap();
        let first = store.append(opening(1..3)).unwrap();
        // Validated against what was appended, not what is durable yet.
        let second = store.append(opening(3..5)).unwrap();
        assert!(second > first);
        assert!(
            store.incident(IncidentId(1)).unwrap().is_none(),
            "not visible before its sync"
        );
        assert_eq!(store.next_incident_number().unwrap(), 1);
        store.sync(second).unwrap();
        assert_eq!(
            ids(store.list_incidents(&StatusFilter::Any.into(), 10).unwrap()),
            vec![4, 3, 2, 1]
        );
        assert_eq!(store.next_incident_number().unwrap(), 5);
        store.sync(first).unwrap();
        let err = store.append(opening(4..5)).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        // A checkpoint takes appended batches along.
        let third = store.append(opening(5..6)).unwrap();
        store.checkpoint().unwrap();
        assert!(store.incident(IncidentId(5)).unwrap().is_some());
        store.sync(third).unwrap();
        drop(store);
        let store = SledStore::open(&settings(dir.path())).unwrap();
        assert_eq!(store.next_incident_number().unwrap(), 6);
    }

    #[test]
    fn after_a_log_failure_writes_are_refused_and_stats_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&settings(dir.path())).unwrap();
        store.commit(opening(1..2)).unwrap();
        assert_eq!(store.stats().unwrap().failed, None);
        // As after an fdatasync error: what was written since is in an unknown state.
        store.inner.log.lock().unwrap().failed = Some("sync failed: EIO".into());
        let err = store.commit(opening(2..3)).unwrap_err();
        assert!(err.to_string().contains("restart triaged"), "{err}");
        assert!(store.checkpoint().is_err());
        let stats = store.stats().unwrap();
        assert_eq!(stats.failed.as_deref(), Some("sync failed: EIO"));
        assert_eq!(stats.checkpoints_failed, 1);
        // Reads go on.
        assert!(store.incident(IncidentId(1)).unwrap().is_some());
    }

    #[test]
    fn the_ballast_file_is_kept_at_its_size_and_removed_when_set_to_none() {
        let dir = tempfile::tempdir().unwrap();
        let ballast = dir.path().join(BALLAST);
        for (bytes, expected) in [
            (1 << 20, Some(1 << 20)),
            (2 << 20, Some(2 << 20)),
            (0, None),
        ] {
            let store = SledStore::open(&StoreSettings {
                ballast_bytes: bytes,
                ..settings(dir.path())
            })
            .unwrap();
            assert_eq!(std::fs::metadata(&ballast).ok().map(|m| m.len()), expected);
            drop(store);
        }
    }

    #[test]
    fn a_failed_sled_write_refuses_writes_until_reopened_and_keeps_what_the_log_holds() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(&settings(dir.path())).unwrap();
            store.commit(opening(1..3)).unwrap();
            store
                .inner
                .fail_sled_writes
                .store(true, std::sync::atomic::Ordering::SeqCst);
            assert!(store.checkpoint().is_err());
            // sled would refuse every later write: the store says so and refuses too,
            // so that the watchdog's health check fails and a restart reopens sled.
            let failed = store.stats().unwrap().failed.unwrap();
            assert!(failed.contains("could not write to sled"), "{failed}");
            let err = store.commit(opening(3..4)).unwrap_err();
            assert!(err.to_string().contains("restart triaged"), "{err}");
            // What the log holds is still served.
            assert!(store.incident(IncidentId(2)).unwrap().is_some());
        }
        let store = SledStore::open(&settings(dir.path())).unwrap();
        assert_eq!(store.stats().unwrap().failed, None);
        assert!(store.incident(IncidentId(2)).unwrap().is_some());
        assert_eq!(store.next_incident_number().unwrap(), 3);
        store.checkpoint().unwrap();
        store.commit(opening(3..4)).unwrap();
    }

    #[test]
    fn a_checkpoint_keeps_the_overlay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.checkpoint_max_records = 100;
        let store = SledStore::open(&s).unwrap();
        // Far past the hard limit: commits checkpoint themselves when the background
        // thread is behind.
        for n in 0..20u64 {
            store.commit(opening(1 + n * 50..1 + (n + 1) * 50)).unwrap();
            assert!(store.inner.state().unwrap().live.len() < 100 * HARD_LIMIT_FACTOR + 250);
        }
        assert_eq!(
            store
                .list_incidents(&StatusFilter::Any.into(), 2000)
                .unwrap()
                .len(),
            1000
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(&settings(dir.path())).unwrap());
        {
            let db = open_sled_within(
                &sled::Config::new().path(dir.path().join("sled")),
                Duration::from_secs(5),
            )
            .unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(SCHEMA_KEY, &99u64.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let err = SledStore::open(&settings(dir.path()))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("schema 99"), "{err}");
    }
}
