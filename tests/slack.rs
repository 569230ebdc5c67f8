//! The Slack sink against a fake of Slack's Web API (Slack cannot run here): the fake
//! checks the requests Slack documents (method, path, bearer token, JSON body) and
//! answers as Slack does (`ok`, `channel`, `ts`; `ok: false` errors; 429 with
//! Retry-After). Then the buttons: signed interaction payloads act on the incident.

mod common;

use std::sync::{Arc, Mutex};

use common::receiver::{holding_first, Answer, Received, Receiver};
use common::{am_alert, am_payload, wait_for, Daemon, AM_PATH};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

const TOKEN: &str = "xoxb-test-token";
const SIGNING: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// Slack's side: the messages posted, by ts.
#[derive(Default)]
struct Workspace {
    messages: Vec<Value>,
    next: u64,
}

/// Answers like Slack's Web API; refuses requests Slack would refuse.
fn slack_api(ws: &Arc<Mutex<Workspace>>, r: &Received) -> Answer {
    if r.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Answer::json(200, json!({"ok": false, "error": "invalid_auth"}));
    }
    let mut ws = ws.lock().unwrap();
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/chat.postMessage") => {
            assert_eq!(
                r.header("content-type"),
                Some("application/json; charset=utf-8")
            );
            let b = r.json();
            if b["channel"] != "C123" && b["channel"] != "C999" {
                return Answer::json(200, json!({"ok": false, "error": "channel_not_found"}));
            }
            assert!(b["text"].as_str().is_some_and(|t| !t.is_empty()), "{b}");
            if let Some(thread) = b["thread_ts"].as_str() {
                assert!(
                    ws.messages.iter().any(|m| m["ts"] == thread),
                    "a reply to a message that does not exist: {b}"
                );
            } else {
                assert!(b["blocks"].is_array(), "{b}");
                assert_eq!(b["metadata"]["event_type"], "triaged_incident", "{b}");
            }
            ws.next += 1;
            let ts = format!("1700000000.{:06}", ws.next);
            let mut msg = b.clone();
            msg["ts"] = json!(ts);
            ws.messages.push(msg.clone());
            Answer::json(
                200,
                json!({"ok": true, "channel": b["channel"], "ts": ts, "message": msg}),
            )
        }
        ("POST", "/api/chat.update") => {
            let b = r.json();
            match ws
                .messages
                .iter_mut()
                .find(|m| m["ts"] == b["ts"] && m["channel"] == b["channel"])
            {
                Some(m) => {
                    m["blocks"] = b["blocks"].clone();
                    m["text"] = b["text"].clone();
                    Answer::json(
                        200,
                        json!({"ok": true, "channel": b["channel"], "ts": b["ts"]}),
                    )
                }
                None => Answer::json(200, json!({"ok": false, "error": "message_not_found"})),
            }
        }
        ("GET", "/api/conversations.history") => {
            assert!(r.query.contains("include_all_metadata=true"), "{}", r.query);
            if !r.query.contains("channel=C123") {
                return Answer::json(200, json!({"ok": false, "error": "channel_not_found"}));
            }
            let top: Vec<Value> = ws
                .messages
                .iter()
                .filter(|m| m["thread_ts"].is_null())
                .cloned()
                .rev()
                .collect();
            Answer::json(200, json!({"ok": true, "messages": top, "has_more": false}))
        }
        _ => Answer::json(404, json!({"ok": false, "error": "unknown_method"})),
    }
}

async fn fake_slack() -> (Receiver, Arc<Mutex<Workspace>>) {
    let ws: Arc<Mutex<Workspace>> = Arc::default();
    let state = ws.clone();
    let rx = Receiver::start_on(0, move |r| slack_api(&state, r)).await;
    (rx, ws)
}

fn slack_sink(rx: &Receiver, extra: &str) -> String {
    std::env::set_var("TRIAGED_TEST_SLACK_TOKEN", TOKEN);
    std::env::set_var("TRIAGED_TEST_SLACK_SIGNING", SIGNING);
    format!(
        "[[sinks]]\nname = \"slack\"\ntype = \"slack\"\napi_url = \"{}\"\n\
         token_env = \"TRIAGED_TEST_SLACK_TOKEN\"\nchannel = \"C123\"\n\
         signing_secret_env = \"TRIAGED_TEST_SLACK_SIGNING\"\nretry_initial_secs = 1\nretry_max_secs = 2\n{extra}\n\
         [[routes]]\nsinks = [\"slack\"]\n",
        rx.url("/api")
    )
}

async fn fire(url: &str, alertname: &str) {
    let labels = json!({"alertname": alertname, "service": "db", "severity": "critical"});
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-30T00:00:00Z")]);
    let resp = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn posts(rx: &Receiver) -> Vec<Value> {
    rx.requests()
        .iter()
        .filter(|r| r.path == "/api/chat.postMessage")
        .map(Received::json)
        .collect()
}

fn buttons(blocks: &Value) -> Vec<String> {
    blocks
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .map(|e| e["action_id"].as_str().unwrap().to_string())
        .collect()
}

/// A Slack interaction as Slack sends it: form-encoded `payload`, signed.
fn interaction(action: &str, incident: &str, user: &str, at: i64) -> (String, String, String) {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T1"},
        "api_app_id": "A1",
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": "C123"},
        "channel": {"id": "C123", "name": "incidents"},
        "actions": [{"action_id": action, "block_id": "triaged_actions", "value": incident,
                     "type": "button", "action_ts": "1700000001.000000"}],
        "response_url": "https://hooks.slack.com/actions/T1/1/x",
    });
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let ts = at.to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SIGNING.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    (body, ts, sig)
}

async fn press(d: &Daemon, (body, ts, sig): (String, String, String)) -> (u16, Value) {
    let resp = d
        .client
        .post(d.url("/api/v1/chat/slack/slack"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    common::status_json(resp).await
}

#[tokio::test]
async fn an_incident_is_one_slack_message_updated_and_threaded_and_its_buttons_act() {
    let (rx, ws) = fake_slack().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &slack_sink(&rx, "")).await;
    fire(&d.url(AM_PATH), "DiskFull").await;
    let first = wait_for(10, "the incident's message", || async {
        posts(&rx).first().cloned()
    })
    .await;
    assert_eq!(first["channel"], "C123");
    assert_eq!(first["metadata"]["event_payload"]["incident"], "INC-1");
    assert!(
        first["text"].as_str().unwrap().contains("INC-1 opened"),
        "{first}"
    );
    assert_eq!(
        buttons(&first["blocks"]),
        ["triaged_acknowledge", "triaged_resolve"]
    );
    let inc = wait_for(10, "the message's reference on the incident", || async {
        let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
        (inc["external"][0]["id"] == "C123/1700000000.000001").then_some(inc)
    })
    .await;
    assert_eq!(inc["external"][0]["sink"], "slack");

    // Acknowledge by the button, signed as Slack signs it.
    let now = jiff::Timestamp::now().as_second();
    let (code, out) = press(
        &d,
        interaction("triaged_acknowledge", "INC-1", "U2CERLKJA", now),
    )
    .await;
    assert_eq!(
        (code, out["status"].as_str()),
        (200, Some("acknowledged")),
        "{out}"
    );
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    let entry = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "status" && e["to"] == "acknowledged")
        .cloned()
        .unwrap();
    assert_eq!(entry["actor"], "slack:U2CERLKJA (alice)");
    // The message is updated (no Acknowledge button any more) and the thread told.
    wait_for(10, "the thread reply", || async {
        let ps = posts(&rx);
        (ps.len() == 2).then_some(())
    })
    .await;
    let reply = &posts(&rx)[1];
    assert_eq!(reply["thread_ts"], "1700000000.000001");
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .starts_with("Acknowledged by slack:U2CERLKJA"),
        "{reply}"
    );
    let updated = rx
        .requests()
        .iter()
        .filter(|r| r.path == "/api/chat.update")
        .map(Received::json)
        .next_back()
        .unwrap();
    assert_eq!(updated["ts"], "1700000000.000001");
    assert_eq!(buttons(&updated["blocks"]), ["triaged_resolve"]);
    assert_eq!(
        buttons(&ws.lock().unwrap().messages[0]["blocks"]),
        ["triaged_resolve"]
    );

    // A second press is too late, not an error; stale, forged and foreign ones are refused.
    let (code, out) = press(
        &d,
        interaction("triaged_acknowledge", "INC-1", "U2CERLKJA", now),
    )
    .await;
    assert_eq!((code, out["ok"].as_bool()), (200, Some(false)), "{out}");
    let (code, _) = press(
        &d,
        interaction("triaged_acknowledge", "INC-1", "U2CERLKJA", now - 301),
    )
    .await;
    assert_eq!(code, 401, "older than 5 minutes");
    let (body, ts, _) = interaction("triaged_resolve", "INC-1", "U2CERLKJA", now);
    let (code, out) = press(&d, (body, ts, "v0=00".into())).await;
    assert_eq!(
        (code, out["field"].as_str()),
        (401, Some("X-Slack-Signature")),
        "{out}"
    );
    let (code, _) = d.post_json("/api/v1/chat/slack/nope", &json!({})).await;
    assert_eq!(code, 404);

    // Resolve by the button: the buttons go, the thread says so.
    let (code, out) = press(
        &d,
        interaction("triaged_resolve", "INC-1", "U2CERLKJA", now),
    )
    .await;
    assert_eq!(
        (code, out["status"].as_str()),
        (200, Some("resolved")),
        "{out}"
    );
    wait_for(10, "the resolution in the thread", || async {
        (posts(&rx).len() == 3).then_some(())
    })
    .await;
    let resolved = &posts(&rx)[2];
    assert!(
        resolved["text"]
            .as_str()
            .unwrap()
            .starts_with("Resolved (fixed: resolved from Slack) by slack:U2CERLKJA"),
        "{resolved}"
    );
    let last_update = rx
        .requests()
        .iter()
        .filter(|r| r.path == "/api/chat.update")
        .map(Received::json)
        .next_back()
        .unwrap();
    assert!(buttons(&last_update["blocks"]).is_empty());
    d.stop().await;
}

#[tokio::test]
async fn slack_errors_retry_or_dead_letter_and_allowed_users_are_enforced() {
    let (rx, _ws) = fake_slack().await;
    let (other, _) = fake_slack().await;
    rx.script([
        Answer::status(429).header("Retry-After", "1"),
        Answer::json(200, json!({"ok": false, "error": "ratelimited"})),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "[[sinks]]\nname = \"elsewhere\"\ntype = \"slack\"\napi_url = \"{}\"\n\
             token_env = \"TRIAGED_TEST_SLACK_TOKEN\"\nchannel = \"C404\"\n\
             [[routes]]\nservices = [\"db\"]\nsinks = [\"elsewhere\"]\ncontinue = true\n{}",
            other.url("/api"),
            slack_sink(&rx, "allowed_users = [\"U1\"]"),
        ),
    )
    .await;
    fire(&d.url(AM_PATH), "DiskFull").await;
    let v = wait_for(20, "both deliveries to settle", || async {
        let (_, v) = d.get("/api/v1/outbox/1").await;
        let ds = v["deliveries"].as_array()?.clone();
        ds.iter().all(|x| x["state"] != "pending").then_some(ds)
    })
    .await;
    let by = |sink: &str| v.iter().find(|x| x["sink"] == sink).unwrap().clone();
    assert_eq!(by("slack")["state"], "delivered");
    assert_eq!(
        by("slack")["attempts"],
        3,
        "429 then ratelimited, then posted"
    );
    assert_eq!(by("elsewhere")["state"], "dead");
    assert_eq!(
        by("elsewhere")["error"],
        "rejected: slack: channel_not_found"
    );
    // Only U1 may press buttons; the message has none without a signing secret.
    let now = jiff::Timestamp::now().as_second();
    let (code, out) = press(&d, interaction("triaged_acknowledge", "INC-1", "U2", now)).await;
    assert_eq!(
        (code, out["field"].as_str()),
        (403, Some("payload.user.id")),
        "{out}"
    );
    let (code, _) = press(&d, interaction("triaged_acknowledge", "INC-1", "U1", now)).await;
    assert_eq!(code, 200);
    d.stop().await;
}

#[tokio::test]
async fn the_incoming_webhook_mode_posts_blocks_to_the_secret_url() {
    let rx = Receiver::start_on(0, |r| {
        if r.path != "/services/T1/B1/secret" {
            return Answer::status(404).body("no_service");
        }
        let b = r.json();
        if b["text"].is_null() || !b["blocks"].is_array() {
            return Answer::status(400).body("invalid_payload");
        }
        Answer::status(200).body("ok")
    })
    .await;
    std::env::set_var("TRIAGED_TEST_SLACK_HOOK", rx.url("/services/T1/B1/secret"));
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        "[[sinks]]\nname = \"hook\"\ntype = \"slack_webhook\"\nurl_env = \"TRIAGED_TEST_SLACK_HOOK\"\n\
         [[routes]]\nsinks = [\"hook\"]\n",
    )
    .await;
    fire(&d.url(AM_PATH), "DiskFull").await;
    let got = rx.wait_requests(1, 10).await;
    let b = got[0].json();
    assert!(b["text"].as_str().unwrap().contains("INC-1"), "{b}");
    assert!(
        buttons(&b["blocks"]).is_empty(),
        "a webhook message has no buttons"
    );
    wait_for(10, "delivered", || async {
        let (_, v) = d.get("/api/v1/outbox/1").await;
        (v["deliveries"][0]["state"] == "delivered").then_some(())
    })
    .await;
    let (_, cfg) = d.get("/api/v1/config").await;
    assert!(
        !cfg.to_string().contains("secret"),
        "the webhook URL is a secret: {cfg}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_crash_after_slack_posted_finds_the_message_instead_of_posting_again() {
    let ws: Arc<Mutex<Workspace>> = Arc::default();
    let state = ws.clone();
    let rx = Receiver::start_on(
        0,
        holding_first(
            |r| r.path == "/api/chat.postMessage",
            move |r| slack_api(&state, r),
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let child =
        common::crash_at_first_request(dir.path(), &slack_sink(&rx, ""), &rx, |url| async move {
            fire(&url, "DiskFull").await
        })
        .await;
    let inc = common::incident_when(
        &child,
        "INC-1",
        "the reference found after the restart",
        |v| v["external"][0]["id"] == "C123/1700000000.000001",
    )
    .await;
    assert_eq!(inc["external"].as_array().unwrap().len(), 1);
    let top_level = posts(&rx)
        .iter()
        .filter(|p| p["thread_ts"].is_null())
        .count();
    assert_eq!(top_level, 1, "a second top-level message after the restart");
    assert!(
        rx.requests()
            .iter()
            .any(|r| r.path == "/api/conversations.history"),
        "the restart looked the message up"
    );
    // Later events go to that message's thread.
    let resp = reqwest::Client::new()
        .post(child.url("/api/v1/incidents/INC-1/acknowledge"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_for(10, "the thread reply", || async {
        posts(&rx)
            .iter()
            .any(|p| p["thread_ts"] == "1700000000.000001")
            .then_some(())
    })
    .await;
    assert_eq!(
        ws.lock()
            .unwrap()
            .messages
            .iter()
            .filter(|m| m["thread_ts"].is_null())
            .count(),
        1
    );
}
