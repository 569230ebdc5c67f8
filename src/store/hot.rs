//! The states of the alerts correlation touches most (every firing alert, recently
//! seen resolved ones), kept in memory in a compact form.
//!
//! With 100k firing alerts this map is the largest thing the daemon holds after a
//! storm, so an entry is 80 bytes instead of ~200 (a `String` key and an
//! `AlertState` with its timestamps and disposition): fingerprints that are 16
//! lowercase hex digits (Alertmanager's and triaged's own) are stored as the `u64`
//! they spell, and an attached, firing-or-resolved state as plain numbers. Anything
//! else (other fingerprints, alerts a rule dropped, with their strings) is kept as it
//! is in a second map.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::alerts::{AlertState, AlertStatus, Disposition};
use crate::incidents::IncidentId;

#[derive(Default)]
pub(crate) struct HotStates {
    compact: HashMap<u64, Compact>,
    other: HashMap<String, AlertState>,
}

/// An `AlertState` whose disposition is `Attached` or `Unattached`.
#[derive(Clone, Copy)]
struct Compact {
    /// starts_at, first_seen, last_seen, flips_since.
    seconds: [i64; 4],
    nanos: [i32; 4],
    notifications: u64,
    /// 0: unattached.
    incident: u64,
    flips: u32,
    firing: bool,
}

/// The number a fingerprint of exactly 16 lowercase hex digits spells.
fn compact_key(fingerprint: &str) -> Option<u64> {
    let b = fingerprint.as_bytes();
    if b.len() == 16 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        u64::from_str_radix(fingerprint, 16).ok()
    } else {
        None
    }
}

impl Compact {
    fn of(s: &AlertState) -> Option<Compact> {
        let incident = match &s.disposition {
            Disposition::Attached { incident } if incident.0 != 0 => incident.0,
            Disposition::Unattached => 0,
            _ => return None,
        };
        let times = [s.starts_at, s.first_seen, s.last_seen, s.flips_since];
        Some(Compact {
            seconds: times.map(|t| t.as_second()),
            nanos: times.map(|t| t.subsec_nanosecond()),
            notifications: s.notifications,
            incident,
            flips: s.flips,
            firing: s.status == AlertStatus::Firing,
        })
    }

    fn at(&self, i: usize) -> Timestamp {
        Timestamp::new(self.seconds[i], self.nanos[i]).expect("taken apart from a valid timestamp")
    }

    fn state(&self) -> AlertState {
        AlertState {
            status: if self.firing {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            },
            starts_at: self.at(0),
            first_seen: self.at(1),
            last_seen: self.at(2),
            notifications: self.notifications,
            disposition: match self.incident {
                0 => Disposition::Unattached,
                n => Disposition::Attached {
                    incident: IncidentId(n),
                },
            },
            flips: self.flips,
            flips_since: self.at(3),
        }
    }
}

impl HotStates {
    pub(crate) fn get(&self, fingerprint: &str) -> Option<AlertState> {
        match compact_key(fingerprint) {
            Some(k) => match self.compact.get(&k) {
                Some(c) => Some(c.state()),
                None => self.other.get(fingerprint).cloned(),
            },
            None => self.other.get(fingerprint).cloned(),
        }
    }

    pub(crate) fn insert(&mut self, fingerprint: &str, state: AlertState) {
        match (compact_key(fingerprint), Compact::of(&state)) {
            (Some(k), Some(c)) => {
                self.compact.insert(k, c);
                self.other.remove(fingerprint);
            }
            (key, _) => {
                if let Some(k) = key {
                    self.compact.remove(&k);
                }
                self.other.insert(fingerprint.to_string(), state);
            }
        }
    }

    /// Inserts unless the fingerprint is already here.
    pub(crate) fn insert_if_absent(&mut self, fingerprint: &str, state: AlertState) {
        if self.get(fingerprint).is_none() {
            self.insert(fingerprint, state);
        }
    }

    /// Keeps the states for which `keep(status, last_seen)` holds.
    pub(crate) fn retain(&mut self, keep: impl Fn(AlertStatus, Timestamp) -> bool) {
        self.compact.retain(|_, c| {
            let status = if c.firing {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            };
            keep(status, c.at(2))
        });
        self.other.retain(|_, s| keep(s.status, s.last_seen));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.compact.len() + self.other.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: AlertStatus, disposition: Disposition) -> AlertState {
        AlertState {
            status,
            starts_at: Timestamp::new(1_800_000_000, 123_456_789).unwrap(),
            first_seen: Timestamp::new(-62_135_596_800, 0).unwrap(), // year 1
            last_seen: Timestamp::new(1_800_000_100, 999_999_999).unwrap(),
            notifications: u64::MAX,
            disposition,
            flips: 7,
            flips_since: Timestamp::new(1_800_000_050, 5).unwrap(),
        }
    }

    #[test]
    fn every_state_comes_back_as_it_went_in() {
        let attached = Disposition::Attached {
            incident: IncidentId(7),
        };
        let dropped = Disposition::Dropped {
            rule: "10-heartbeats.rhai".into(),
            reason: "heartbeat".into(),
        };
        let cases = [
            (
                "0123456789abcdef",
                state(AlertStatus::Firing, attached.clone()),
            ),
            (
                "fedcba9876543210",
                state(AlertStatus::Resolved, Disposition::Unattached),
            ),
            (
                "0123456789abcdeF",
                state(AlertStatus::Firing, attached.clone()),
            ),
            ("0123456789abcde", state(AlertStatus::Firing, attached)),
            (
                "my-own-key",
                state(AlertStatus::Resolved, Disposition::Unattached),
            ),
            ("aaaaaaaaaaaaaaaa", state(AlertStatus::Firing, dropped)),
        ];
        let mut hot = HotStates::default();
        for (fp, s) in &cases {
            hot.insert(fp, s.clone());
        }
        assert_eq!(hot.len(), cases.len());
        for (fp, s) in &cases {
            assert_eq!(hot.get(fp).as_ref(), Some(s), "{fp}");
        }
        assert_eq!(
            hot.compact.len(),
            2,
            "hex fingerprints of attached/unattached states"
        );
        assert!(hot.get("0000000000000000").is_none());
    }

    #[test]
    fn a_state_moves_between_the_forms_without_a_stale_copy() {
        let mut hot = HotStates::default();
        let fp = "00000000000000ff";
        hot.insert(fp, state(AlertStatus::Firing, Disposition::Unattached));
        let dropped = state(
            AlertStatus::Firing,
            Disposition::Dropped {
                rule: "r".into(),
                reason: "x".into(),
            },
        );
        hot.insert(fp, dropped.clone());
        assert_eq!(hot.get(fp), Some(dropped));
        assert_eq!(hot.len(), 1);
        let back = state(AlertStatus::Resolved, Disposition::Unattached);
        hot.insert(fp, back.clone());
        assert_eq!(hot.get(fp), Some(back));
        assert_eq!(hot.len(), 1);
        hot.insert_if_absent(fp, state(AlertStatus::Firing, Disposition::Unattached));
        assert_eq!(hot.get(fp).unwrap().status, AlertStatus::Resolved);
    }

    #[test]
    fn retain_sees_status_and_last_seen() {
        let mut hot = HotStates::default();
        hot.insert(
            "0000000000000001",
            state(AlertStatus::Firing, Disposition::Unattached),
        );
        hot.insert(
            "0000000000000002",
            state(AlertStatus::Resolved, Disposition::Unattached),
        );
        hot.insert(
            "other",
            state(AlertStatus::Resolved, Disposition::Unattached),
        );
        hot.retain(|status, _| status == AlertStatus::Firing);
        assert_eq!(hot.len(), 1);
        assert!(hot.get("0000000000000001").is_some());
        let cutoff = Timestamp::new(1_800_000_101, 0).unwrap();
        hot.retain(|_, last_seen| last_seen >= cutoff);
        assert_eq!(hot.len(), 0);
    }
}
