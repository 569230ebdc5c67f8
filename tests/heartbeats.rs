//! Dead-man switches over the daemon: a `[[heartbeats]]` alert that stops arriving
//! opens an incident, which resolves when it comes back, also across a restart.

mod common;

use common::{am_alert, am_payload, wait_for, Daemon, AM_PATH};
use serde_json::{json, Value};

const HEARTBEAT: &str = "[[heartbeats]]\nname = \"am-eu\"\nalertname = \"Watchdog\"\n\
                         labels = { cluster = \"eu\" }\ninterval_secs = 2\n";

async fn beat(d: &Daemon) {
    let alert = am_alert(
        "firing",
        json!({"alertname": "Watchdog", "cluster": "eu", "severity": "none"}),
        "2026-11-29T00:00:00Z",
    );
    let (status, body) = d.post_json(AM_PATH, &am_payload(vec![alert])).await;
    assert_eq!(status, 200, "{body}");
}

/// The HeartbeatMissing incidents, oldest first.
async fn missing(d: &Daemon) -> Vec<Value> {
    let (_, list) = d.get("/api/v1/incidents?status=any").await;
    let mut v: Vec<Value> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["key"] == "HeartbeatMissing/am-eu")
        .cloned()
        .collect();
    v.reverse();
    v
}

async fn wait_status(d: &Daemon, what: &str, status: &str) -> Value {
    wait_for(15, what, || async {
        missing(d)
            .await
            .last()
            .filter(|i| i["status"] == status)
            .cloned()
    })
    .await
}

#[tokio::test]
async fn a_silent_heartbeat_opens_an_incident_that_resolves_when_it_beats_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, HEARTBEAT).await;
    beat(&d).await;
    // The Watchdog itself is dropped by the shipped rules: no incident for it.
    let (_, alerts) = d.get("/api/v1/alerts").await;
    assert_eq!(
        alerts["alerts"][0]["disposition"]["kind"], "dropped",
        "{alerts}"
    );

    assert!(
        d.metrics()
            .await
            .contains("triaged_heartbeat_missing{heartbeat=\"am-eu\"} 0"),
        "{}",
        d.metrics().await
    );
    let opened = wait_status(&d, "the missing heartbeat's incident", "new").await;
    assert!(d
        .metrics()
        .await
        .contains("triaged_heartbeat_missing{heartbeat=\"am-eu\"} 1"));
    assert_eq!(opened["priority"], "P1", "{opened}");
    assert_eq!(opened["service"], "am-eu");
    assert!(
        opened["title"]
            .as_str()
            .unwrap()
            .contains("No Watchdog alert for 2 s"),
        "{opened}"
    );
    let id = opened["id"].as_str().unwrap().to_string();
    let (_, detail) = d.get(&format!("/api/v1/incidents/{id}")).await;
    let raised = &detail["alerts"][0];
    assert_eq!(raised["source"], "heartbeat", "{detail}");
    assert_eq!(raised["labels"]["cluster"], "eu");
    assert_eq!(raised["labels"]["heartbeat"], "am-eu");

    beat(&d).await;
    let resolved = wait_status(&d, "the incident to resolve", "resolved").await;
    assert_eq!(resolved["id"], id.as_str());
    assert!(d
        .metrics()
        .await
        .contains("triaged_heartbeat_missing{heartbeat=\"am-eu\"} 0"));
    assert_eq!(
        resolved["resolution"]["code"], "alerts_cleared",
        "{resolved}"
    );

    // Silent again: the same incident reopens (within the reopen window).
    let reopened = wait_status(&d, "the incident to reopen", "new").await;
    assert_eq!(reopened["id"], id.as_str());
    assert_eq!(reopened["reopened"], 1);
    d.stop().await;

    // After a restart the raised alert is still firing: the first beat resolves it.
    let d = Daemon::start(&data, HEARTBEAT).await;
    beat(&d).await;
    let resolved = wait_status(&d, "the incident to resolve after the restart", "resolved").await;
    assert_eq!(resolved["id"], id.as_str());
    assert_eq!(missing(&d).await.len(), 1, "one incident all along");
    d.stop().await;
}

#[tokio::test]
async fn heartbeat_config_errors_name_the_entry() {
    let src = "[[heartbeats]]\nname = \"x\"\nalertname = \"Watchdog\"\ninterval_secs = 0\n";
    let err = triaged::config::Settings::from_toml(
        std::path::Path::new("t.toml"),
        src,
        &triaged::config::Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(err.key, "heartbeats[0].interval_secs");
    assert_eq!(err.position, Some((4, 1)));
    let src = "[[heartbeats]]\nname = \"x\"\nalertname = \"W\"\ninterval_secs = 5\n\
               [[heartbeats]]\nname = \"x\"\nalertname = \"W\"\ninterval_secs = 5\n";
    let err = triaged::config::Settings::from_toml(
        std::path::Path::new("t.toml"),
        src,
        &triaged::config::Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(err.key, "heartbeats[1].name");
}
