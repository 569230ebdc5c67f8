//! The daemon driven over HTTP as Alertmanager and operators use it.

mod common;

use common::*;
use serde_json::{json, Value};

fn firing(name: &str, instance: &str) -> Value {
    am_alert(
        "firing",
        json!({"alertname": name, "job": "node", "instance": instance}),
        "2026-11-29T01:00:00Z",
    )
}

fn resolved(name: &str, instance: &str) -> Value {
    am_alert(
        "resolved",
        json!({"alertname": name, "job": "node", "instance": instance}),
        "2026-11-29T01:00:00Z",
    )
}

async fn incident(d: &Daemon, id: &str) -> Value {
    let (status, body) = d.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn incident_count(d: &Daemon) -> usize {
    let (status, body) = d.get("/api/v1/incidents").await;
    assert_eq!(status, 200);
    body["incidents"].as_array().unwrap().len()
}

#[tokio::test]
async fn firing_alerts_group_into_one_incident_and_resolve_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;

    let (status, body) = d
        .post_json(AM_PATH, &am_payload(vec![firing("DiskFull", "db1")]))
        .await;
    assert_eq!((status, &body["status"]), (200, &json!("stored")), "{body}");

    let inc = incident(&d, "INC-1").await;
    assert_eq!(inc["status"], "new");
    assert_eq!(inc["key"], "DiskFull/node");
    assert_eq!(inc["title"], "test alert");
    assert_eq!(inc["alerts"][0]["labels"]["instance"], "db1");
    assert_eq!(inc["alerts"][0]["disposition"]["incident"], "INC-1");
    assert_eq!(inc["timeline"][0]["action"], "opened");
    assert_eq!(inc["timeline"][0]["actor"], "rule:50-severity.rhai");

    // Same key, another instance: attached, counted, no second incident.
    let (status, _) = d
        .post_json(
            AM_PATH,
            &am_payload(vec![firing("DiskFull", "db1"), firing("DiskFull", "db2")]),
        )
        .await;
    assert_eq!(status, 200);
    let inc = incident(&d, "INC-1").await;
    assert_eq!(
        (inc["alerts_total"].as_u64(), inc["alerts_firing"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(inc["notifications"], 3);
    assert_eq!(inc["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(incident_count(&d).await, 1);

    // One resolves: still open. Both resolve: resolved as alerts_cleared.
    d.post_json(AM_PATH, &am_payload(vec![resolved("DiskFull", "db1")]))
        .await;
    assert_eq!(incident(&d, "INC-1").await["status"], "new");
    d.post_json(AM_PATH, &am_payload(vec![resolved("DiskFull", "db2")]))
        .await;
    let inc = incident(&d, "INC-1").await;
    assert_eq!(inc["status"], "resolved");
    assert_eq!(inc["resolution"]["code"], "alerts_cleared");
    assert_eq!(inc["alerts_firing"], 0);
    let (_, open) = d.get("/api/v1/incidents?status=open").await;
    assert_eq!(open["incidents"], json!([]));
    let (_, res) = d.get("/api/v1/incidents?status=resolved").await;
    assert_eq!(res["incidents"][0]["id"], "INC-1");

    // It fires again (a new occurrence) within the reopen window: reopened.
    let again = am_alert(
        "firing",
        json!({"alertname": "DiskFull", "job": "node", "instance": "db1"}),
        "2026-11-29T01:30:00Z",
    );
    d.post_json(AM_PATH, &am_payload(vec![again])).await;
    let inc = incident(&d, "INC-1").await;
    assert_eq!(
        (inc["status"].as_str(), inc["reopened"].as_u64()),
        (Some("new"), Some(1))
    );
    assert_eq!(
        inc["alerts_total"], 2,
        "a returning alert is not counted twice"
    );
    assert_eq!(incident_count(&d).await, 1);
    let actions: Vec<&str> = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "opened",
            "alerts_attached",
            "alerts_attached",
            "alerts_resolved",
            "alerts_resolved",
            "resolved",
            "reopened",
            "alerts_attached"
        ]
    );
    d.stop().await;
}

#[tokio::test]
async fn after_the_reopen_window_a_new_incident_opens() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "[incidents]\nreopen_window_secs = 0\n").await;
    d.post_json(AM_PATH, &am_payload(vec![firing("Down", "a")]))
        .await;
    d.post_json(AM_PATH, &am_payload(vec![resolved("Down", "a")]))
        .await;
    assert_eq!(incident(&d, "INC-1").await["status"], "resolved");
    let again = am_alert(
        "firing",
        json!({"alertname": "Down", "job": "node", "instance": "a"}),
        "2026-11-29T01:30:00Z",
    );
    d.post_json(AM_PATH, &am_payload(vec![again])).await;
    assert_eq!(incident(&d, "INC-1").await["status"], "resolved");
    let inc2 = incident(&d, "INC-2").await;
    assert_eq!(
        (inc2["status"].as_str(), inc2["key"].as_str()),
        (Some("new"), Some("Down/node"))
    );
    assert_eq!(inc2["alerts"][0]["disposition"]["incident"], "INC-2");
    d.stop().await;
}

#[tokio::test]
async fn without_auto_resolve_incidents_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "[incidents]\nauto_resolve = false\n").await;
    d.post_json(AM_PATH, &am_payload(vec![firing("Down", "a")]))
        .await;
    d.post_json(AM_PATH, &am_payload(vec![resolved("Down", "a")]))
        .await;
    let inc = incident(&d, "INC-1").await;
    assert_eq!(
        (inc["status"].as_str(), inc["alerts_firing"].as_u64()),
        (Some("new"), Some(0))
    );
    d.stop().await;
}

#[tokio::test]
async fn duplicate_notifications_from_ha_replicas_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;
    let payload = am_payload(vec![firing("Down", "a")]);
    d.post_json(AM_PATH, &payload).await;
    let before = incident(&d, "INC-1").await;
    d.post_json(AM_PATH, &payload).await;
    let after = incident(&d, "INC-1").await;
    assert_eq!(after["alerts_total"], 1);
    assert_eq!(after["alerts_firing"], 1);
    assert_eq!(
        after["timeline"], before["timeline"],
        "a repeat writes no audit entry"
    );
    assert_eq!(after["notifications"], 2);

    // A stale firing copy after the resolve (a lagging replica) does not reopen.
    d.post_json(AM_PATH, &am_payload(vec![resolved("Down", "a")]))
        .await;
    d.post_json(AM_PATH, &payload).await;
    let inc = incident(&d, "INC-1").await;
    assert_eq!(inc["status"], "resolved");
    assert_eq!(incident_count(&d).await, 1);
    d.stop().await;
}

#[tokio::test]
async fn dropped_and_resolved_only_alerts_are_recorded_without_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;
    let watchdog = am_alert(
        "firing",
        json!({"alertname": "Watchdog"}),
        "2026-11-29T01:00:00Z",
    );
    let fp = watchdog["fingerprint"].as_str().unwrap().to_string();
    d.post_json(AM_PATH, &am_payload(vec![watchdog, resolved("Gone", "x")]))
        .await;
    assert_eq!(incident_count(&d).await, 0);
    let (status, alert) = d.get(&format!("/api/v1/alerts/{fp}")).await;
    assert_eq!(status, 200);
    assert_eq!(alert["disposition"]["kind"], "dropped");
    assert_eq!(alert["disposition"]["rule"], "10-heartbeats.rhai");
    let (_, all) = d.get("/api/v1/alerts?status=resolved").await;
    assert_eq!(all["alerts"][0]["disposition"]["kind"], "unattached");
    d.stop().await;
}

/// Each bad request: its status, the field named, and nothing stored.
#[tokio::test]
async fn bad_input_is_rejected_with_a_json_error_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;
    let good = am_payload(vec![firing("A", "1"), firing("B", "2")]);

    let mut missing_name = good.clone();
    missing_name["alerts"][1]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("alertname");
    let mut v3 = good.clone();
    v3["version"] = json!("3");
    let mut bad_type = good.clone();
    bad_type["alerts"][0]["labels"]["job"] = json!(7);
    let mut bad_time = good.clone();
    bad_time["alerts"][1]["startsAt"] = json!("noon");

    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{not json".to_vec(), "application/json", 400, "body"),
        (
            serde_json::to_vec(&missing_name).unwrap(),
            "application/json",
            400,
            "alerts[1].labels.alertname",
        ),
        (
            serde_json::to_vec(&v3).unwrap(),
            "application/json",
            400,
            "version",
        ),
        (
            serde_json::to_vec(&bad_type).unwrap(),
            "application/json",
            400,
            "alerts[0].labels.job",
        ),
        (
            serde_json::to_vec(&bad_time).unwrap(),
            "application/json",
            400,
            "alerts[1].startsAt",
        ),
        (
            serde_json::to_vec(&good).unwrap(),
            "text/plain",
            415,
            "Content-Type",
        ),
        (vec![b' '; 1024 * 1024 + 1], "application/json", 413, "body"),
    ];
    for (body, content_type, want, field) in cases {
        let resp = d
            .client
            .post(d.url(AM_PATH))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json) = status_json(resp).await;
        assert_eq!(status, want, "{field}: {json}");
        assert_eq!(json["field"], field, "{json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
    }
    // No content type at all.
    let resp = d
        .client
        .post(d.url(AM_PATH))
        .body(serde_json::to_vec(&good).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);

    assert_eq!(incident_count(&d).await, 0);
    let (_, alerts) = d.get("/api/v1/alerts").await;
    assert_eq!(alerts["alerts"], json!([]));
    let (_, metrics) = d.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains(
            r#"triaged_alerts_rejected_total{reason="missing_alertname",source="alertmanager"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains(r#"triaged_alerts_rejected_total{reason="too_large",source="alertmanager"} 1"#));

    // The daemon keeps working after all of that.
    assert_eq!(d.post_json(AM_PATH, &good).await.0, 200);
    assert_eq!(incident_count(&d).await, 2);
    d.stop().await;
}

#[tokio::test]
async fn unknown_routes_ids_and_queries_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;
    for (path, status, field) in [
        ("/api/v1/incidents/INC-9", 404, json!("id")),
        ("/api/v1/incidents/nine", 404, json!("id")),
        ("/api/v1/alerts/ffff", 404, json!("fingerprint")),
        ("/api/v1/incidents?status=sleeping", 400, json!("status")),
        ("/api/v1/incidents?limit=0", 400, json!("limit")),
        ("/api/v1/incidents?colour=red", 400, json!("colour")),
        ("/api/v1/nothing", 404, Value::Null),
    ] {
        let (got, body) = d.get(path).await;
        assert_eq!((got, &body["field"]), (status, &field), "{path}: {body}");
    }
    let resp = d.client.get(d.url(AM_PATH)).send().await.unwrap();
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 405);
    assert!(body["error"].is_string());
    d.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;
    assert_eq!(d.get("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(
        d.get("/readyz").await,
        (200, json!({"status": "ready", "stale_sources": []}))
    );
    d.post_json(AM_PATH, &am_payload(vec![firing("A", "1")]))
        .await;
    let (_, metrics) = d.get("/metrics").await;
    let metrics = metrics.as_str().unwrap();
    for line in [
        r#"triaged_alerts_received_total{source="alertmanager"} 1"#,
        "triaged_incidents_opened_total 1",
        r#"triaged_http_request_duration_seconds_count{route="/api/v1/webhooks/alertmanager",status="200"} 1"#,
        // The one submission went through every stage once before its 200.
        r#"triaged_correlation_stage_seconds_count{stage="queued"} 1"#,
        r#"triaged_correlation_stage_seconds_count{stage="correlated"} 1"#,
        r#"triaged_correlation_stage_seconds_count{stage="synced"} 1"#,
        r#"triaged_correlation_stage_seconds_count{stage="answered"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    d.stop().await;
}

#[tokio::test]
async fn restart_keeps_incidents_and_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;
    d.post_json(
        AM_PATH,
        &am_payload(vec![firing("A", "1"), firing("B", "1")]),
    )
    .await;
    let before = incident(&d, "INC-2").await;
    d.stop().await;

    let d = Daemon::start(dir.path(), "").await;
    assert_eq!(incident(&d, "INC-2").await, before);
    d.post_json(AM_PATH, &am_payload(vec![firing("C", "1")]))
        .await;
    assert_eq!(incident(&d, "INC-3").await["key"], "C/node");
    // A known alert attaches to its open incident after the restart.
    d.post_json(AM_PATH, &am_payload(vec![firing("A", "2")]))
        .await;
    assert_eq!(incident(&d, "INC-1").await["alerts_total"], 2);
    assert_eq!(incident_count(&d).await, 3);
    d.stop().await;
}

const INGEST: &str = "ingest-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";

fn tokens() -> String {
    format!(
        "[[server.tokens]]\nname = \"am\"\nrole = \"ingest\"\ntoken = \"{INGEST}\"\n\
         [[server.tokens]]\nname = \"oncall\"\nrole = \"operator\"\ntoken = \"{OPERATOR}\"\n"
    )
}

#[tokio::test]
async fn tokens_and_roles_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &tokens()).await;
    let body = am_payload(vec![firing("A", "1")]);
    let post = |auth: Option<String>| {
        let mut req = d.client.post(d.url(AM_PATH)).json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { status_json(req.send().await.unwrap()).await }
    };
    let (status, err) = post(None).await;
    assert_eq!((status, &err["field"]), (401, &json!("Authorization")));
    assert_eq!(
        post(Some("Bearer wrong-token-000000000".into())).await.0,
        401
    );
    assert_eq!(post(Some(format!("Bearer {OPERATOR}"))).await.0, 403);
    assert_eq!(post(Some(format!("Bearer {INGEST}"))).await.0, 200);
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("am:{INGEST}"));
    assert_eq!(post(Some(format!("Basic {basic}"))).await.0, 200);

    let get = |auth: &str| {
        d.client
            .get(d.url("/api/v1/incidents"))
            .header("authorization", auth.to_string())
            .send()
    };
    assert_eq!(
        get(&format!("Bearer {INGEST}"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let resp = get(&format!("Bearer {OPERATOR}")).await.unwrap();
    let (status, list) = status_json(resp).await;
    assert_eq!(
        (status, list["incidents"].as_array().unwrap().len()),
        (200, 1)
    );
    assert_eq!(d.get("/api/v1/incidents").await.0, 401);
    // Health and metrics stay open for probes and scrapers.
    assert_eq!(d.get("/healthz").await.0, 200);
    assert_eq!(d.get("/metrics").await.0, 200);
    d.stop().await;
}

#[tokio::test]
async fn concurrent_posts_are_all_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let client = d.client.clone();
        let url = d.url(AM_PATH);
        tasks.push(tokio::spawn(async move {
            let alerts = (0..10)
                .map(|j| firing(&format!("Storm{}", j % 3), &format!("host{i}-{j}")))
                .collect();
            client
                .post(url)
                .json(&am_payload(alerts))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let (_, list) = d.get("/api/v1/incidents").await;
    let incidents = list["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 3, "one incident per key");
    let total: u64 = incidents
        .iter()
        .map(|i| i["alerts_total"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 320);
    let (_, alerts) = d.get("/api/v1/alerts?limit=1000").await;
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 320);
    d.stop().await;
}

/// Concurrent repeats of the same alerts: each batch reads the changes of the ones
/// before it (no lost notification, no second incident for a key).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_repeats_of_the_same_alerts_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;
    let (clients, rounds) = (24, 10);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let client = d.client.clone();
        let url = d.url(AM_PATH);
        tasks.push(tokio::spawn(async move {
            // Staggered, so that requests keep arriving while batches are written.
            tokio::time::sleep(std::time::Duration::from_micros(150 * i)).await;
            for _ in 0..rounds {
                let body = am_payload(vec![firing("Same", "host1"), firing("Same", "host2")]);
                let r = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(incident_count(&d).await, 1, "one incident for the key");
    let inc = incident(&d, "INC-1").await;
    assert_eq!(inc["alerts_total"], 2);
    let (_, alerts) = d.get("/api/v1/alerts?limit=10").await;
    let alerts = alerts["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    for a in alerts {
        assert_eq!(a["notifications"], clients * rounds, "{a}");
    }
    d.stop().await;
}

#[tokio::test]
async fn an_alert_storm_writes_one_audit_entry_per_incident_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "").await;
    let alerts = (0..25)
        .map(|i| firing("Storm", &format!("host{i:02}")))
        .collect();
    assert_eq!(d.post_json(AM_PATH, &am_payload(alerts)).await.0, 200);
    let inc = incident(&d, "INC-1").await;
    assert_eq!(inc["alerts_total"], 25);
    assert_eq!(inc["alerts"].as_array().unwrap().len(), 25);
    let timeline = inc["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    let attached = &timeline[1];
    assert_eq!(attached["action"], "alerts_attached");
    assert_eq!(
        (attached["from"].as_str(), attached["to"].as_str()),
        (Some("0"), Some("25"))
    );
    let detail = attached["detail"].as_str().unwrap();
    assert!(detail.starts_with("25 alert(s): Storm "), "{detail}");
    assert!(detail.ends_with("(+15 more)"), "{detail}");
    d.stop().await;
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn store_figures_and_checkpoints_show_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\ndata_dir = {:?}\ncheckpoint_interval_secs = 1\n[rules]\ndir = {:?}\n",
        dir.path().display().to_string(),
        shipped_rules().display().to_string()
    );
    let d = Daemon::start_toml(&src).await;
    d.post_json(
        AM_PATH,
        &am_payload(vec![firing("A", "1"), firing("B", "1")]),
    )
    .await;
    let (_, text) = d.get("/metrics").await;
    let text = text.as_str().unwrap().to_string();
    assert_eq!(
        metric(&text, "triaged_store_incidents"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(metric(&text, "triaged_store_healthy"), Some(1.0));
    assert!(metric(&text, "triaged_store_log_segment_bytes").unwrap() > 0.0);
    // The timer checkpoints the log into the database; nothing stays pending.
    let text = wait_for(20, "a checkpoint", || {
        let d = &d;
        async move {
            let (_, text) = d.get("/metrics").await;
            let text = text.as_str().unwrap().to_string();
            let done = metric(&text, r#"triaged_store_checkpoints_total{result="ok"}"#)? >= 1.0
                && metric(&text, "triaged_store_pending_records")? == 0.0;
            done.then_some(text)
        }
    })
    .await;
    assert_eq!(
        metric(&text, r#"triaged_store_checkpoints_total{result="failed"}"#),
        Some(0.0)
    );
    assert!(metric(&text, "triaged_store_last_checkpoint_duration_seconds").is_some());
    assert_eq!(
        incident(&d, "INC-2").await["key"],
        "B/node",
        "read back from the database"
    );
    assert_eq!(d.get("/readyz").await.0, 200);
    d.stop().await;
}

#[tokio::test]
async fn the_configuration_in_force_is_for_admins_and_never_shows_secrets() {
    let dir = tempfile::tempdir().unwrap();
    const ADMIN: &str = "admin-secret-0123456789";
    let extra = format!(
        "{}[[server.tokens]]\nname = \"boss\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n\
         [sla.P2]\nrespond_secs = 600\n[[escalation.levels]]\nafter_secs = 0\nnotify = [\"lead\"]\n\
         [[sinks]]\nname = \"lead\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/services/T0/B0/tokenpart\"\n",
        tokens()
    );
    let d = Daemon::start(dir.path(), &extra).await;
    let get = |token: &'static str| {
        d.client
            .get(d.url("/api/v1/config"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(get(OPERATOR).await.unwrap().status(), 403);
    assert_eq!(get(INGEST).await.unwrap().status(), 403);
    let text = get(ADMIN).await.unwrap().text().await.unwrap();
    for secret in [ADMIN, OPERATOR, INGEST] {
        assert!(
            !text.contains(secret),
            "a secret in the config view: {text}"
        );
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["sla"]["P2"]["respond_secs"], 600);
    assert_eq!(v["sla"]["P1"]["respond_secs"], 900);
    assert_eq!(v["priority"]["high"], json!(["P1", "P2", "P3"]));
    assert_eq!(v["escalation"]["levels"][0]["notify"], json!(["lead"]));
    assert_eq!(
        v["sinks"][0]["settings"]["url"],
        "https://hooks.example.com/…"
    );
    assert!(
        !text.contains("tokenpart"),
        "a webhook URL's path in the config view: {text}"
    );
    let names: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["am", "oncall", "boss"]);
    assert_eq!(v["incidents"]["reopen_window_secs"], 3600);
}
