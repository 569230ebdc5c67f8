//! Flapping over the daemon: an alert that keeps changing status makes its incident
//! flap (it stays open), and the daemon's own ticks settle it once it is quiet, also
//! after a restart.

mod common;

use common::{am_alert, am_payload, wait_for, Daemon, AM_PATH};
use serde_json::{json, Value};

const POLICY: &str = "[incidents]\nflap_threshold = 2\nflap_window_secs = 2\n";

/// `starts_at`: each firing occurrence has its own (the same start again is a stale
/// copy, as from a second Alertmanager); its resolution carries the same.
async fn send(d: &Daemon, status: &str, starts_at: &str) {
    let alert = am_alert(
        status,
        json!({"alertname": "Lag", "service": "db", "severity": "warning"}),
        starts_at,
    );
    let (code, body) = d.post_json(AM_PATH, &am_payload(vec![alert])).await;
    assert_eq!(code, 200, "{body}");
}

async fn incident(d: &Daemon) -> Value {
    let (code, body) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(code, 200, "{body}");
    body
}

fn actions(inc: &Value) -> Vec<String> {
    inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_flapping_incident_stays_open_and_settles_by_itself_also_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, POLICY).await;
    // firing, then three changes: the third is more than the threshold of 2.
    for (status, starts_at) in [
        ("firing", "2026-11-29T00:00:00Z"),
        ("resolved", "2026-11-29T00:00:00Z"),
        ("firing", "2026-11-29T00:01:00Z"),
        ("resolved", "2026-11-29T00:01:00Z"),
    ] {
        send(&d, status, starts_at).await;
    }
    let inc = incident(&d).await;
    assert!(inc["flapping_since"].is_string(), "{inc}");
    assert_eq!(inc["status"], "new", "stays open while flapping: {inc}");
    assert_eq!(inc["alerts_firing"], 0);
    assert!(
        actions(&inc).contains(&"flapping_started".to_string()),
        "{inc}"
    );
    assert!(d.metrics().await.contains("triaged_incidents_flapping 1"));
    d.stop().await;

    // The restarted daemon knows it flaps and settles it once quiet for 2 s.
    let d = Daemon::start(&data, POLICY).await;
    let settled = wait_for(20, "the incident to settle and resolve", || async {
        let inc = incident(&d).await;
        (inc["status"] == "resolved").then_some(inc)
    })
    .await;
    assert!(settled["flapping_since"].is_null(), "{settled}");
    assert_eq!(settled["resolution"]["code"], "alerts_cleared");
    let acts = actions(&settled);
    let ended = acts
        .iter()
        .position(|a| a == "flapping_ended")
        .expect("flapping_ended");
    assert_eq!(acts[ended + 1], "resolved", "{acts:?}");
    assert!(d.metrics().await.contains("triaged_incidents_flapping 0"));
    d.stop().await;
}
