//! End to end with the real peers: Debian's Prometheus fires a rule, Debian's
//! Alertmanager sends it to triaged (with a bearer token, as `http_config` does), an
//! incident opens; the alert is then resolved through Alertmanager's API and the
//! incident resolves. Needs `prometheus` and `prometheus-alertmanager` installed
//! (`tests/run.sh` installs them).

mod common;

use common::*;
use serde_json::{json, Value};

const INGEST: &str = "e2e-ingest-token-0123456789";
const OPERATOR: &str = "e2e-operator-token-0123456789";

async fn incidents(d: &Daemon) -> Vec<Value> {
    let resp = d
        .client
        .get(d.url("/api/v1/incidents"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    body["incidents"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alert_through_alertmanager_opens_and_resolves_an_incident() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = format!(
        "[[server.tokens]]\nname = \"alertmanager\"\nrole = \"ingest\"\ntoken = \"{INGEST}\"\n\
         [[server.tokens]]\nname = \"oncall\"\nrole = \"operator\"\ntoken = \"{OPERATOR}\"\n"
    );
    let d = Daemon::start(&dir.path().join("data"), &tokens).await;

    let am_port = free_port();
    let am_config = format!(
        r#"route:
  receiver: triaged
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: triaged
    webhook_configs:
      - url: {}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {INGEST}
"#,
        d.url(AM_PATH)
    );
    std::fs::write(dir.path().join("alertmanager.yml"), am_config).unwrap();
    let _am = Peer::start(
        "alertmanager",
        "prometheus-alertmanager",
        &[
            "--config.file=alertmanager.yml".into(),
            format!("--storage.path={}", dir.path().join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        dir.path(),
    );

    let prom_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: triaged-e2e\n    interval: 1s\n    rules:\n      - alert: TriagedE2E\n        \
         expr: vector(1)\n        for: 0s\n        labels:\n          severity: critical\n          service: checkout\n        \
         annotations:\n          summary: Checkout is failing\n",
    )
    .unwrap();
    let mut prometheus = Some(Peer::start(
        "prometheus",
        "prometheus",
        &[
            "--config.file=prometheus.yml".into(),
            format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom-data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            // Alerts sent before the notifier has discovered Alertmanager are lost; the
            // default resend delay (1m) would then hold the first notification back.
            "--rules.alert.resend-delay=1s".into(),
        ],
        dir.path(),
    ));
    let client = reqwest::Client::new();
    let am_ready = format!("http://127.0.0.1:{am_port}/-/ready");
    wait_ready(&client, &am_ready, 60, "alertmanager ready").await;
    let prom_ready = format!("http://127.0.0.1:{prom_port}/-/ready");
    wait_ready(&client, &prom_ready, 60, "prometheus ready").await;

    let started = std::time::Instant::now();
    // Prometheus fires, Alertmanager notifies, triaged opens INC-1 with the alert.
    let inc = wait_for(90, "the incident from Prometheus", || {
        let d = &d;
        async move {
            incidents(d)
                .await
                .into_iter()
                .find(|i| i["key"] == "TriagedE2E/checkout")
        }
    })
    .await;
    eprintln!("incident opened after {:?}", started.elapsed());
    assert_eq!(inc["id"], "INC-1");
    assert_eq!(inc["title"], "Checkout is failing");
    assert_eq!(inc["priority"], "P1", "severity critical → high/high");
    let resp = d
        .client
        .get(d.url("/api/v1/incidents/INC-1"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    let (_, detail) = status_json(resp).await;
    let alert = &detail["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "TriagedE2E");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["source"], "alertmanager");
    assert_eq!(alert["fingerprint"].as_str().map(str::len), Some(16));
    assert!(alert["generator_url"]
        .as_str()
        .unwrap()
        .contains(&prom_port.to_string()));

    // Stop Prometheus so that it no longer re-sends the alert as firing, then resolve it
    // through Alertmanager's API (an endsAt in the past).
    drop(prometheus.take());
    let labels = alert["labels"].clone();
    let resp = client
        .post(format!("http://127.0.0.1:{am_port}/api/v2/alerts"))
        .json(&json!([{
            "labels": labels,
            "annotations": {"summary": "Checkout is failing"},
            "startsAt": alert["starts_at"],
            "endsAt": jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(1)).unwrap().to_string(),
        }]))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);

    let inc = wait_for(60, "the incident to resolve", || {
        let d = &d;
        async move {
            incidents(d)
                .await
                .into_iter()
                .find(|i| i["id"] == "INC-1" && i["status"] == "resolved")
        }
    })
    .await;
    eprintln!("incident resolved after {:?}", started.elapsed());
    assert_eq!(inc["resolution"]["code"], "alerts_cleared");
    assert_eq!(incidents(&d).await.len(), 1);
    d.stop().await;
}
