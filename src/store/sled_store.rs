//! The sled implementation of [`Store`]: the embedded default for one node.
//!
//! Trees: `alerts` (fingerprint → alert), `incidents` (id → incident), `incident_keys`
//! (correlation key → latest incident id), `incident_alerts` (id ++ fingerprint),
//! `audit` (seq → entry), `audit_index` (record ++ 0 ++ seq) and `meta` (counters, the
//! audit chain's head, the schema version). A batch is one sled transaction over all of
//! them followed by one flush, so a batch is all-or-nothing and durable on return.

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::Tree;

use super::records::{decode, encode, AlertRecordV1, AuditEntryV1, IncidentV1};
use super::{Batch, Counts, StatusFilter, Store, StoreError};
use crate::alerts::{AlertRecord, AlertStatus};
use crate::audit::{AuditEntry, GENESIS_HASH};
use crate::incidents::{Incident, IncidentId};

const SCHEMA_KEY: &[u8] = b"schema_version";
const SCHEMA_VERSION: u64 = 1;
const NEXT_INCIDENT: &[u8] = b"next_incident";
const AUDIT_HEAD: &[u8] = b"audit_head";

pub struct SledStore {
    db: sled::Db,
    alerts: Tree,
    incidents: Tree,
    keys: Tree,
    incident_alerts: Tree,
    audit: Tree,
    audit_index: Tree,
    meta: Tree,
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
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

/// The audit chain's head: last sequence number and its hash.
fn audit_head(bytes: Option<&[u8]>) -> Result<(u64, String), StoreError> {
    match bytes {
        None => Ok((0, GENESIS_HASH.to_string())),
        Some(b) => {
            let seq = u64_of("meta", AUDIT_HEAD, b)?;
            Ok((seq, String::from_utf8_lossy(&b[8..]).into_owned()))
        }
    }
}

fn index_key(record: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(record.len() + 9);
    k.extend_from_slice(record.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. A directory that is not a triaged store, or
    /// one written by a newer schema, is refused.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| StoreError::Io(format!("cannot open store in {}: {e}", dir.display())))?;
        let tree = |name: &str| db.open_tree(name).map_err(io);
        let store = SledStore {
            alerts: tree("alerts")?,
            incidents: tree("incidents")?,
            keys: tree("incident_keys")?,
            incident_alerts: tree("incident_alerts")?,
            audit: tree("audit")?,
            audit_index: tree("audit_index")?,
            meta: tree("meta")?,
            db,
        };
        match store.meta.get(SCHEMA_KEY).map_err(io)? {
            None => {
                store
                    .meta
                    .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(io)?;
                store.db.flush().map_err(io)?;
            }
            Some(v) => {
                let version = u64_of("meta", SCHEMA_KEY, &v)?;
                if version > SCHEMA_VERSION {
                    return Err(StoreError::Corrupt {
                        tree: "meta",
                        key: "schema_version".into(),
                        message: format!(
                            "store schema {version} is newer than this triaged understands ({SCHEMA_VERSION})"
                        ),
                    });
                }
            }
        }
        Ok(store)
    }
}

impl Store for SledStore {
    fn alert(&self, fingerprint: &str) -> Result<Option<AlertRecord>, StoreError> {
        self.alerts
            .get(fingerprint)
            .map_err(io)?
            .map(|v| decoded::<AlertRecordV1, _>("alerts", fingerprint.as_bytes(), &v))
            .transpose()
    }

    fn list_alerts(
        &self,
        status: Option<AlertStatus>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.alerts.iter() {
            let (k, v) = kv.map_err(io)?;
            let rec: AlertRecord = decoded::<AlertRecordV1, _>("alerts", &k, &v)?;
            if status.is_none_or(|s| s == rec.alert.status) {
                out.push(rec);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        let key = id.0.to_be_bytes();
        self.incidents
            .get(key)
            .map_err(io)?
            .map(|v| decoded::<IncidentV1, _>("incidents", &key, &v))
            .transpose()
    }

    fn incident_for_key(&self, key: &str) -> Result<Option<Incident>, StoreError> {
        match self.keys.get(key).map_err(io)? {
            None => Ok(None),
            Some(id) => self.incident(IncidentId(u64_of("incident_keys", key.as_bytes(), &id)?)),
        }
    }

    fn list_incidents(
        &self,
        filter: StatusFilter,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        let mut out = Vec::new();
        for kv in self.incidents.iter().rev() {
            let (k, v) = kv.map_err(io)?;
            let inc: Incident = decoded::<IncidentV1, _>("incidents", &k, &v)?;
            if filter.matches(inc.status) {
                out.push(inc);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn incident_alerts(&self, id: IncidentId) -> Result<Vec<AlertRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.incident_alerts.scan_prefix(id.0.to_be_bytes()) {
            let (k, _) = kv.map_err(io)?;
            let fingerprint = String::from_utf8_lossy(&k[8..]).into_owned();
            if let Some(rec) = self.alert(&fingerprint)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    fn timeline(&self, record: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let mut prefix = record.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.audit_index.scan_prefix(&prefix) {
            let (k, _) = kv.map_err(io)?;
            let seq = &k[prefix.len()..];
            let v = self
                .audit
                .get(seq)
                .map_err(io)?
                .ok_or_else(|| StoreError::Corrupt {
                    tree: "audit",
                    key: String::from_utf8_lossy(&k).into_owned(),
                    message: "indexed entry is missing".into(),
                })?;
            out.push(decoded::<AuditEntryV1, _>("audit", seq, &v)?);
        }
        Ok(out)
    }

    fn next_incident_number(&self) -> Result<u64, StoreError> {
        match self.meta.get(NEXT_INCIDENT).map_err(io)? {
            None => Ok(1),
            Some(v) => u64_of("meta", NEXT_INCIDENT, &v),
        }
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        let head = self.meta.get(AUDIT_HEAD).map_err(io)?;
        Ok(Counts {
            incidents: self.next_incident_number()? - 1,
            audit_entries: audit_head(head.as_deref())?.0,
        })
    }

    fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Encode outside the transaction: its closure may run more than once.
        let alerts: Vec<(String, Vec<u8>)> = batch
            .alerts
            .iter()
            .map(|a| (a.alert.fingerprint.clone(), encode(&AlertRecordV1::from(a))))
            .collect();
        let incidents: Vec<([u8; 8], Vec<u8>)> = batch
            .incidents
            .iter()
            .map(|i| (i.id.0.to_be_bytes(), encode(&IncidentV1::from(i))))
            .collect();
        let attachments: Vec<Vec<u8>> = batch
            .attachments
            .iter()
            .map(|(id, fp)| {
                let mut k = id.0.to_be_bytes().to_vec();
                k.extend_from_slice(fp.as_bytes());
                k
            })
            .collect();

        let trees = (
            &self.alerts,
            &self.incidents,
            &self.keys,
            &self.incident_alerts,
            &self.audit,
            &self.audit_index,
            &self.meta,
        );
        let result = trees.transaction(
            |(t_alerts, t_incidents, t_keys, t_links, t_audit, t_index, t_meta)| {
                if let Some((expected, next)) = batch.incident_counter {
                    let current = match t_meta.get(NEXT_INCIDENT)? {
                        None => 1,
                        Some(v) => u64_of("meta", NEXT_INCIDENT, &v)
                            .map_err(ConflictableTransactionError::Abort)?,
                    };
                    if current != expected {
                        return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                            format!("incident counter is {current}, the batch expected {expected}"),
                        )));
                    }
                    t_meta.insert(NEXT_INCIDENT, &next.to_be_bytes())?;
                }
                for (fp, bytes) in &alerts {
                    t_alerts.insert(fp.as_bytes(), bytes.as_slice())?;
                }
                for (id, bytes) in &incidents {
                    t_incidents.insert(id, bytes.as_slice())?;
                }
                for (key, id) in &batch.keys {
                    t_keys.insert(key.as_bytes(), &id.0.to_be_bytes())?;
                }
                for k in &attachments {
                    t_links.insert(k.as_slice(), &[])?;
                }
                if !batch.audit.is_empty() {
                    let head = t_meta.get(AUDIT_HEAD)?;
                    let (mut seq, mut hash) =
                        audit_head(head.as_deref()).map_err(ConflictableTransactionError::Abort)?;
                    for (at, actor, change) in &batch.audit {
                        seq += 1;
                        let entry = AuditEntry::chain(seq, *at, actor, change.clone(), &hash);
                        t_audit.insert(&seq.to_be_bytes(), encode(&AuditEntryV1::from(&entry)))?;
                        t_index.insert(index_key(&change.record, seq), &[])?;
                        hash = entry.hash;
                    }
                    let mut head = seq.to_be_bytes().to_vec();
                    head.extend_from_slice(hash.as_bytes());
                    t_meta.insert(AUDIT_HEAD, head)?;
                }
                Ok(())
            },
        );
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(io(e)),
        }
        self.flush()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io)
    }
}
