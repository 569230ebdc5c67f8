//! `triaged export`: every record and audit entry as JSON lines, for archiving (ISO/IEC
//! 20000-1 7.5: documented information kept and retrievable).
//!
//! One object per line, each with `"record"` naming its kind (`incident`, `problem`,
//! `change`, `alert`, `silence`, `outbox`, `audit`) beside the record's own fields as
//! the API shows them.
//! Read in pages, written as read: memory stays flat however large the store. With
//! `from`/`to`, only what happened in `[from, to)`: incidents and problems opened,
//! changes and silences recorded, alerts last seen, outbox events and audit entries
//! made then.

use std::io::Write;

use jiff::Timestamp;
use serde::Serialize;

use crate::store::{Store, StoreError};

const PAGE: usize = 1000;

/// How many lines of each kind were written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub incidents: u64,
    pub problems: u64,
    pub changes: u64,
    pub alerts: u64,
    pub silences: u64,
    pub outbox: u64,
    pub audit: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

fn line<T: Serialize>(out: &mut impl Write, kind: &str, record: &T) -> Result<(), ExportError> {
    let mut value = serde_json::to_value(record).expect("records serialize");
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("record".into(), kind.into());
    }
    serde_json::to_writer(&mut *out, &value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes the store's records to `out`; `from`/`to` bound them in time.
pub fn export(
    store: &dyn Store,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    out: &mut impl Write,
) -> Result<Counts, ExportError> {
    let within = |t: Timestamp| from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e);
    let mut counts = Counts::default();

    // Each kind in pages: `next` reads the page after a cursor, `keep` says whether a
    // record is in the window and writes it, `cursor` gives the next cursor.
    fn pages<T, C: Default>(
        mut next: impl FnMut(&C) -> Result<Vec<T>, StoreError>,
        cursor: impl Fn(&T) -> C,
        mut keep: impl FnMut(&T) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let mut after = C::default();
        loop {
            let page = next(&after)?;
            for r in &page {
                keep(r)?;
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = cursor(last),
                _ => return Ok(()),
            }
        }
    }
    pages(
        |a: &u64| store.incidents_page(*a, PAGE),
        |i| i.id.0,
        |i| {
            if within(i.opened_at) {
                line(out, "incident", i)?;
                counts.incidents += 1;
            }
            Ok(())
        },
    )?;
    pages(
        |a: &u64| store.problems_page(*a, PAGE),
        |p| p.id.0,
        |p| {
            if within(p.opened_at) {
                line(out, "problem", p)?;
                counts.problems += 1;
            }
            Ok(())
        },
    )?;
    pages(
        |a: &u64| store.changes_page(*a, PAGE),
        |c| c.id.0,
        |c| {
            if within(c.recorded_at) {
                line(out, "change", c)?;
                counts.changes += 1;
            }
            Ok(())
        },
    )?;
    pages(
        |a: &Option<String>| store.alerts_page(a.as_deref(), PAGE),
        |a| Some(a.alert.fingerprint.clone()),
        |a| {
            if within(a.last_seen) {
                line(out, "alert", a)?;
                counts.alerts += 1;
            }
            Ok(())
        },
    )?;
    for x in store.silences()? {
        if within(x.created_at) {
            line(out, "silence", &x)?;
            counts.silences += 1;
        }
    }
    pages(
        |a: &u64| store.outbox_page(*a, PAGE),
        |e| e.seq,
        |e| {
            if within(e.at) {
                // With its deliveries: when each sink was told, or why it was not.
                let mut v = serde_json::to_value(e).map_err(std::io::Error::other)?;
                v["deliveries"] = serde_json::to_value(store.deliveries_of(e.seq)?)
                    .map_err(std::io::Error::other)?;
                line(out, "outbox", &v)?;
                counts.outbox += 1;
            }
            Ok(())
        },
    )?;
    pages(
        |a: &u64| store.audit_page(*a, PAGE),
        |e| e.seq,
        |e| {
            if within(e.at) {
                line(out, "audit", e)?;
                counts.audit += 1;
            }
            Ok(())
        },
    )?;
    out.flush()?;
    Ok(counts)
}
