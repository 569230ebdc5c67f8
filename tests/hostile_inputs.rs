//! Property tests (proptest) of every payload parser through the HTTP API: random
//! bytes, byte-level mutations of a valid body and JSON-level mutations (any node
//! replaced by any value: odd Unicode, huge numbers, nesting, wrong types) sent to the
//! Alertmanager webhook, each shipped mapping (Grafana, generic, PagerDuty; their Rhai
//! scripts run on what comes in), changes, silences, problems and the operator actions.
//! The daemon never answers 5xx or drops the connection, every 4xx is a JSON error,
//! and it still serves afterwards. Whatever the mutations do get stored goes through
//! the shipped rules, so the rule API sees hostile labels too.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

const ADMIN: &str = "admin-token-hostile-0123456789";

struct Target {
    method: &'static str,
    path: &'static str,
    seed: Value,
}

fn targets() -> Vec<Target> {
    let t = |method, path, seed| Target { method, path, seed };
    vec![
        t(
            "POST",
            "/api/v1/webhooks/alertmanager",
            am_payload(vec![am_alert(
                "firing",
                json!({"alertname": "Disk", "service": "db", "instance": "a:9100", "severity": "critical"}),
                "2026-12-01T00:00:00Z",
            )]),
        ),
        t(
            "POST",
            "/api/v1/webhooks/grafana",
            json!({"receiver": "r", "status": "firing", "orgId": 1, "alerts": [{"status": "firing",
                "labels": {"alertname": "High memory", "team": "blue"}, "annotations": {"summary": "s"},
                "startsAt": "2021-10-12T09:51:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "c6eadffa33fcdf37", "values": {"B": 44.2}}],
                "groupLabels": {}, "commonLabels": {}, "version": "1", "groupKey": "{}:{}"}),
        ),
        t(
            "POST",
            "/api/v1/webhooks/generic",
            json!({"alertname": "BackupFailed", "status": "firing", "labels": {"service": "files"},
                "annotations": {"summary": "s"}, "starts_at": "2026-12-01T02:00:00Z"}),
        ),
        t(
            "POST",
            "/api/v1/webhooks/pagerduty",
            json!({"routing_key": "R", "event_action": "trigger", "dedup_key": "srv01/disk",
                "payload": {"summary": "Disk full", "source": "srv01", "severity": "critical"}}),
        ),
        t(
            "POST",
            "/api/v1/changes",
            json!({"service": "checkout", "summary": "deploy", "status": "approved",
                "window_start": "2026-12-01T00:00:00Z", "window_end": "2026-12-01T01:00:00Z",
                "external_id": "p-1"}),
        ),
        t(
            "POST",
            "/api/v1/silences",
            json!({"matchers": [{"name": "service", "op": "=", "value": "db"}],
                "ends_at": "2099-01-01T00:00:00Z", "comment": "c"}),
        ),
        t(
            "POST",
            "/api/v1/problems",
            json!({"title": "Recurring disk", "incidents": ["INC-1"]}),
        ),
        t(
            "POST",
            "/api/v1/incidents/INC-1/acknowledge",
            json!({"note": "n"}),
        ),
        t(
            "POST",
            "/api/v1/incidents/INC-1/hold",
            json!({"reason": "awaiting_vendor", "note": "n"}),
        ),
        t(
            "POST",
            "/api/v1/incidents/INC-1/resolve",
            json!({"code": "fixed", "note": "n"}),
        ),
        t(
            "POST",
            "/api/v1/incidents/INC-1/comment",
            json!({"text": "t"}),
        ),
        t(
            "PATCH",
            "/api/v1/incidents/INC-1",
            json!({"impact": "high", "assignee": "ana"}),
        ),
        t("PATCH", "/api/v1/problems/PRB-1", json!({"title": "t"})),
        t(
            "POST",
            "/api/v1/problems/PRB-1/comment",
            json!({"text": "t"}),
        ),
        t(
            "POST",
            "/api/v1/problems/PRB-1/link",
            json!({"incident": "INC-1"}),
        ),
    ]
}

/// Any JSON value, a few levels deep, with the strings and numbers parsers trip on.
fn any_json() -> impl Strategy<Value = Value> {
    let odd = prop_oneof![
        Just(String::new()),
        Just("\u{0}".to_string()),
        Just("\u{202e}rtl\u{200d}\u{301}".to_string()),
        Just("\u{1f525}\u{10ffff}".to_string()),
        Just("x".repeat(3000)),
        Just("INC-99999999999999999999".to_string()),
        Just("9999-99-99T99:99:99Z".to_string()),
        Just("-1".to_string()),
        ".{0,40}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        odd.prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the node that `path` leads to (each step picks a child by index) with
/// `with`, or removes it when `remove` is set.
fn mutate(v: &mut Value, path: &[usize], with: Value, remove: bool) {
    let Some((&step, rest)) = path.split_first() else {
        *v = with;
        return;
    };
    match v {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(step % map.len()).unwrap().clone();
            if rest.is_empty() && remove {
                map.remove(&key);
            } else {
                mutate(map.get_mut(&key).unwrap(), rest, with, remove);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = step % items.len();
            if rest.is_empty() && remove {
                items.remove(i);
            } else {
                mutate(&mut items[i], rest, with, remove);
            }
        }
        other => *other = with,
    }
}

#[derive(Debug, Clone)]
enum Input {
    Bytes(Vec<u8>),
    /// (position, op, byte): op 0 replaces, 1 inserts, 2 deletes.
    ByteEdits(Vec<(usize, u8, u8)>),
    Json {
        path: Vec<usize>,
        with: Value,
        remove: bool,
    },
}

fn inputs() -> impl Strategy<Value = (usize, Input)> {
    let input = prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..600).prop_map(Input::Bytes),
        2 => prop::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 1..8)
            .prop_map(Input::ByteEdits),
        6 => (prop::collection::vec(any::<usize>(), 0..5), any_json(), any::<bool>())
            .prop_map(|(path, with, remove)| Input::Json { path, with, remove }),
    ];
    (any::<usize>(), input)
}

fn body_of(seed: &Value, input: &Input) -> Vec<u8> {
    match input {
        Input::Bytes(b) => b.clone(),
        Input::ByteEdits(edits) => {
            let mut b = serde_json::to_vec(seed).unwrap();
            for &(pos, op, byte) in edits {
                let at = pos % (b.len() + 1);
                match op {
                    0 if at < b.len() => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ if at < b.len() => {
                        b.remove(at);
                    }
                    _ => b.push(byte),
                }
            }
            b
        }
        Input::Json { path, with, remove } => {
            let mut v = seed.clone();
            mutate(&mut v, path, with.clone(), *remove);
            serde_json::to_vec(&v).unwrap()
        }
    }
}

#[test]
fn random_and_mutated_bodies_get_2xx_or_a_json_4xx_and_never_break_the_daemon() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[server.tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n\
         [[webhooks]]\nname = \"grafana\"\nmapping = \"grafana.rhai\"\n\
         [[webhooks]]\nname = \"generic\"\nmapping = \"generic.rhai\"\n\
         [[webhooks]]\nname = \"pagerduty\"\nmapping = \"pagerduty.rhai\"\n"
    );
    let d = rt.block_on(Daemon::start(&dir.path().join("data"), &extra));
    let targets = targets();
    // The records the actions act on.
    rt.block_on(async {
        for t in &targets[..3] {
            let resp = d
                .client
                .post(d.url(t.path))
                .bearer_auth(ADMIN)
                .json(&t.seed)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "seed for {}", t.path);
        }
        let resp = d
            .client
            .post(d.url("/api/v1/problems"))
            .bearer_auth(ADMIN)
            .json(&json!({"title": "P", "key": "p"}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    });

    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    let tally = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner.run(&inputs(), |(pick, input)| {
        let t = &targets[pick % targets.len()];
        let body = body_of(&t.seed, &input);
        let (status, answer) = rt.block_on(async {
            let resp = d
                .client
                .request(t.method.parse().unwrap(), d.url(t.path))
                .bearer_auth(ADMIN)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| {
                    TestCaseError::fail(format!("{} {}: no answer: {e}", t.method, t.path))
                })?;
            Ok::<_, TestCaseError>(status_json(resp).await)
        })?;
        *tally.lock().unwrap().entry(status).or_default() += 1;
        prop_assert!(
            status < 500,
            "{} {} answered {status} {answer} to {:?}",
            t.method,
            t.path,
            String::from_utf8_lossy(&body)
        );
        if status >= 400 {
            prop_assert!(
                answer["error"].is_string(),
                "{} {}: {status} without a JSON error: {answer}",
                t.method,
                t.path
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The mutations reach both sides: accepted bodies (stored, through the rules and
    // the actions) and refused ones.
    let tally = tally.into_inner().unwrap();
    eprintln!("answers by status: {tally:?}");
    let accepted: u32 = tally.range(200..300).map(|(_, n)| n).sum();
    let refused: u32 = tally.range(400..500).map(|(_, n)| n).sum();
    assert!(accepted >= 20 && refused >= 20, "{tally:?}");
    rt.block_on(async {
        assert_eq!(d.get("/healthz").await.0, 200);
        assert_eq!(d.get("/readyz").await.0, 200);
        d.stop().await;
    });
}
