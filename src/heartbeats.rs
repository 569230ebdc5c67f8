//! Dead-man switches (`[[heartbeats]]`): alerts that must keep arriving.
//!
//! Alertmanager's `Watchdog` fires all the time to prove the alerting pipeline works;
//! the rules drop it, and this module watches that it keeps coming. Correlation
//! reports every firing alert it receives ([`Heartbeats::observe`]); a task in the
//! daemon asks every second what is due ([`Heartbeats::due`]) and submits it like any
//! other alert: a firing `HeartbeatMissing` alert (labels `heartbeat`, `service`,
//! `severity` and the heartbeat's own labels) once a heartbeat has not been seen for
//! its interval, and the same alert resolved once it is seen again, so the incident it
//! opened resolves through the ordinary path. Only after the store has taken it is the
//! state moved on ([`Heartbeats::settle`]), so a refused submission is retried.
//!
//! State across restarts: the raised alert is an ordinary stored alert, so at start
//! [`Heartbeats::restore`] finds one still firing and keeps the heartbeat missing until
//! it beats again. A heartbeat gets its full interval after each start.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

use crate::alerts::{Alert, AlertStatus, LabelSet, Source};
use crate::config::Heartbeat;
use crate::store::{Store, StoreError};

/// The alert name of the alert raised for a silent heartbeat.
pub const MISSING_ALERTNAME: &str = "HeartbeatMissing";

pub struct Heartbeats {
    specs: Vec<Heartbeat>,
    beats: Mutex<Vec<Beat>>,
}

#[derive(Debug, Clone, Copy)]
struct Beat {
    last_seen: Timestamp,
    /// Since when it has been reported missing (the raised alert is firing).
    missing_since: Option<Timestamp>,
}

/// One change to submit: the alert, and what the heartbeat's state becomes once the
/// store has it.
#[derive(Debug, Clone)]
pub struct Due {
    index: usize,
    pub alert: Alert,
    missing_since: Option<Timestamp>,
}

impl Heartbeats {
    /// Every heartbeat counts as seen at `started`.
    pub fn new(specs: Vec<Heartbeat>, started: Timestamp) -> Heartbeats {
        let beats = specs
            .iter()
            .map(|_| Beat {
                last_seen: started,
                missing_since: None,
            })
            .collect();
        Heartbeats {
            specs,
            beats: Mutex::new(beats),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Each heartbeat's name and whether it is missing now.
    pub fn states(&self) -> Vec<(String, bool)> {
        let beats = self.beats();
        self.specs
            .iter()
            .zip(beats.iter())
            .map(|(s, b)| (s.name.clone(), b.missing_since.is_some()))
            .collect()
    }

    fn beats(&self) -> std::sync::MutexGuard<'_, Vec<Beat>> {
        self.beats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a received alert: a firing alert that matches a heartbeat is a beat.
    pub fn observe(&self, alert: &Alert) {
        if self.specs.is_empty() || alert.status != AlertStatus::Firing {
            return;
        }
        for (i, spec) in self.specs.iter().enumerate() {
            let matches = alert.name() == spec.alertname
                && spec
                    .labels
                    .iter()
                    .all(|(k, v)| alert.labels.get(k) == Some(v));
            if matches {
                let mut beats = self.beats();
                let beat = &mut beats[i];
                beat.last_seen = beat.last_seen.max(alert.received_at);
            }
        }
    }

    /// The labels of the alert raised for `spec`.
    fn missing_labels(spec: &Heartbeat) -> LabelSet {
        let mut labels: LabelSet = spec.labels.clone();
        labels.insert("alertname".into(), MISSING_ALERTNAME.into());
        labels.insert("heartbeat".into(), spec.name.clone());
        labels.insert("service".into(), spec.service.clone());
        labels.insert("severity".into(), spec.severity.clone());
        labels
    }

    fn missing_alert(
        spec: &Heartbeat,
        status: AlertStatus,
        starts_at: Timestamp,
        now: Timestamp,
    ) -> Alert {
        let labels = Self::missing_labels(spec);
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "summary".into(),
            format!(
                "No {} alert for {} s (heartbeat {})",
                spec.alertname,
                spec.interval.as_secs(),
                spec.name
            ),
        );
        annotations.insert(
            "description".into(),
            "The alerting pipeline that sends this heartbeat (Prometheus, Alertmanager, \
             the network between them and triaged) may be down: alerts may not be \
             reaching triaged."
                .into(),
        );
        Alert {
            source: Source::Heartbeat,
            fingerprint: crate::alerts::fingerprint(&labels),
            status,
            labels,
            annotations,
            starts_at,
            ends_at: (status == AlertStatus::Resolved).then_some(now),
            generator_url: None,
            received_at: now,
        }
    }

    /// After a restart: a raised alert still firing in the store keeps its heartbeat
    /// missing (it is resolved when the heartbeat comes back).
    pub fn restore(&self, store: &dyn Store) -> Result<(), StoreError> {
        for (i, spec) in self.specs.iter().enumerate() {
            let fp = crate::alerts::fingerprint(&Self::missing_labels(spec));
            if let Some(state) = store.alert_state(&fp)? {
                if state.status == AlertStatus::Firing {
                    let mut beats = self.beats();
                    beats[i].missing_since = Some(state.starts_at);
                    beats[i].last_seen = beats[i].last_seen.min(state.starts_at);
                }
            }
        }
        Ok(())
    }

    /// What is due at `now`: heartbeats silent for longer than their interval, and
    /// missing ones seen again.
    pub fn due(&self, now: Timestamp) -> Vec<Due> {
        let beats = self.beats();
        let mut due = Vec::new();
        for (i, (spec, beat)) in self.specs.iter().zip(beats.iter()).enumerate() {
            let interval = SignedDuration::try_from(spec.interval).unwrap_or(SignedDuration::MAX);
            let deadline = beat
                .last_seen
                .checked_add(interval)
                .unwrap_or(Timestamp::MAX);
            match beat.missing_since {
                None if now > deadline => due.push(Due {
                    index: i,
                    alert: Self::missing_alert(spec, AlertStatus::Firing, deadline, now),
                    missing_since: Some(deadline),
                }),
                Some(since) if beat.last_seen > since => due.push(Due {
                    index: i,
                    alert: Self::missing_alert(spec, AlertStatus::Resolved, since, now),
                    missing_since: None,
                }),
                _ => {}
            }
        }
        due
    }

    /// Moves the state on once the store has taken `due`.
    pub fn settle(&self, due: &[Due]) {
        let mut beats = self.beats();
        for d in due {
            beats[d.index].missing_since = d.missing_since;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(interval_secs: u64) -> Heartbeat {
        Heartbeat {
            name: "am".into(),
            alertname: "Watchdog".into(),
            labels: [("cluster".to_string(), "eu".to_string())].into(),
            interval: std::time::Duration::from_secs(interval_secs),
            service: "monitoring".into(),
            severity: "critical".into(),
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn watchdog(cluster: &str, at: Timestamp) -> Alert {
        let labels: LabelSet = [
            ("alertname".to_string(), "Watchdog".to_string()),
            ("cluster".to_string(), cluster.to_string()),
        ]
        .into();
        Alert {
            source: Source::Alertmanager,
            fingerprint: crate::alerts::fingerprint(&labels),
            status: AlertStatus::Firing,
            labels,
            annotations: BTreeMap::new(),
            starts_at: at,
            ends_at: None,
            generator_url: None,
            received_at: at,
        }
    }

    #[test]
    fn a_silent_heartbeat_fires_once_and_resolves_when_it_beats_again() {
        let hb = Heartbeats::new(vec![spec(60)], t(0));
        hb.observe(&watchdog("eu", t(30)));
        assert!(hb.due(t(90)).is_empty(), "seen at 30, due after 90");
        // Another cluster's Watchdog is not this heartbeat.
        hb.observe(&watchdog("us", t(85)));
        let due = hb.due(t(91));
        assert_eq!(due.len(), 1);
        let a = &due[0].alert;
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.name(), MISSING_ALERTNAME);
        assert_eq!(a.label("heartbeat"), Some("am"));
        assert_eq!(a.label("service"), Some("monitoring"));
        assert_eq!(a.label("cluster"), Some("eu"));
        assert_eq!(a.starts_at, t(90));
        assert_eq!(a.source, Source::Heartbeat);

        // Not settled (the store refused it): due again.
        assert_eq!(hb.due(t(92)).len(), 1);
        hb.settle(&due);
        assert!(hb.due(t(93)).is_empty(), "raised once");

        hb.observe(&watchdog("eu", t(120)));
        let due = hb.due(t(121));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].alert.status, AlertStatus::Resolved);
        assert_eq!(due[0].alert.fingerprint, a.fingerprint, "the same alert");
        hb.settle(&due);
        assert!(hb.due(t(122)).is_empty());
        assert!(hb.due(t(181)).len() == 1, "silent again after 120 + 60");
    }
}
