//! A `[[prometheus]]` poller against Debian's real Prometheus: a rule's alert (mode 1,
//! `/api/v1/alerts`) and a query's series (mode 2, `/api/v1/query`) arrive as alerts
//! and resolve when they go; with Prometheus stopped nothing resolves and the source
//! shows stale, until Prometheus is back.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// An alert for mode 1 and a recorded series for mode 2's query.
const RULES_ON: &str = "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: TriagedTest\n        expr: vector(1)\n        labels:\n          severity: warning\n          service: poller\n      - record: triaged_probe\n        expr: vector(1)\n        labels:\n          probe: a\n";
const RULES_OFF: &str = "groups: []\n";

const PROMETHEUS_YML: &str =
    "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n";

fn start_prometheus(dir: &Path, port: u16) -> Peer {
    Peer::start(
        "prometheus",
        "prometheus",
        &[
            "--config.file=prometheus.yml".into(),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        dir,
    )
}

/// The poller's alert named `name`, if stored.
async fn alert(d: &Daemon, name: &str) -> Option<Value> {
    let (_, v) = d.get("/api/v1/alerts?status=any&limit=1000").await;
    v["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["annotations"]["prometheus"] == "prom")
        .cloned()
}

async fn wait_status(d: &Daemon, name: &str, status: &str, what: &str) -> Value {
    wait_for(40, what, || async {
        alert(d, name).await.filter(|a| a["status"] == status)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_alerts_and_queries_fire_resolve_and_survive_prometheus_going_away() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(dir.path().join("prometheus.yml"), PROMETHEUS_YML).unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES_ON).unwrap();
    let prom = start_prometheus(dir.path(), port);
    let client = reqwest::Client::new();
    wait_ready(
        &client,
        &format!("http://127.0.0.1:{port}/-/ready"),
        30,
        "Prometheus",
    )
    .await;

    let extra = format!(
        "[[prometheus]]\nname = \"prom\"\nurl = \"http://127.0.0.1:{port}/\"\ninterval_secs = 1\ntimeout_secs = 2\n\
         [[prometheus.queries]]\nalertname = \"ProbeUp\"\nexpr = 'triaged_probe == 1'\nfor_secs = 1\n\
         labels = {{ severity = \"info\", service = \"poller\" }}\nannotations = {{ summary = \"the probe answers\" }}\n"
    );
    let d = Daemon::start(&dir.path().join("data"), &extra).await;

    // Mode 1: the rule's alert; mode 2: the query's series.
    let rule = wait_status(&d, "TriagedTest", "firing", "the rule's alert").await;
    assert_eq!(rule["source"], "prometheus", "{rule}");
    assert_eq!(rule["labels"]["severity"], "warning");
    assert!(rule["disposition"]["incident"].is_string(), "{rule}");
    let series = wait_status(&d, "ProbeUp", "firing", "the query's series").await;
    assert_eq!(series["labels"]["probe"], "a", "{series}");
    assert_eq!(series["annotations"]["summary"], "the probe answers");
    assert_eq!(series["annotations"]["value"], "1");

    // Both go: they resolve.
    std::fs::write(dir.path().join("rules.yml"), RULES_OFF).unwrap();
    prom.signal("HUP");
    wait_status(&d, "TriagedTest", "resolved", "the rule's alert to resolve").await;
    wait_status(&d, "ProbeUp", "resolved", "the series to resolve").await;

    // Back again, then Prometheus stops: nothing resolves, the source is stale.
    std::fs::write(dir.path().join("rules.yml"), RULES_ON).unwrap();
    prom.signal("HUP");
    wait_status(&d, "TriagedTest", "firing", "the rule's alert again").await;
    drop(prom);
    wait_for(20, "the source to show stale", || async {
        let (_, ready) = d.get("/readyz").await;
        (ready["stale_sources"] == serde_json::json!(["prom"])).then_some(())
    })
    .await;
    assert!(d
        .metrics()
        .await
        .contains("triaged_source_stale{source=\"prom\"} 1"));
    // Several failed polls later it is still firing.
    wait_for(20, "several failed polls", || async {
        let m = d.metrics().await;
        m.lines()
            .find(|l| {
                l.starts_with("triaged_source_polls_total{result=\"failure\",source=\"prom\"}")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .filter(|n| *n >= 3)
    })
    .await;
    assert_eq!(alert(&d, "TriagedTest").await.unwrap()["status"], "firing");

    // Prometheus is back: the source recovers, the alert keeps firing.
    let _prom = start_prometheus(dir.path(), port);
    wait_ready(
        &client,
        &format!("http://127.0.0.1:{port}/-/ready"),
        30,
        "Prometheus again",
    )
    .await;
    wait_for(30, "the source to recover", || async {
        let (_, ready) = d.get("/readyz").await;
        (ready["stale_sources"] == serde_json::json!([])).then_some(())
    })
    .await;
    assert!(d
        .metrics()
        .await
        .contains("triaged_source_stale{source=\"prom\"} 0"));
    assert_eq!(alert(&d, "TriagedTest").await.unwrap()["status"], "firing");
    d.stop().await;
}
