//! Silences, maintenance windows and approved change windows over HTTP: matching alerts
//! are recorded and attached but their incident is quiet (does not page); an alert that
//! pages ends it; expiry (by time or by hand) is honoured without a restart; only the
//! creator or an admin expires a silence; silences survive a restart.

mod common;

use common::{am_alert, am_payload, wait_for, Daemon, AM_PATH};
use serde_json::{json, Value};

const INGEST: &str = "ingest-token-0123456789";
const ONCALL: &str = "oncall-token-0123456789";
const OTHER: &str = "other-token-01234567890";
const ADMIN: &str = "admin-token-01234567890";

fn tokens() -> String {
    format!(
        "[[server.tokens]]\nname = \"am\"\nrole = \"ingest\"\ntoken = \"{INGEST}\"\n\
         [[server.tokens]]\nname = \"oncall\"\nrole = \"operator\"\ntoken = \"{ONCALL}\"\n\
         [[server.tokens]]\nname = \"other\"\nrole = \"operator\"\ntoken = \"{OTHER}\"\n\
         [[server.tokens]]\nname = \"boss\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n"
    )
}

async fn call(d: &Daemon, req: reqwest::RequestBuilder, token: &str) -> (u16, Value) {
    let _ = d;
    common::status_json(req.bearer_auth(token).send().await.unwrap()).await
}

async fn fire(d: &Daemon, labels: Value) {
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-29T00:00:00Z")]);
    let (code, v) = call(d, d.client.post(d.url(AM_PATH)).json(&body), INGEST).await;
    assert_eq!(code, 200, "{v}");
}

async fn silence(d: &Daemon, token: &str, body: Value) -> (u16, Value) {
    call(
        d,
        d.client.post(d.url("/api/v1/silences")).json(&body),
        token,
    )
    .await
}

async fn incident(d: &Daemon, id: &str) -> Value {
    let (code, v) = call(
        d,
        d.client.get(d.url(&format!("/api/v1/incidents/{id}"))),
        ONCALL,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    v
}

fn in_secs(secs: i64) -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap()
        .to_string()
}

fn m(name: &str, op: &str, value: &str) -> Value {
    json!({"name": name, "op": op, "value": value})
}

#[tokio::test]
async fn silenced_alerts_are_recorded_attached_and_quiet_until_the_silence_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, &tokens()).await;

    let (code, s1) = silence(
        &d,
        ONCALL,
        json!({"matchers": [m("service", "=", "db"), m("instance", "=~", "a.*")],
               "ends_at": in_secs(3600), "comment": "db migration"}),
    )
    .await;
    assert_eq!(code, 201, "{s1}");
    assert_eq!(
        (s1["id"].as_str(), s1["state"].as_str()),
        (Some("SIL-1"), Some("active"))
    );
    assert_eq!(s1["created_by"], "token:oncall");

    // A silenced alert opens its incident quietly: recorded, attached, not paging.
    fire(
        &d,
        json!({"alertname": "Lag", "service": "db", "instance": "a1", "severity": "warning"}),
    )
    .await;
    let inc = incident(&d, "INC-1").await;
    assert_eq!(inc["quiet"]["reason"], "silence", "{inc}");
    assert_eq!(inc["quiet"]["by"], "SIL-1");
    assert_eq!(inc["alerts_firing"], 1);
    assert_eq!(inc["alerts"][0]["disposition"]["kind"], "attached");
    // Its outbox event says why it must not page.
    let (_, out) = call(&d, d.client.get(d.url("/api/v1/outbox/events")), ONCALL).await;
    let opened = &out["events"][0];
    assert_eq!(
        (opened["kind"].as_str(), opened["record"].as_str()),
        (Some("opened"), Some("INC-1")),
        "{out}"
    );
    assert!(
        opened["quiet"]
            .as_str()
            .unwrap()
            .starts_with("silence SIL-1"),
        "{out}"
    );
    // One that is not silenced pages as usual …
    fire(
        &d,
        json!({"alertname": "Lag", "service": "web", "instance": "a1", "severity": "warning"}),
    )
    .await;
    assert_eq!(incident(&d, "INC-2").await["quiet"], Value::Null);
    // … and one that pages, joining the quiet incident, ends its quiet.
    fire(
        &d,
        json!({"alertname": "Lag", "service": "db", "instance": "b1", "severity": "warning"}),
    )
    .await;
    let inc = incident(&d, "INC-1").await;
    assert_eq!(inc["quiet"], Value::Null, "{inc}");
    assert_eq!(inc["alerts_firing"], 2);
    let quiet_entries: Vec<(&str, &str)> = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "quiet")
        .map(|e| {
            (
                e["to"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(quiet_entries.len(), 2, "{inc}");
    assert!(
        quiet_entries[0].0.starts_with("silence SIL-1 until"),
        "{quiet_entries:?}"
    );
    assert_eq!(quiet_entries[1], ("", "Lag pages"));

    // Expired by hand: only its creator or an admin; the incident pages at once.
    let (code, s2) = silence(
        &d,
        ONCALL,
        json!({"matchers": [m("alertname", "=", "Backup")], "ends_at": in_secs(3600), "comment": "nightly"}),
    )
    .await;
    assert_eq!(code, 201, "{s2}");
    fire(
        &d,
        json!({"alertname": "Backup", "service": "files", "severity": "warning"}),
    )
    .await;
    assert_eq!(incident(&d, "INC-3").await["quiet"]["by"], "SIL-2");
    let del = |token: &'static str| {
        let req = d.client.delete(d.url("/api/v1/silences/SIL-2"));
        call(&d, req, token)
    };
    let (code, err) = del(OTHER).await;
    assert_eq!(code, 403, "{err}");
    let (code, gone) = del(ONCALL).await;
    assert_eq!(
        (code, gone["state"].as_str()),
        (200, Some("expired")),
        "{gone}"
    );
    let (code, err) = del(ONCALL).await;
    assert_eq!(
        (code, err["current"].as_str()),
        (409, Some("expired")),
        "{err}"
    );
    wait_for(5, "INC-3 to page after its silence expired", || async {
        incident(&d, "INC-3").await["quiet"].is_null().then_some(())
    })
    .await;
    // New alerts it matched page now.
    fire(
        &d,
        json!({"alertname": "Backup", "service": "mail", "severity": "warning"}),
    )
    .await;
    assert_eq!(incident(&d, "INC-4").await["quiet"], Value::Null);

    // Expiry by time needs nothing but time.
    let (code, _) = silence(
        &d,
        OTHER,
        json!({"matchers": [m("alertname", "=", "Short")], "ends_at": in_secs(2), "comment": "blip"}),
    )
    .await;
    assert_eq!(code, 201);
    fire(
        &d,
        json!({"alertname": "Short", "service": "x", "severity": "warning"}),
    )
    .await;
    assert_eq!(incident(&d, "INC-5").await["quiet"]["by"], "SIL-3");
    wait_for(10, "INC-5 to page when SIL-3 ends", || async {
        incident(&d, "INC-5").await["quiet"].is_null().then_some(())
    })
    .await;
    // An admin expires anybody's silence.
    let (code, s4) = silence(
        &d,
        OTHER,
        json!({"matchers": [m("job", "=", "x")], "ends_at": in_secs(3600), "comment": "c"}),
    )
    .await;
    assert_eq!(code, 201, "{s4}");
    let (code, _) = call(&d, d.client.delete(d.url("/api/v1/silences/SIL-4")), ADMIN).await;
    assert_eq!(code, 200);

    // Lists by state; one silence with its timeline.
    let list = |q: &'static str| {
        let req = d.client.get(d.url(&format!("/api/v1/silences{q}")));
        call(&d, req, ONCALL)
    };
    let ids = |v: &Value| -> Vec<String> {
        v["silences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&list("").await.1), ["SIL-1"]);
    assert_eq!(
        ids(&list("?state=expired").await.1),
        ["SIL-4", "SIL-3", "SIL-2"]
    );
    assert_eq!(
        list("?state=any").await.1["silences"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(list("?state=gone").await.0, 400);
    let (code, one) = call(&d, d.client.get(d.url("/api/v1/silences/SIL-2")), ONCALL).await;
    assert_eq!(code, 200, "{one}");
    let actions: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "expired"]);
    assert_eq!(one["timeline"][1]["actor"], "token:oncall");

    // After a restart the active silence still silences.
    d.stop().await;
    let d = Daemon::start(&data, &tokens()).await;
    fire(
        &d,
        json!({"alertname": "Other", "service": "db", "instance": "a9", "severity": "warning"}),
    )
    .await;
    assert_eq!(incident(&d, "INC-6").await["quiet"]["by"], "SIL-1");
    let (code, s5) = silence(
        &d,
        ONCALL,
        json!({"matchers": [m("job", "=", "y")], "ends_at": in_secs(60), "comment": "c"}),
    )
    .await;
    assert_eq!(
        (code, s5["id"].as_str()),
        (201, Some("SIL-5")),
        "ids continue: {s5}"
    );
}

#[tokio::test]
async fn bad_silences_are_refused_by_field() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &tokens()).await;
    let ok = json!({"matchers": [m("service", "=", "db")], "ends_at": in_secs(60), "comment": "c"});
    let cases = [
        (
            json!({"ends_at": in_secs(60), "comment": "c"}),
            400,
            "matchers",
        ),
        (
            json!({"matchers": [{"name": "a", "op": "~", "value": "b"}], "ends_at": in_secs(60), "comment": "c"}),
            400,
            "matchers[0].op",
        ),
        (
            json!({"matchers": [m("a", "=~", "(")], "ends_at": in_secs(60), "comment": "c"}),
            422,
            "matchers[0].value",
        ),
        (
            json!({"matchers": [m("1a", "=", "b")], "ends_at": in_secs(60), "comment": "c"}),
            422,
            "matchers[0].name",
        ),
        (
            json!({"matchers": [m("a", "=~", ".*")], "ends_at": in_secs(60), "comment": "c"}),
            422,
            "matchers",
        ),
        (
            json!({"matchers": [m("a", "=", "b")], "ends_at": in_secs(-60), "comment": "c"}),
            422,
            "ends_at",
        ),
        (
            json!({"matchers": [m("a", "=", "b")], "ends_at": "tomorrow", "comment": "c"}),
            400,
            "ends_at",
        ),
        (
            json!({"matchers": [m("a", "=", "b")], "ends_at": in_secs(60), "comment": ""}),
            422,
            "comment",
        ),
        (
            json!({"matchers": [m("a", "=", "b")], "ends_at": in_secs(60), "comment": "c", "who": 1}),
            400,
            "who",
        ),
    ];
    for (body, want, field) in cases {
        let (code, err) = silence(&d, ONCALL, body.clone()).await;
        assert_eq!(code, want, "{body}: {err}");
        assert!(
            err["field"].as_str().unwrap_or("").contains(field),
            "{body}: {err}"
        );
    }
    assert_eq!(silence(&d, INGEST, ok.clone()).await.0, 403);
    let (code, _) = call(&d, d.client.get(d.url("/api/v1/silences")), ONCALL).await;
    assert_eq!(code, 200);
    let (code, list) = call(
        &d,
        d.client.get(d.url("/api/v1/silences?state=any")),
        ONCALL,
    )
    .await;
    assert_eq!(
        (code, list["silences"].as_array().unwrap().len()),
        (200, 0),
        "nothing stored"
    );
    for (path, want) in [("/api/v1/silences/SIL-9", 404), ("/api/v1/silences/x", 404)] {
        let (code, _) = call(&d, d.client.delete(d.url(path)), ADMIN).await;
        assert_eq!(code, want, "{path}");
    }
    assert_eq!(silence(&d, ONCALL, ok).await.0, 201);
}

#[tokio::test]
async fn maintenance_and_approved_change_windows_keep_incidents_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}[[maintenance]]\nname = \"payments-patching\"\nservices = [\"payments\"]\n\
         starts_at = \"{}\"\nends_at = \"{}\"\n",
        tokens(),
        in_secs(-3600),
        in_secs(3600)
    );
    let d = Daemon::start(tmp.path(), &extra).await;
    fire(
        &d,
        json!({"alertname": "Err", "service": "payments", "severity": "critical"}),
    )
    .await;
    let inc = incident(&d, "INC-1").await;
    assert_eq!(inc["quiet"]["reason"], "maintenance", "{inc}");
    assert_eq!(inc["quiet"]["by"], "payments-patching");

    let change = |status: &str| {
        json!({"service": "search", "summary": "reindex", "status": status,
               "window_start": in_secs(-60), "window_end": in_secs(600)})
    };
    // A planned (not approved) change does not keep anything quiet.
    let (code, v) = call(
        &d,
        d.client
            .post(d.url("/api/v1/changes"))
            .json(&change("planned")),
        INGEST,
    )
    .await;
    assert_eq!(code, 201, "{v}");
    fire(
        &d,
        json!({"alertname": "Slow", "service": "search", "severity": "warning"}),
    )
    .await;
    assert_eq!(incident(&d, "INC-2").await["quiet"], Value::Null);
    let (code, v) = call(
        &d,
        d.client
            .post(d.url("/api/v1/changes"))
            .json(&change("approved")),
        INGEST,
    )
    .await;
    assert_eq!(code, 201, "{v}");
    fire(
        &d,
        json!({"alertname": "Down", "service": "search", "severity": "critical"}),
    )
    .await;
    let inc = incident(&d, "INC-3").await;
    assert_eq!(inc["quiet"]["reason"], "change", "{inc}");
    assert_eq!(inc["quiet"]["by"], "CHG-2");
    assert_eq!(
        incident(&d, "INC-3").await["changes"],
        json!(["CHG-1", "CHG-2"])
    );
    fire(
        &d,
        json!({"alertname": "Err", "service": "cart", "severity": "critical"}),
    )
    .await;
    assert_eq!(incident(&d, "INC-4").await["quiet"], Value::Null);
}
