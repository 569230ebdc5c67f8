//! Problems over HTTP: the shipped recurrence rule opens `PRB-n` on the third incident
//! of a key within a day, links later ones, and the records survive a restart.

mod common;

use common::{am_alert, am_payload, Daemon, AM_PATH};
use serde_json::{json, Value};

/// No reopening, so that each firing after a resolution opens a new incident, and no
/// flap detection (the alert changes status six times within minutes here).
const POLICY: &str = "[incidents]\nreopen_window_secs = 0\nflap_threshold = 0\n";

/// Fires and resolves one occurrence of `alertname` (its own start time `minute`).
async fn occurrence(d: &Daemon, alertname: &str, minute: u32, resolve: bool) {
    let starts = format!("2026-11-29T00:{minute:02}:00Z");
    let labels = json!({"alertname": alertname, "service": "db", "severity": "warning"});
    let (code, body) = d
        .post_json(
            AM_PATH,
            &am_payload(vec![am_alert("firing", labels.clone(), &starts)]),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    if resolve {
        let (code, body) = d
            .post_json(
                AM_PATH,
                &am_payload(vec![am_alert("resolved", labels, &starts)]),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
}

fn actions(v: &Value) -> Vec<&str> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn recurring_incidents_open_a_problem_that_lasts_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, POLICY).await;
    occurrence(&d, "Lag", 1, true).await;
    occurrence(&d, "Lag", 2, true).await;
    let (_, list) = d.get("/api/v1/problems").await;
    assert_eq!(list["problems"], json!([]), "two incidents: no problem yet");
    occurrence(&d, "Lag", 3, true).await;

    let (code, list) = d.get("/api/v1/problems").await;
    assert_eq!(code, 200, "{list}");
    let problems = list["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{list}");
    assert_eq!(problems[0]["id"], "PRB-1");
    assert_eq!(problems[0]["key"], "Lag/db");
    assert_eq!(problems[0]["status"], "open");
    assert_eq!(problems[0]["opened_by"], "60-recurrence.rhai");
    assert_eq!(problems[0]["incidents"], json!(["INC-1", "INC-2", "INC-3"]));

    let (_, inc) = d.get("/api/v1/incidents/INC-3").await;
    assert_eq!(inc["problem"], "PRB-1", "{inc}");
    assert!(actions(&inc).contains(&"problem_linked"), "{inc}");
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(
        inc["problem"], "PRB-1",
        "the recurrence is linked too: {inc}"
    );
    d.stop().await;

    // After a restart: the next incident of the key links to PRB-1; another key's
    // third incident opens PRB-2.
    let d = Daemon::start(&data, POLICY).await;
    occurrence(&d, "Lag", 4, false).await;
    for minute in 5..8 {
        occurrence(&d, "Disk", minute, true).await;
    }
    let (_, one) = d.get("/api/v1/problems/PRB-1").await;
    assert_eq!(
        one["incidents"],
        json!(["INC-1", "INC-2", "INC-3", "INC-4"]),
        "{one}"
    );
    let mut expected = vec!["opened"];
    expected.extend(["incident_linked"; 4]);
    assert_eq!(actions(&one), expected);
    assert_eq!(one["timeline"][0]["actor"], "rule:60-recurrence.rhai");
    let (_, two) = d.get("/api/v1/problems/PRB-2").await;
    assert_eq!(two["key"], "Disk/db", "{two}");
    assert_eq!(two["incidents"], json!(["INC-5", "INC-6", "INC-7"]));
    let (_, list) = d.get("/api/v1/problems?limit=1").await;
    assert_eq!(list["problems"][0]["id"], "PRB-2", "newest first: {list}");

    let (code, body) = d.get("/api/v1/problems/PRB-9").await;
    assert_eq!((code, body["field"].as_str()), (404, Some("id")), "{body}");
    let (code, body) = d.get("/api/v1/problems/INC-1").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = d.get("/api/v1/problems?status=open").await;
    assert_eq!(
        (code, body["field"].as_str()),
        (400, Some("status")),
        "{body}"
    );
    d.stop().await;
}

async fn post(d: &Daemon, path: &str, body: Value) -> (u16, Value) {
    d.post_json(path, &body).await
}

/// A problem opened by hand, linked, moved to known error (whose workaround new
/// incidents of its key get), resolved, closed; every refusal names what stands in
/// the way.
#[tokio::test]
async fn problems_by_hand_and_known_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), POLICY).await;
    occurrence(&d, "Leak", 1, true).await; // INC-1, resolved
    occurrence(&d, "Other", 2, false).await; // INC-2

    let (code, err) = post(&d, "/api/v1/problems", json!({"title": "t"})).await;
    assert_eq!((code, err["field"].as_str()), (422, Some("key")), "{err}");
    let (code, err) = post(
        &d,
        "/api/v1/problems",
        json!({"title": "t", "incidents": ["INC-9"]}),
    )
    .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (404, Some("incidents")),
        "{err}"
    );
    let (code, err) = post(&d, "/api/v1/problems", json!({"title": " ", "key": "k"})).await;
    assert_eq!((code, err["field"].as_str()), (422, Some("title")), "{err}");
    let (code, err) = post(&d, "/api/v1/problems", json!({"incidents": ["INC-1"]})).await;
    assert_eq!((code, err["field"].as_str()), (400, Some("title")), "{err}");

    let (code, prb) = post(
        &d,
        "/api/v1/problems",
        json!({"title": "Memory leak in the db proxy", "incidents": ["INC-1"]}),
    )
    .await;
    assert_eq!(code, 201, "{prb}");
    assert_eq!(
        (prb["id"].as_str(), prb["key"].as_str()),
        (Some("PRB-1"), Some("Leak/db"))
    );
    assert_eq!(prb["incidents"], json!(["INC-1"]));
    assert_eq!(prb["opened_by"], "token:anonymous");
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(inc["problem"], "PRB-1");

    // Known error: root cause and workaround both needed.
    let (code, err) = post(
        &d,
        "/api/v1/problems/PRB-1/known_error",
        json!({"root_cause": "fd leak"}),
    )
    .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("workaround")),
        "{err}"
    );
    let (code, prb) = post(
        &d,
        "/api/v1/problems/PRB-1/known_error",
        json!({"root_cause": "fd leak", "workaround": "restart the proxy"}),
    )
    .await;
    assert_eq!(
        (code, prb["status"].as_str()),
        (200, Some("known_error")),
        "{prb}"
    );

    // A new incident of the key gets the workaround and the link.
    occurrence(&d, "Leak", 3, false).await; // INC-3
    let (_, inc) = d.get("/api/v1/incidents/INC-3").await;
    assert_eq!(inc["workaround"], "restart the proxy", "{inc}");
    assert_eq!(inc["problem"], "PRB-1");
    assert!(actions(&inc).contains(&"workaround"));
    // Another key's incident gets none.
    let (_, inc) = d.get("/api/v1/incidents/INC-2").await;
    assert_eq!(inc["workaround"], Value::Null);

    // Link by hand; unknown ids are 404s naming the field.
    let (code, prb) = post(
        &d,
        "/api/v1/problems/PRB-1/link",
        json!({"incident": "INC-2"}),
    )
    .await;
    assert_eq!(code, 200, "{prb}");
    assert_eq!(prb["incidents"], json!(["INC-1", "INC-3", "INC-2"]));
    let (code, err) = post(
        &d,
        "/api/v1/problems/PRB-1/link",
        json!({"incident": "INC-99"}),
    )
    .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (404, Some("incident")),
        "{err}"
    );
    let (code, err) = post(&d, "/api/v1/problems/PRB-7/comment", json!({"text": "x"})).await;
    assert_eq!((code, err["field"].as_str()), (404, Some("id")), "{err}");
    let (code, err) = post(&d, "/api/v1/problems/PRB-1/snooze", json!({})).await;
    assert_eq!(
        (code, err["field"].as_str()),
        (404, Some("action")),
        "{err}"
    );

    let resp = d
        .client
        .patch(d.url("/api/v1/problems/PRB-1"))
        .json(&json!({"title": "Proxy fd leak"}))
        .send()
        .await
        .unwrap();
    let (code, prb) = common::status_json(resp).await;
    assert_eq!(
        (code, prb["title"].as_str()),
        (200, Some("Proxy fd leak")),
        "{prb}"
    );

    let (code, err) = post(&d, "/api/v1/problems/PRB-1/close", json!({})).await;
    assert_eq!(
        (code, err["current"].as_str()),
        (409, Some("known_error")),
        "{err}"
    );
    let (code, prb) = post(
        &d,
        "/api/v1/problems/PRB-1/resolve",
        json!({"note": "proxy 2.4.1"}),
    )
    .await;
    assert_eq!(
        (code, prb["status"].as_str()),
        (200, Some("resolved")),
        "{prb}"
    );
    assert!(prb["resolved_at"].is_string());
    // Resolved: new incidents of the key no longer get the workaround.
    let (code, _) = post(
        &d,
        "/api/v1/incidents/INC-3/resolve",
        json!({"code": "workaround", "note": "restarted"}),
    )
    .await;
    assert_eq!(code, 200);
    occurrence(&d, "Leak", 4, false).await; // INC-4
    let (_, inc) = d.get("/api/v1/incidents/INC-4").await;
    assert_eq!(inc["workaround"], Value::Null, "{inc}");
    let (code, prb) = post(
        &d,
        "/api/v1/problems/PRB-1/close",
        json!({"note": "verified"}),
    )
    .await;
    assert_eq!(
        (code, prb["status"].as_str()),
        (200, Some("closed")),
        "{prb}"
    );
    let (code, err) = post(&d, "/api/v1/problems/PRB-1/reopen", json!({})).await;
    assert_eq!(
        (code, err["current"].as_str()),
        (409, Some("closed")),
        "{err}"
    );
    let (code, _) = post(
        &d,
        "/api/v1/problems/PRB-1/comment",
        json!({"text": "archived"}),
    )
    .await;
    assert_eq!(code, 200);

    let (_, one) = d.get("/api/v1/problems/PRB-1").await;
    let by_hand: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "token:anonymous")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        by_hand,
        [
            "opened",
            "incident_linked",
            "root_cause",
            "workaround",
            "status",
            "incident_linked",
            "title",
            "status",
            "status",
            "comment"
        ],
        "{one}"
    );
}
