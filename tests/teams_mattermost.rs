//! The Microsoft Teams (Workflows webhook) and Mattermost (REST API and incoming
//! webhook) sinks against fakes that check the requests those services document and
//! answer as they do (neither can run here).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::receiver::{holding_first, Answer, Received, Receiver};
use common::{am_alert, am_payload, settled, Daemon, AM_PATH};
use serde_json::{json, Value};

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

/// A Teams workflow trigger: Adaptive Cards wrapped in a message, 202 Accepted.
fn teams_workflow(r: &Received) -> Answer {
    if r.path != "/workflows/abc/triggers/manual/paths/invoke" || !r.query.contains("sig=s3cret") {
        return Answer::json(404, json!({"error": {"code": "TriggerNotFound"}}));
    }
    let b = r.json();
    let a = &b["attachments"][0];
    let ok = b["type"] == "message"
        && a["contentType"] == "application/vnd.microsoft.card.adaptive"
        && a["content"]["type"] == "AdaptiveCard"
        && a["content"]["body"].is_array();
    if !ok {
        return Answer::json(400, json!({"error": {"code": "InvalidRequestContent"}}));
    }
    Answer::status(202)
}

#[tokio::test]
async fn teams_gets_an_adaptive_card_per_event() {
    let rx = Receiver::start_on(0, teams_workflow).await;
    rx.script([Answer::status(429).header("Retry-After", "1")]);
    std::env::set_var(
        "TRIAGED_TEST_TEAMS_URL",
        rx.url("/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s3cret"),
    );
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        "[[sinks]]\nname = \"teams\"\ntype = \"teams\"\nurl_env = \"TRIAGED_TEST_TEAMS_URL\"\n\
         [[routes]]\nsinks = [\"teams\"]\n",
    )
    .await;
    fire(&d.url(AM_PATH), "DiskFull").await;
    let v = settled(&d, 1).await;
    assert_eq!(v["deliveries"][0]["state"], "delivered");
    assert_eq!(v["deliveries"][0]["attempts"], 2, "the 429 was retried");
    let (code, _) = d
        .post_json("/api/v1/incidents/INC-1/acknowledge", &json!({}))
        .await;
    assert_eq!(code, 200);
    settled(&d, 2).await;
    let cards: Vec<Value> = rx.requests().iter().skip(1).map(|r| r.json()).collect();
    assert_eq!(cards.len(), 2);
    let body = |c: &Value| c["attachments"][0]["content"]["body"].clone();
    assert!(
        body(&cards[0])[0]["text"]
            .as_str()
            .unwrap()
            .contains("INC-1 opened"),
        "{}",
        cards[0]
    );
    let facts = &body(&cards[1])[2]["facts"];
    assert!(
        facts
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["title"] == "Status" && f["value"] == "acknowledged"),
        "{facts}"
    );
    d.stop().await;
}

/// Mattermost's side: posts by id.
#[derive(Default)]
struct Server {
    posts: Vec<Value>,
    limited: bool,
}

fn mattermost_api(state: &Arc<Mutex<Server>>, r: &Received) -> Answer {
    let err = |status: u16, id: &str| {
        Answer::json(
            status,
            json!({"id": id, "message": id, "status_code": status}),
        )
    };
    if r.header("authorization") != Some("Bearer mm-token") {
        return err(401, "api.context.session_expired.app_error");
    }
    let mut s = state.lock().unwrap();
    if s.limited {
        s.limited = false;
        return Answer::json(
            429,
            json!({"message": "command api rate limit exceeded", "status_code": 429}),
        )
        .header("X-Ratelimit-Reset", "1");
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/v4/posts") => {
            let b = r.json();
            if b["channel_id"] != "ch1" {
                return err(403, "api.context.permissions.app_error");
            }
            let root = b["root_id"].as_str().unwrap_or("");
            if !root.is_empty() && !s.posts.iter().any(|p| p["id"] == root) {
                return err(400, "api.post.create_post.root_id.app_error");
            }
            let id = format!("post{}", s.posts.len() + 1);
            let post = json!({"id": id, "channel_id": "ch1", "root_id": root,
                              "message": b["message"], "props": b["props"],
                              "create_at": jiff::Timestamp::now().as_millisecond()});
            s.posts.push(post.clone());
            Answer::json(201, post)
        }
        ("GET", "/api/v4/channels/ch1/posts") => {
            assert!(r.query.starts_with("since="), "{}", r.query);
            let order: Vec<Value> = s.posts.iter().map(|p| p["id"].clone()).collect();
            let posts: serde_json::Map<String, Value> = s
                .posts
                .iter()
                .map(|p| (p["id"].as_str().unwrap().to_string(), p.clone()))
                .collect();
            Answer::json(200, json!({"order": order, "posts": posts}))
        }
        ("PUT", path) if path.starts_with("/api/v4/posts/") && path.ends_with("/patch") => {
            let id = path
                .trim_start_matches("/api/v4/posts/")
                .trim_end_matches("/patch");
            let b = r.json();
            match s.posts.iter_mut().find(|p| p["id"] == id) {
                Some(p) => {
                    p["message"] = b["message"].clone();
                    Answer::json(200, p.clone())
                }
                None => err(404, "app.post.get.app_error"),
            }
        }
        _ => err(404, "api.context.404.app_error"),
    }
}

fn mattermost_sink(url: &str) -> String {
    std::env::set_var("TRIAGED_TEST_MM_TOKEN", "mm-token");
    format!(
        "[[sinks]]\nname = \"mm\"\ntype = \"mattermost\"\nurl = \"{url}\"\ntoken_env = \"TRIAGED_TEST_MM_TOKEN\"\n\
         channel = \"ch1\"\nretry_initial_secs = 1\nretry_max_secs = 2\n[[routes]]\nsinks = [\"mm\"]\n"
    )
}

fn top_level(state: &Arc<Mutex<Server>>) -> usize {
    state
        .lock()
        .unwrap()
        .posts
        .iter()
        .filter(|p| p["root_id"] == "")
        .count()
}

#[tokio::test]
async fn mattermost_keeps_an_incident_in_one_thread_and_honours_its_rate_limit() {
    let state: Arc<Mutex<Server>> = Arc::default();
    state.lock().unwrap().limited = true;
    let st = state.clone();
    let rx = Receiver::start_on(0, move |r| mattermost_api(&st, r)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &mattermost_sink(&rx.url(""))).await;
    fire(&d.url(AM_PATH), "DiskFull").await;
    let v = settled(&d, 1).await;
    assert_eq!(v["deliveries"][0]["state"], "delivered", "{v}");
    let got = rx.requests();
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_millis(900),
        "X-Ratelimit-Reset honoured"
    );
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(inc["external"][0]["id"], "post1");
    let (code, _) = d
        .post_json("/api/v1/incidents/INC-1/acknowledge", &json!({}))
        .await;
    assert_eq!(code, 200);
    settled(&d, 2).await;
    let posts = state.lock().unwrap().posts.clone();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0]["props"]["triaged_incident"], "INC-1");
    assert!(
        posts[0]["message"]
            .as_str()
            .unwrap()
            .contains("Status: acknowledged"),
        "patched: {}",
        posts[0]
    );
    assert_eq!(posts[1]["root_id"], "post1");
    assert!(posts[1]["message"]
        .as_str()
        .unwrap()
        .starts_with("Acknowledged by token:anonymous"));
    d.stop().await;
}

#[tokio::test]
async fn a_crash_after_mattermost_posted_finds_the_post() {
    let state: Arc<Mutex<Server>> = Arc::default();
    let st = state.clone();
    let rx = Receiver::start_on(
        0,
        holding_first(|r| r.method == "POST", move |r| mattermost_api(&st, r)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let child = common::crash_at_first_request(
        dir.path(),
        &mattermost_sink(&rx.url("")),
        &rx,
        |url| async move { fire(&url, "DiskFull").await },
    )
    .await;
    common::incident_when(&child, "INC-1", "the post found after the restart", |v| {
        v["external"][0]["id"] == "post1"
    })
    .await;
    assert_eq!(
        top_level(&state),
        1,
        "a second top-level post after the restart"
    );
    assert!(
        rx.requests().iter().any(|r| r.method == "GET"),
        "the restart looked the post up"
    );
}

#[tokio::test]
async fn mattermost_refusals_are_dead_letters_and_its_webhook_mode_posts_text() {
    let state: Arc<Mutex<Server>> = Arc::default();
    let st = state.clone();
    let rx = Receiver::start_on(0, move |r| mattermost_api(&st, r)).await;
    let hook = Receiver::start_on(0, |r| {
        if r.path != "/hooks/xyz" {
            return Answer::status(404);
        }
        match r.json()["text"].as_str() {
            Some(t) if !t.is_empty() => Answer::status(200).body("ok"),
            _ => Answer::status(400).body("Unable to parse incoming data"),
        }
    })
    .await;
    std::env::set_var("TRIAGED_TEST_MM_HOOK", hook.url("/hooks/xyz"));
    std::env::set_var("TRIAGED_TEST_MM_TOKEN", "mm-token");
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "[[sinks]]\nname = \"mm\"\ntype = \"mattermost\"\nurl = \"{}\"\ntoken_env = \"TRIAGED_TEST_MM_TOKEN\"\n\
             channel = \"elsewhere\"\n\
             [[sinks]]\nname = \"mmhook\"\ntype = \"mattermost_webhook\"\nurl_env = \"TRIAGED_TEST_MM_HOOK\"\n\
             [[routes]]\nsinks = [\"mm\", \"mmhook\"]\n",
            rx.url("")
        ),
    )
    .await;
    fire(&d.url(AM_PATH), "DiskFull").await;
    let v = settled(&d, 1).await;
    let by = |sink: &str| {
        v["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["sink"] == sink)
            .cloned()
            .unwrap()
    };
    assert_eq!(by("mm")["state"], "dead");
    assert_eq!(by("mm")["status"], 403);
    assert!(by("mm")["response"]
        .as_str()
        .unwrap()
        .contains("api.context.permissions.app_error"));
    assert_eq!(by("mmhook")["state"], "delivered");
    assert!(hook.requests()[0].json()["text"]
        .as_str()
        .unwrap()
        .starts_with("#### [P1] INC-1 opened"));
    d.stop().await;
}
