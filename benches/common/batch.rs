//! Builds the batches correlation would commit for new incidents (one alert each, with
//! their audit entries), for the store benchmark and the growth seeder.

use triaged::alerts::{Alert, AlertState, AlertStatus, Disposition, Source};
use triaged::incidents::{Incident, IncidentId, IncidentSpec, Level, ResolutionCode};
use triaged::store::Batch;

/// A batch opening incidents `start..start + n`.
#[allow(dead_code)]
pub fn batch(start: u64, n: u64) -> Batch {
    build(start, n, false)
}

/// The same, with every incident already resolved (history, as a store that has run
/// for years mostly holds).
#[allow(dead_code)]
pub fn resolved_batch(start: u64, n: u64) -> Batch {
    build(start, n, true)
}

fn build(start: u64, n: u64, resolved: bool) -> Batch {
    let now: jiff::Timestamp = "2026-11-29T01:00:00Z".parse().unwrap();
    let mut b = Batch {
        incident_counter: Some((start, start + n)),
        ..Batch::default()
    };
    for id in start..start + n {
        let fp = format!("{id:016x}");
        let spec = IncidentSpec {
            key: format!("SeedAlert{}/svc{}", id % 500, id % 20),
            title: format!("seeded alert {id}"),
            service: Some(format!("svc{}", id % 20)),
            ci: None,
            impact: Level::Medium,
            urgency: Level::Medium,
            major: false,
            sinks: Vec::new(),
        };
        let (mut inc, opened) = Incident::open(
            IncidentId(id),
            &spec,
            "50-severity.rhai",
            now,
            now,
            &triaged::incidents::Policy::default(),
        );
        let attached = inc.attach_firing(&fp, "SeedAlert", false, now);
        b.audit.push((now, "rule:50-severity.rhai".into(), opened));
        b.audit
            .push((now, "rule:50-severity.rhai".into(), attached));
        let mut status = AlertStatus::Firing;
        if resolved {
            let change = inc.resolve(ResolutionCode::AlertsCleared, "seeded".into(), now, now);
            b.audit.push((now, "system".into(), change));
            status = AlertStatus::Resolved;
        }
        b.keys.push((spec.key.clone(), inc.id));
        b.attachments.push((inc.id, fp.clone()));
        b.incidents.push(inc);
        b.alert_contents.push(Alert {
            source: Source::Alertmanager,
            fingerprint: fp.clone(),
            status,
            labels: [("alertname".to_string(), "SeedAlert".to_string())].into(),
            annotations: Default::default(),
            starts_at: now,
            ends_at: None,
            generator_url: None,
            received_at: now,
        });
        b.alert_states.push((
            fp,
            AlertState {
                status,
                starts_at: now,
                first_seen: now,
                last_seen: now,
                notifications: 1,
                disposition: Disposition::Attached {
                    incident: IncidentId(id),
                },
                flips: 0,
                flips_since: now,
            },
        ));
    }
    b
}
