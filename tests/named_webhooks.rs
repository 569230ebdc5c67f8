//! Named webhooks over HTTP with the shipped mappings: Grafana's webhook (signed with
//! HMAC-SHA256), a generic JSON alert, and PagerDuty Events API v2 (trigger,
//! acknowledge, resolve); signature good, bad and missing; mapping errors and
//! malformed alerts refused by field with nothing stored; unknown names.

mod common;

use std::path::Path;

use common::{shipped_rules, Daemon};
use serde_json::{json, Value};

const SECRET: &str = "grafana-hmac-secret-0123";

fn config(dir: &Path) -> String {
    let secret = dir.join("grafana.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    format!(
        "[[webhooks]]\nname = \"grafana\"\nmapping = \"grafana.rhai\"\nhmac_secret_file = {:?}\n\
         hmac_header = \"X-Grafana-Signature\"\n\
         [[webhooks]]\nname = \"generic\"\nmapping = \"generic.rhai\"\n\
         [[webhooks]]\nname = \"pagerduty\"\nmapping = \"pagerduty.rhai\"\n",
        secret.display().to_string()
    )
}

/// Grafana's documented example payload.
fn grafana_payload() -> Value {
    json!({
      "receiver": "My Super Webhook", "status": "firing", "orgId": 1,
      "alerts": [
        {"status": "firing",
         "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
         "annotations": {"description": "The system has high memory usage", "runbook_url": "https://myrunbook.com/runbook/1234", "summary": "This alert was triggered for zone us-1"},
         "startsAt": "2021-10-12T09:51:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit", "fingerprint": "c6eadffa33fcdf37",
         "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
         "dashboardURL": "", "panelURL": "", "values": {"B": 44.23943737541908, "C": 1}},
        {"status": "firing",
         "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"},
         "annotations": {"description": "The system has high CPU usage", "runbook_url": "https://myrunbook.com/runbook/1234", "summary": "This alert was triggered for zone eu-1"},
         "startsAt": "2021-10-12T09:56:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "https://play.grafana.org/alerting/d1rdpdv7k/edit", "fingerprint": "bc97ff14869b13e3",
         "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT1%2Cteam%3Dblue%2Czone%3Deu-1",
         "dashboardURL": "", "panelURL": "", "values": {"B": 44.23943737541908, "C": 1}}
      ],
      "groupLabels": {}, "commonLabels": {"team": "blue"}, "commonAnnotations": {},
      "externalURL": "https://play.grafana.org/", "version": "1", "groupKey": "{}:{}",
      "truncatedAlerts": 0, "title": "[FIRING:2]  (blue)", "state": "alerting",
      "message": "**Firing**"
    })
}

fn sign(body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn post_raw(d: &Daemon, path: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = d
        .client
        .post(d.url(path))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    common::status_json(req.send().await.unwrap()).await
}

async fn incidents(d: &Daemon) -> Vec<Value> {
    let (_, v) = d.get("/api/v1/incidents?status=any").await;
    v["incidents"].as_array().unwrap().clone()
}

#[tokio::test]
async fn grafana_webhooks_are_signed_and_mapped_alert_by_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &config(tmp.path())).await;
    let body = serde_json::to_vec(&grafana_payload()).unwrap();
    let path = "/api/v1/webhooks/grafana";

    let (code, err) = post_raw(&d, path, &body, &[]).await;
    assert_eq!(
        (code, err["field"].as_str()),
        (401, Some("x-grafana-signature")),
        "{err}"
    );
    assert!(err["error"].as_str().unwrap().contains("missing"), "{err}");
    let (code, err) = post_raw(&d, path, &body, &[("X-Grafana-Signature", sign(b"other"))]).await;
    assert_eq!(code, 401, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("does not match"),
        "{err}"
    );
    // A signature over broken JSON is still checked first: 401, not 400.
    let (code, _) = post_raw(
        &d,
        path,
        b"{not json",
        &[("X-Grafana-Signature", sign(b"x"))],
    )
    .await;
    assert_eq!(code, 401);
    assert!(incidents(&d).await.is_empty(), "nothing stored");

    let (code, v) = post_raw(
        &d,
        path,
        &body,
        &[("X-Grafana-Signature", format!("sha256={}", sign(&body)))],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v, json!({"status": "stored", "alerts": 2}));
    let (code, alert) = d.get("/api/v1/alerts/c6eadffa33fcdf37").await;
    assert_eq!(code, 200, "{alert}");
    assert_eq!(alert["source"], "webhook");
    assert_eq!(alert["labels"]["alertname"], "High memory usage");
    assert_eq!(alert["annotations"]["webhook"], "grafana");
    assert_eq!(alert["annotations"]["values"], "B=44.23943737541908 C=1");
    assert!(alert["annotations"]["silence_url"]
        .as_str()
        .unwrap()
        .starts_with("https://play.grafana.org/alerting/silence"));
    assert_eq!(alert["starts_at"], "2021-10-12T07:51:03.157076Z");
    assert_eq!(incidents(&d).await.len(), 2);
    // Resolved by Grafana: the incident resolves.
    let mut resolved = grafana_payload();
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2021-10-12T10:00:00+02:00");
    resolved["alerts"].as_array_mut().unwrap().truncate(1);
    let body = serde_json::to_vec(&resolved).unwrap();
    let (code, _) = post_raw(&d, path, &body, &[("X-Grafana-Signature", sign(&body))]).await;
    assert_eq!(code, 200);
    let (_, alert) = d.get("/api/v1/alerts/c6eadffa33fcdf37").await;
    let (_, inc) = d
        .get(&format!(
            "/api/v1/incidents/{}",
            alert["disposition"]["incident"].as_str().unwrap()
        ))
        .await;
    assert_eq!(inc["status"], "resolved", "{inc}");
}

#[tokio::test]
async fn generic_and_pagerduty_webhooks_and_every_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &config(tmp.path())).await;

    // Generic JSON: one alert, then its resolution.
    let alert = json!({"alertname": "BackupFailed", "labels": {"service": "files", "severity": "warning"},
                       "annotations": {"summary": "nightly backup failed"}});
    let (code, v) = d.post_json("/api/v1/webhooks/generic", &alert).await;
    assert_eq!((code, v["alerts"].as_u64()), (200, Some(1)), "{v}");
    let list = incidents(&d).await;
    assert_eq!(list[0]["key"], "BackupFailed/files");
    assert_eq!(list[0]["title"], "nightly backup failed");
    let mut done = alert.clone();
    done["status"] = json!("resolved");
    let (code, _) = d
        .post_json("/api/v1/webhooks/generic", &json!({"alerts": [done]}))
        .await;
    assert_eq!(code, 200);
    assert_eq!(incidents(&d).await[0]["status"], "resolved");

    // PagerDuty Events API v2: trigger, acknowledge, resolve on one dedup_key.
    let event = |action: &str| {
        json!({"routing_key": "R0UTINGKEY0000000000000000000000", "event_action": action, "dedup_key": "srv01/disk",
               "payload": {"summary": "Disk 95% on srv01", "source": "srv01", "severity": "error",
                           "component": "storage", "custom_details": {"free": "5%"}},
               "client": "Sample Monitoring Service", "client_url": "https://monitoring.example.com"})
    };
    let (code, v) = d
        .post_json("/api/v1/webhooks/pagerduty", &event("trigger"))
        .await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(
        v,
        json!({"status": "success", "message": "Event processed", "dedup_key": "srv01/disk"})
    );
    let (_, alert) = d.get("/api/v1/alerts/pagerduty:srv01%2Fdisk").await;
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    assert_eq!(alert["labels"]["service"], "storage");
    assert!(
        alert["labels"].get("routing_key").is_none(),
        "the routing key is a credential"
    );
    assert_eq!(alert["annotations"]["details"], "{\"free\":\"5%\"}");
    let id = alert["disposition"]["incident"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, inc) = d.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        (inc["priority"].as_str(), inc["status"].as_str()),
        (Some("P1"), Some("new"))
    );
    let (code, _) = d
        .post_json(
            "/api/v1/webhooks/pagerduty",
            &json!({"routing_key": "R", "event_action": "acknowledge", "dedup_key": "srv01/disk"}),
        )
        .await;
    assert_eq!(code, 202);
    let (_, inc) = d.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(inc["status"], "acknowledged", "{inc}");
    assert!(inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "webhook:pagerduty"));
    // Acknowledging again is fine (the incident stays acknowledged).
    let (code, _) = d
        .post_json(
            "/api/v1/webhooks/pagerduty",
            &json!({"routing_key": "R", "event_action": "acknowledge", "dedup_key": "srv01/disk"}),
        )
        .await;
    assert_eq!(code, 202);
    let (code, _) = d
        .post_json(
            "/api/v1/webhooks/pagerduty",
            &json!({"routing_key": "R", "event_action": "resolve", "dedup_key": "srv01/disk"}),
        )
        .await;
    assert_eq!(code, 202);
    let (_, inc) = d.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(inc["status"], "resolved", "{inc}");

    // Refusals, by field, with nothing stored.
    let before = incidents(&d).await.len();
    let (code, err) = d.post_json("/api/v1/webhooks/nagios", &json!({})).await;
    assert_eq!((code, err["field"].as_str()), (404, Some("name")), "{err}");
    let (code, err) = post_raw(&d, "/api/v1/webhooks/generic", b"{\"alertname\": ", &[]).await;
    assert_eq!((code, err["field"].as_str()), (400, Some("body")), "{err}");
    let (code, err) = d
        .post_json(
            "/api/v1/webhooks/generic",
            &json!({"labels": {"service": "x"}}),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("alerts[0].labels.alertname")),
        "{err}"
    );
    let (code, err) = d
        .post_json(
            "/api/v1/webhooks/generic",
            &json!({"alerts": [{"alertname": "A"}, {"alertname": "B", "status": "gone"}]}),
        )
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("alerts[1].status")),
        "{err}"
    );
    let (code, err) = d
        .post_json(
            "/api/v1/webhooks/pagerduty",
            &json!({"event_action": "explode"}),
        )
        .await;
    assert_eq!((code, err["field"].as_str()), (422, Some("body")), "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("event_action"),
        "{err}"
    );
    let (code, err) = d
        .post_json("/api/v1/webhooks/pagerduty", &json!({"event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "bad"}}))
        .await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(
        incidents(&d).await.len(),
        before,
        "a refused request stores nothing"
    );
    let (_, a) = d.get("/api/v1/alerts?status=any").await;
    assert!(!a["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["labels"]["alertname"] == "A"));
}

#[tokio::test]
async fn webhooks_ask_for_tokens_and_broken_mappings_stop_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let token = "ingest-token-0123456789";
    let extra = format!(
        "{}[[server.tokens]]\nname = \"am\"\nrole = \"ingest\"\ntoken = \"{token}\"\n",
        config(tmp.path())
    );
    let d = Daemon::start(&tmp.path().join("data"), &extra).await;
    let alert = json!({"alertname": "X"});
    let (code, _) = d.post_json("/api/v1/webhooks/generic", &alert).await;
    assert_eq!(code, 401, "unsigned webhooks need the ingest token");
    let resp = d
        .client
        .post(d.url("/api/v1/webhooks/generic"))
        .bearer_auth(token)
        .json(&alert)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    d.stop().await;

    // A mapping that does not compile, or is missing, names its file.
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(rules.join("mappings")).unwrap();
    for f in std::fs::read_dir(shipped_rules()).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "rhai") {
            std::fs::copy(&f, rules.join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(rules.join("mappings/broken.rhai"), "fn on_webhook(b) {").unwrap();
    for mapping in ["broken.rhai", "absent.rhai"] {
        let src = common::config_toml(
            &tmp.path().join("data2"),
            &rules,
            &format!("[[webhooks]]\nname = \"x\"\nmapping = \"{mapping}\"\n"),
        );
        let settings =
            triaged::config::Settings::from_toml(Path::new("t.toml"), &src, &Default::default())
                .unwrap();
        let err = triaged::app::Daemon::start(settings)
            .await
            .err()
            .expect("refused");
        assert!(format!("{err:#}").contains(mapping), "{err:#}");
    }
}
