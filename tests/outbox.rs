//! The outbox end to end through the generic webhook sink: what reaches the receiver
//! (the versioned body, the signature, the idempotency key), retries (5xx, 429 with
//! Retry-After), dead letters and the retry command, a sink down then up, the circuit
//! breaker, a slow sink beside a fast one, routing, and a crash between the
//! receiver's answer and our record.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{
    am_alert, am_payload, config_toml, settled, shipped_rules, wait_for, Child, Daemon, AM_PATH,
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

fn hook(name: &str, url: &str, extra: &str) -> String {
    let max = if extra.contains("retry_max_secs") {
        ""
    } else {
        "retry_max_secs = 2\n"
    };
    format!(
        "[[sinks]]\nname = \"{name}\"\ntype = \"webhook\"\nurl = \"{url}\"\n\
         retry_initial_secs = 1\n{max}{extra}\n"
    )
}

fn route(sinks: &[&str]) -> String {
    format!("[[routes]]\nsinks = {sinks:?}\n")
}

async fn fire(d: &Daemon, alertname: &str, service: &str) {
    let labels = json!({"alertname": alertname, "service": service, "severity": "warning"});
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-30T00:00:00Z")]);
    let (code, out) = d.post_json(AM_PATH, &body).await;
    assert_eq!(code, 200, "{out}");
}

async fn act(d: &Daemon, id: &str, action: &str, body: Value) -> Value {
    let (code, out) = d
        .post_json(&format!("/api/v1/incidents/{id}/{action}"), &body)
        .await;
    assert_eq!(code, 200, "{action} {id}: {out}");
    out
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_failing_webhook_is_retried_and_its_reference_kept_for_later_events() {
    const SECRET: &str = "webhook-secret-0123456789";
    std::env::set_var("TRIAGED_TEST_OUTBOX_SECRET", SECRET);
    let rx = Receiver::start_on(0, |_| Answer::json(200, json!({"id": "T-1"}))).await;
    rx.script([Answer::status(500).body("busy")]);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}{}",
            hook(
                "hook",
                &rx.url("/in"),
                "secret_env = \"TRIAGED_TEST_OUTBOX_SECRET\""
            ),
            route(&["hook"])
        ),
    )
    .await;
    fire(&d, "DiskFull", "db").await;
    let got = rx.wait_requests(2, 20).await;
    assert_eq!((got[0].path.as_str(), got[1].path.as_str()), ("/in", "/in"));
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.header("idempotency-key"),
            Some("triaged-1-hook"),
            "the same for every attempt"
        );
        assert_eq!(r.header("x-triaged-event"), Some("opened"));
        let ts = r
            .header("x-triaged-timestamp")
            .expect("signed requests carry their time");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&r.body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(r.header("x-triaged-signature"), Some(want.as_str()));
    }
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_millis(450),
        "backoff waited"
    );
    let body = got[1].json();
    assert_eq!(body["schema"], "triaged.event.v1");
    assert_eq!(body["idempotency_key"], "triaged-1-hook");
    assert_eq!(body["event"]["kind"], "opened");
    assert_eq!(body["event"]["record"], "INC-1");
    assert_eq!(body["event"]["seq"], 1);
    assert_eq!(body["incident"]["id"], "INC-1");
    assert_eq!(body["incident"]["service"], "db");
    assert_eq!(body["target"]["sink"], "hook");
    assert!(
        body["title"].as_str().unwrap().contains("INC-1 opened"),
        "{body}"
    );
    assert!(
        body["text"].as_str().unwrap().starts_with("Opened."),
        "{body}"
    );
    assert_eq!(body["reference"], Value::Null);

    let v = settled(&d, 1).await;
    let del = &v["deliveries"][0];
    assert_eq!(
        (del["state"].as_str(), del["attempts"].as_u64()),
        (Some("delivered"), Some(2))
    );
    // The receiver's id is kept on the incident, audited, and sent with later events.
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(inc["external"][0]["sink"], "hook");
    assert_eq!(inc["external"][0]["id"], "T-1");
    assert!(
        inc["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "external_ref" && e["actor"] == "sink:hook"),
        "{inc}"
    );
    act(&d, "INC-1", "acknowledge", json!({})).await;
    let got = rx.wait_requests(3, 20).await;
    let ack = got[2].json();
    assert_eq!(ack["event"]["kind"], "acknowledged");
    assert_eq!(ack["reference"]["id"], "T-1");
    assert_eq!(got[2].header("idempotency-key"), Some("triaged-2-hook"));
    settled(&d, 2).await;
    let m = d.metrics().await;
    assert_eq!(
        metric(&m, "triaged_outbox_delivered_total{sink=\"hook\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "triaged_outbox_retried_total{sink=\"hook\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "triaged_outbox_queue_depth{sink=\"hook\"}"),
        0.0,
        "{m}"
    );
    let (_, queue) = d.get("/api/v1/outbox").await;
    assert_eq!(queue["deliveries"], json!([]), "nothing waits");
    d.stop().await;
}

#[tokio::test]
async fn retry_after_of_a_429_is_honoured() {
    let rx = Receiver::start().await;
    rx.script([Answer::status(429).header("Retry-After", "2")]);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!("{}{}", hook("hook", &rx.url("/"), ""), route(&["hook"])),
    )
    .await;
    fire(&d, "DiskFull", "db").await;
    let got = rx.wait_requests(2, 20).await;
    let gap = got[1].at.duration_since(got[0].at);
    assert!(
        gap >= Duration::from_millis(1900),
        "asked again after {gap:?}, not after 2 s"
    );
    let v = settled(&d, 1).await;
    assert_eq!(v["deliveries"][0]["state"], "delivered");
    d.stop().await;
}

struct Cli {
    url: String,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
            .args(args)
            .env("TRIAGED_URL", &self.url)
            .env_remove("TRIAGED_TOKEN")
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[tokio::test]
async fn a_rejected_delivery_is_a_dead_letter_with_its_answer_until_retried() {
    let rx = Receiver::start().await;
    rx.script([Answer::json(
        400,
        json!({"error": "field summary is required"}),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!("{}{}", hook("hook", &rx.url("/"), ""), route(&["hook"])),
    )
    .await;
    fire(&d, "DiskFull", "db").await;
    let v = settled(&d, 1).await;
    let del = &v["deliveries"][0];
    assert_eq!(del["state"], "dead", "{v}");
    assert_eq!(del["status"], 400);
    assert!(
        del["response"]
            .as_str()
            .unwrap()
            .contains("summary is required"),
        "{v}"
    );
    assert!(
        del["error"].as_str().unwrap().starts_with("rejected: 400"),
        "{v}"
    );
    assert_eq!(rx.requests().len(), 1, "a 400 is not retried");

    // The dead letter is listed (API and CLI) until an operator retries it.
    let (_, dead) = d.get("/api/v1/outbox?state=dead").await;
    assert_eq!(dead["deliveries"][0]["seq"], 1, "{dead}");
    assert_eq!(dead["deliveries"][0]["event"]["kind"], "opened");
    let (_, pending) = d.get("/api/v1/outbox?state=pending").await;
    assert_eq!(pending["deliveries"], json!([]));
    let (code, bad) = d.get("/api/v1/outbox?state=delivered").await;
    assert_eq!((code, bad["field"].as_str()), (400, Some("state")));
    let cli = Cli { url: d.url("") };
    let (ok, out, err) = cli.run(&["outbox", "list", "--state", "dead"]).await;
    assert!(ok, "{err}");
    let row = out.lines().nth(1).expect("a row under the header");
    for want in ["1", "hook", "dead", "INC-1", "opened", "rejected: 400"] {
        assert!(row.contains(want), "{want:?} not in {out}");
    }
    let (ok, out, err) = cli.run(&["outbox", "show", "1"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("hook answered: {\"error\":\"field summary is required\"}"),
        "{out}"
    );

    let (ok, out, err) = cli.run(&["outbox", "retry", "1"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "outbox event 1: retrying delivery to hook\n");
    let v = settled(&d, 1).await;
    assert_eq!(v["deliveries"][0]["state"], "delivered", "{v}");
    assert_eq!(rx.requests().len(), 2);
    // Retrying what is delivered is refused; the retry is in the audit log.
    let (ok, _, err) = cli.run(&["outbox", "retry", "1"]).await;
    assert!(
        !ok && err.contains("no dead letter to retry (delivered)"),
        "{err}"
    );
    let (code, e) = d.post_json("/api/v1/outbox/99/retry", &json!({})).await;
    assert_eq!((code, e["field"].as_str()), (404, Some("id")), "{e}");
    let (code, e) = d
        .post_json("/api/v1/outbox/1/retry", &json!({"sink": "nope"}))
        .await;
    assert_eq!((code, e["field"].as_str()), (404, Some("sink")), "{e}");
    let (code, e) = d
        .post_json("/api/v1/outbox/1/retry", &json!({"sinks": "x"}))
        .await;
    assert_eq!(code, 400, "{e}");
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    let retried = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "delivery_retried")
        .cloned()
        .unwrap_or_else(|| panic!("no delivery_retried in {inc}"));
    assert_eq!(retried["actor"], "token:anonymous");
    assert!(retried["detail"].as_str().unwrap().contains("to sink hook"));
    let m = d.metrics().await;
    assert_eq!(
        metric(&m, "triaged_outbox_dead_letters_total{sink=\"hook\"}"),
        1.0,
        "{m}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_sink_down_then_up_gets_everything_in_each_incidents_order() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}{}",
            hook("hook", &url, "breaker_failures = 100\nconcurrency = 2"),
            route(&["hook"])
        ),
    )
    .await;
    fire(&d, "DiskFull", "db").await;
    act(&d, "INC-1", "acknowledge", json!({})).await;
    fire(&d, "Latency", "web").await;
    act(&d, "INC-1", "comment", json!({"text": "looking"})).await;
    act(&d, "INC-2", "acknowledge", json!({})).await;
    act(
        &d,
        "INC-1",
        "resolve",
        json!({"code": "fixed", "note": "grew the disk"}),
    )
    .await;
    // Every event waits, the first of each incident already tried.
    wait_for(20, "deliveries waiting with failed attempts", || async {
        let (_, q) = d.get("/api/v1/outbox?state=pending").await;
        let ds = q["deliveries"].as_array()?.clone();
        (ds.len() == 6
            && ds
                .iter()
                .filter(|x| x["attempts"].as_u64() >= Some(1))
                .count()
                >= 2)
            .then_some(())
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(
        metric(&m, "triaged_outbox_queue_depth{sink=\"hook\"}"),
        6.0,
        "{m}"
    );
    assert!(
        metric(&m, "triaged_outbox_oldest_age_seconds{sink=\"hook\"}") > 0.0,
        "{m}"
    );
    let rx = Receiver::start_on(port, |_| Answer::json(200, json!({}))).await;
    let got = rx.wait_requests(6, 30).await;
    let mut seen: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for r in &got {
        let b = r.json();
        seen.entry(b["event"]["record"].as_str().unwrap().to_string())
            .or_default()
            .push(b["event"]["seq"].as_u64().unwrap());
    }
    let kinds: Vec<String> = got
        .iter()
        .filter(|r| r.json()["event"]["record"] == "INC-1")
        .map(|r| r.json()["event"]["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["opened", "acknowledged", "updated", "resolved"]);
    for (record, seqs) in &seen {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(seqs, &sorted, "{record}'s events out of order or repeated");
    }
    assert_eq!(seen["INC-2"].len(), 2);
    wait_for(10, "the queue to drain", || async {
        let (_, q) = d.get("/api/v1/outbox").await;
        (q["deliveries"] == json!([])).then_some(())
    })
    .await;
    d.stop().await;
}

#[tokio::test]
async fn the_circuit_breaker_opens_on_failures_and_a_trial_closes_it() {
    let up = Arc::new(AtomicBool::new(false));
    let rx = {
        let up = up.clone();
        Receiver::start_on(0, move |_| match up.load(Ordering::SeqCst) {
            true => Answer::json(200, json!({})),
            false => Answer::status(503),
        })
        .await
    };
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}{}",
            hook(
                "hook",
                &rx.url("/"),
                "breaker_failures = 2\nbreaker_open_secs = 3\nretry_max_secs = 1\nconcurrency = 1"
            ),
            route(&["hook"])
        ),
    )
    .await;
    for (name, service) in [("A", "a"), ("B", "b"), ("C", "c")] {
        fire(&d, name, service).await;
    }
    let open = "triaged_sink_circuit_open{sink=\"hook\"}";
    wait_for(20, "the circuit to open", || async {
        (metric(&d.metrics().await, open) == 1.0).then_some(())
    })
    .await;
    // While open, nothing is sent.
    let before = rx.requests().len();
    assert!(before >= 2, "{before}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rx.requests().len(),
        before,
        "requests while the circuit was open"
    );
    up.store(true, Ordering::SeqCst);
    for seq in 1..=3 {
        let v = settled(&d, seq).await;
        assert_eq!(v["deliveries"][0]["state"], "delivered", "{v}");
    }
    assert_eq!(metric(&d.metrics().await, open), 0.0);
    d.stop().await;
}

#[tokio::test]
async fn a_slow_sink_does_not_hold_up_another() {
    let slow = Receiver::start_on(0, |_| {
        Answer::json(200, json!({})).after(Duration::from_secs(4))
    })
    .await;
    let fast = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}{}{}",
            hook("slow", &slow.url("/"), ""),
            hook("fast", &fast.url("/"), ""),
            route(&["slow", "fast"])
        ),
    )
    .await;
    fire(&d, "DiskFull", "db").await;
    fire(&d, "Latency", "web").await;
    fast.wait_requests(2, 10).await;
    wait_for(10, "the fast sink's deliveries to be recorded", || async {
        let (_, q) = d.get("/api/v1/outbox?state=pending").await;
        let ds = q["deliveries"].as_array()?.clone();
        ds.iter().all(|x| x["sink"] == "slow").then_some(())
    })
    .await;
    assert_eq!(
        slow.answered.load(Ordering::SeqCst),
        0,
        "the fast sink was served while the slow one still had not answered"
    );
    settled(&d, 1).await;
    settled(&d, 2).await;
    d.stop().await;
}

#[tokio::test]
async fn routes_rule_decisions_and_quiet_events_choose_the_sinks() {
    let rx = Receiver::start().await;
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("10-pay.rhai"),
        "fn on_alert(alert) {\n\
           if alert.labels.service == \"pay\" {\n\
             return incident(#{ key: \"pay\", title: \"payments\", service: \"pay\", sinks: [\"pager:+4912345\"] });\n\
           }\n\
         }\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sinks: String = ["db", "all", "audit", "pager"]
        .iter()
        .map(|n| hook(n, &rx.url(&format!("/{n}")), ""))
        .collect();
    let routes = "[[routes]]\nservices = [\"db\"]\nsinks = [\"db\"]\ncontinue = true\n\
                  [[routes]]\nevents = [\"opened\"]\nsinks = [\"all\"]\n\
                  [[routes]]\nquiet = true\nsinks = [\"audit\"]\n";
    let d = Daemon::start_with_rules(dir.path(), rules.path(), &format!("{sinks}{routes}")).await;
    let (code, s) = d
        .post_json(
            "/api/v1/silences",
            &json!({"matchers": [{"name": "service", "op": "=", "value": "hush"}],
                    "ends_at": "2099-01-01T00:00:00Z", "comment": "test"}),
        )
        .await;
    assert_eq!(code, 201, "{s}");
    fire(&d, "DiskFull", "db").await; // INC-1, seq 1
    fire(&d, "Latency", "web").await; // INC-2, seq 2
    act(&d, "INC-2", "acknowledge", json!({})).await; // seq 3
    fire(&d, "Down", "hush").await; // INC-3 quiet, seq 4
    fire(&d, "Down", "pay").await; // INC-4 named sinks, seq 5
    let sinks_of = |seq: u64| {
        let d = &d;
        async move {
            let v = settled(d, seq).await;
            v["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| match x["to"].as_str() {
                    Some(to) => format!("{}:{to}", x["sink"].as_str().unwrap()),
                    None => x["sink"].as_str().unwrap().to_string(),
                })
                .collect::<Vec<_>>()
        }
    };
    let mut got = sinks_of(1).await;
    got.sort();
    assert_eq!(got, ["all", "db"]);
    assert_eq!(sinks_of(2).await, ["all"]);
    assert_eq!(
        sinks_of(3).await,
        ["audit"],
        "the third route takes what the others left"
    );
    assert_eq!(
        sinks_of(4).await,
        ["audit"],
        "a quiet event goes only where quiet is taken"
    );
    let mut got = sinks_of(5).await;
    got.sort();
    assert_eq!(got, ["all", "pager:+4912345"]);
    let to_pager = rx
        .wait_requests(7, 10)
        .await
        .into_iter()
        .find(|r| r.path == "/pager")
        .unwrap()
        .json();
    assert_eq!(
        to_pager["target"],
        json!({"sink": "pager", "to": "+4912345"})
    );
    d.stop().await;
}

#[tokio::test]
async fn a_crash_between_the_answer_and_our_record_repeats_the_request_with_the_same_key() {
    let rx = Receiver::start_on(0, |_| Answer::json(200, json!({"id": "T-9"}))).await;
    // The first request is answered only after the daemon is gone.
    rx.script([Answer::json(200, json!({"id": "T-9"})).after(Duration::from_secs(3))]);
    let dir = tempfile::tempdir().unwrap();
    let config = config_toml(
        &dir.path().join("data"),
        &shipped_rules(),
        &format!("{}{}", hook("hook", &rx.url("/"), ""), route(&["hook"])),
    );
    let child = Child::start_with_config(dir.path(), &config).await;
    let labels = json!({"alertname": "DiskFull", "service": "db", "severity": "warning"});
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-30T00:00:00Z")]);
    let resp = reqwest::Client::new()
        .post(child.url(AM_PATH))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    rx.wait_requests(1, 20).await;
    child.signal("KILL");
    drop(child);
    let child = Child::start_with_config(dir.path(), &config).await;
    let got = rx.wait_requests(2, 30).await;
    assert_eq!(got.len(), 2);
    let keys: Vec<_> = got
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        ["triaged-1-hook", "triaged-1-hook"],
        "a receiver keeps one create"
    );
    let client = reqwest::Client::new();
    wait_for(20, "the delivery to be recorded", || {
        let req = client.get(child.url("/api/v1/outbox/1")).send();
        async move {
            let v: Value = req.await.ok()?.json().await.ok()?;
            (v["deliveries"][0]["state"] == "delivered").then_some(())
        }
    })
    .await;
    let inc: Value = client
        .get(child.url("/api/v1/incidents/INC-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inc["external"].as_array().unwrap().len(), 1, "{inc}");
}

#[tokio::test]
async fn a_sinks_rate_limit_and_concurrency_hold() {
    // Rate: 2 per second with no burst beyond one: three incidents' events spread out.
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}{}",
            hook("hook", &rx.url("/"), "rate_per_sec = 2.0\nburst = 1"),
            route(&["hook"])
        ),
    )
    .await;
    for (name, service) in [("A", "a"), ("B", "b"), ("C", "c")] {
        fire(&d, name, service).await;
    }
    let got = rx.wait_requests(3, 20).await;
    let span = got[2].at.duration_since(got[0].at);
    assert!(
        span >= Duration::from_millis(900),
        "3 requests within {span:?} at 2/s"
    );
    d.stop().await;

    // Concurrency 1: the second incident's request waits for the first answer.
    let slow = Receiver::start_on(0, |_| {
        Answer::json(200, json!({})).after(Duration::from_millis(800))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{}{}",
            hook("hook", &slow.url("/"), "concurrency = 1"),
            route(&["hook"])
        ),
    )
    .await;
    fire(&d, "A", "a").await;
    fire(&d, "B", "b").await;
    let got = slow.wait_requests(2, 20).await;
    let gap = got[1].at.duration_since(got[0].at);
    assert!(
        gap >= Duration::from_millis(750),
        "the second began {gap:?} after the first, before its answer"
    );
    d.stop().await;
}

#[tokio::test]
async fn sink_secrets_are_never_logged_or_shown() {
    // A Slack webhook URL carries its token in the path; the sink cannot connect.
    let port = common::free_port();
    let secret_url = format!("http://127.0.0.1:{port}/services/T000/B000/very-secret-path-token");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.url"), &secret_url).unwrap();
    let extra = format!(
        "[log]\nlevel = \"debug\"\n[[sinks]]\nname = \"feed\"\ntype = \"slack_webhook\"\nurl_file = {:?}\n\
         retry_initial_secs = 1\n[[routes]]\nsinks = [\"feed\"]\n",
        dir.path().join("hook.url").display().to_string()
    );
    let config = common::config_toml(&dir.path().join("data"), &common::shipped_rules(), &extra);
    let child = common::Child::start_with_config(dir.path(), &config).await;
    let labels = json!({"alertname": "DiskFull", "service": "db", "severity": "warning"});
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-30T00:00:00Z")]);
    let client = reqwest::Client::new();
    let resp = client
        .post(child.url(AM_PATH))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = wait_for(20, "two failed attempts", || {
        let req = client.get(child.url("/api/v1/outbox/1")).send();
        async move {
            let v: Value = req.await.ok()?.json().await.ok()?;
            (v["deliveries"][0]["attempts"].as_u64() >= Some(2)).then_some(v)
        }
    })
    .await;
    assert!(
        v["deliveries"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect"),
        "{v}"
    );
    let config_view = client
        .get(child.url("/api/v1/config"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (what, text) in [
        ("the log", child.log_text()),
        ("the outbox", v.to_string()),
        ("the config view", config_view),
    ] {
        assert!(
            !text.contains("very-secret-path-token"),
            "the secret in {what}: {text}"
        );
    }
    assert!(
        child.log_text().contains("delivery failed; retrying"),
        "{}",
        child.log_text()
    );
}

#[tokio::test]
async fn sighup_swaps_the_routes() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = format!(
        "{}{}",
        hook("a", &rx.url("/a"), ""),
        hook("b", &rx.url("/b"), "")
    );
    let config = |to: &str| {
        common::config_toml(
            &dir.path().join("data"),
            &common::shipped_rules(),
            &format!("{sinks}{}", route(&[to])),
        )
    };
    let child = common::Child::start_with_config(dir.path(), &config("a")).await;
    let client = reqwest::Client::new();
    let fire_at = |name: &'static str| {
        let labels = json!({"alertname": name, "service": "db", "severity": "warning"});
        let body = am_payload(vec![am_alert("firing", labels, "2026-11-30T00:00:00Z")]);
        client.post(child.url(AM_PATH)).json(&body).send()
    };
    assert_eq!(fire_at("First").await.unwrap().status(), 200);
    rx.wait_requests(1, 10).await;
    std::fs::write(dir.path().join("triaged.toml"), config("b")).unwrap();
    child.signal("HUP");
    wait_for(10, "the reload", || async {
        child
            .log_text()
            .contains("configuration reloaded")
            .then_some(())
    })
    .await;
    assert_eq!(fire_at("Second").await.unwrap().status(), 200);
    let got = rx.wait_requests(2, 10).await;
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/a", "/b"]);
}
