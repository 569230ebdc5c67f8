//! Changes over HTTP: `POST /api/v1/changes` records `CHG-n` (idempotent on the
//! sender's external id), the read API shows them with their timeline, bad input gets
//! a 4xx naming the field, and rules see them through `changes_for_service`, also after
//! a restart.

mod common;

use std::path::Path;

use common::{am_alert, am_payload, status_json, Daemon, AM_PATH};
use serde_json::{json, Value};

const TOKENS: &str = "[[server.tokens]]\nname = \"ci\"\nrole = \"ingest\"\ntoken = \"ingest-token-0123456789\"\n\
                      [[server.tokens]]\nname = \"sre\"\nrole = \"operator\"\ntoken = \"operator-token-0123456789\"\n";
const INGEST: &str = "ingest-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";

/// A rule that keys alerts on services with a change in the last hour apart.
const RULE: &str = r#"
fn on_alert(alert) {
    let service = label(alert, "service", "");
    if changes_for_service(service, 3600) > 0 {
        return incident(#{ key: "after-change/" + service });
    }
}
"#;

fn rules_dir(dir: &Path) -> std::path::PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("20-changes.rhai"), RULE).unwrap();
    rules
}

async fn post(d: &Daemon, token: &str, body: &Value) -> (u16, Value) {
    let resp = d
        .client
        .post(d.url("/api/v1/changes"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    status_json(resp).await
}

async fn get(d: &Daemon, path: &str) -> (u16, Value) {
    let resp = d
        .client
        .get(d.url(path))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    status_json(resp).await
}

fn window() -> (String, String) {
    let now = jiff::Timestamp::now();
    let ten = jiff::SignedDuration::from_mins(10);
    (
        now.checked_sub(ten).unwrap().to_string(),
        now.checked_add(ten).unwrap().to_string(),
    )
}

async fn incident_key(d: &Daemon, alertname: &str, service: &str) -> String {
    let alert = am_alert(
        "firing",
        json!({"alertname": alertname, "service": service}),
        "2026-11-29T10:00:00Z",
    );
    let resp = d
        .client
        .post(d.url(AM_PATH))
        .bearer_auth(INGEST)
        .json(&am_payload(vec![alert.clone()]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The incident the alert went to (it may have joined an open one).
    let fp = alert["fingerprint"].as_str().unwrap().to_string();
    let (_, alert) = get(d, &format!("/api/v1/alerts/{fp}")).await;
    let id = alert["disposition"]["incident"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, inc) = get(d, &format!("/api/v1/incidents/{id}")).await;
    inc["key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn changes_are_recorded_idempotently_read_back_and_seen_by_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_dir(tmp.path());
    let data = tmp.path().join("data");
    let d = Daemon::start_with_rules(&data, &rules, TOKENS).await;
    let (start, end) = window();
    let change = json!({
        "service": "checkout", "summary": "deploy v1.2.3", "status": "approved",
        "window_start": start, "window_end": end, "external_id": "pipeline-42"
    });
    let (code, created) = post(&d, INGEST, &change).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["id"], "CHG-1");
    assert_eq!(created["recorded_by"], "token:ci");

    // The same post again changes nothing; a new status updates the same change.
    let (code, again) = post(&d, INGEST, &change).await;
    assert_eq!((code, &again["id"]), (200, &json!("CHG-1")), "{again}");
    let mut done = change.clone();
    done["status"] = json!("completed");
    let (code, updated) = post(&d, INGEST, &done).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(
        (updated["id"].as_str(), updated["status"].as_str()),
        (Some("CHG-1"), Some("completed"))
    );

    let (code, one) = get(&d, "/api/v1/changes/CHG-1").await;
    assert_eq!(code, 200, "{one}");
    let actions: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["recorded", "updated"]);
    assert_eq!(one["timeline"][1]["from"], "approved");

    // Rules see the change on its service, not on others.
    assert_eq!(
        incident_key(&d, "Slow", "checkout").await,
        "after-change/checkout"
    );
    assert_eq!(incident_key(&d, "Slow", "blog").await, "Slow/blog");
    // The incident on the changed service links the change as a suspected cause.
    let (_, incidents) = get(&d, "/api/v1/incidents").await;
    let by_key = |key: &str| {
        incidents["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == key)
            .unwrap()
            .clone()
    };
    let checkout = by_key("after-change/checkout");
    assert_eq!(checkout["changes"], json!(["CHG-1"]), "{checkout}");
    assert_eq!(by_key("Slow/blog")["changes"], json!([]));
    let path = format!(
        "/api/v1/incidents/{}/timeline",
        checkout["id"].as_str().unwrap()
    );
    let (_, t) = get(&d, &path).await;
    let linked = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "changes_linked")
        .expect("audited")
        .clone();
    assert_eq!(linked["detail"], "suspected cause: CHG-1");
    d.stop().await;

    // After a restart: the same, from sled; the counter goes on.
    let d = Daemon::start_with_rules(&data, &rules, TOKENS).await;
    let (code, again) = post(&d, INGEST, &done).await;
    assert_eq!((code, &again["id"]), (200, &json!("CHG-1")), "{again}");
    let mut other = change.clone();
    other["external_id"] = json!("pipeline-43");
    other["service"] = json!("search");
    let (code, second) = post(&d, INGEST, &other).await;
    assert_eq!((code, &second["id"]), (201, &json!("CHG-2")), "{second}");
    assert_eq!(
        incident_key(&d, "Down", "checkout").await,
        "after-change/checkout"
    );
    assert_eq!(
        incident_key(&d, "Down", "search").await,
        "after-change/search"
    );
    // Moved into the past (the window ended two hours ago): no longer counted.
    let now = jiff::Timestamp::now();
    let mut moved = other.clone();
    moved["window_start"] = json!(now
        .checked_sub(jiff::SignedDuration::from_hours(3))
        .unwrap()
        .to_string());
    moved["window_end"] = json!(now
        .checked_sub(jiff::SignedDuration::from_hours(2))
        .unwrap()
        .to_string());
    let (code, _) = post(&d, INGEST, &moved).await;
    assert_eq!(code, 200);
    assert_eq!(incident_key(&d, "Cpu", "search").await, "Cpu/search");
    d.stop().await;
    let d = Daemon::start_with_rules(&data, &rules, TOKENS).await;
    assert_eq!(
        incident_key(&d, "Mem", "search").await,
        "Mem/search",
        "the index moved too"
    );
    let (_, list) = get(&d, "/api/v1/changes?limit=10").await;
    let ids: Vec<&str> = list["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["CHG-2", "CHG-1"]);
    d.stop().await;
}

#[tokio::test]
async fn bad_change_posts_name_the_field_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), TOKENS).await;
    let (start, end) = window();
    let good = json!({"service": "checkout", "summary": "deploy", "window_start": start, "window_end": end});
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"summary": "deploy", "window_start": start, "window_end": end}),
            400,
            "service",
        ),
        (
            json!({"service": "x", "summary": "deploy", "window_start": end, "window_end": start}),
            422,
            "window_end",
        ),
        (
            json!({"service": "x", "summary": "deploy", "window_start": "yesterday", "window_end": end}),
            400,
            "window_start",
        ),
        (
            json!({"service": "x", "summary": "d", "window_start": start, "window_end": end, "status": "done"}),
            400,
            "status",
        ),
        (
            json!({"service": "x", "summary": "d", "window_start": start, "window_end": end, "owner": "me"}),
            400,
            "owner",
        ),
        (
            json!({"service": " ", "summary": "d", "window_start": start, "window_end": end}),
            422,
            "service",
        ),
    ];
    for (body, status, field) in cases {
        let (code, err) = post(&d, INGEST, &body).await;
        assert_eq!(code, status, "{body} → {err}");
        assert_eq!(err["field"], field, "{body} → {err}");
    }
    // Roles: an operator may read, not record; without a token, nothing.
    let (code, _) = post(&d, OPERATOR, &good).await;
    assert_eq!(code, 403);
    let resp = d
        .client
        .post(d.url("/api/v1/changes"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = d
        .client
        .post(d.url("/api/v1/changes"))
        .bearer_auth(INGEST)
        .header("content-type", "text/plain")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let (_, list) = get(&d, "/api/v1/changes").await;
    assert_eq!(list["changes"], json!([]), "nothing stored");
    let (code, err) = get(&d, "/api/v1/changes/CHG-1").await;
    assert_eq!((code, err["field"].as_str()), (404, Some("id")));
    let (code, _) = get(&d, "/api/v1/changes?limit=0").await;
    assert_eq!(code, 400);
    d.stop().await;
}
