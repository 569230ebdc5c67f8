//! The Jira sink against a fake of Jira's REST API (Jira cannot run here): the fake
//! checks what Jira documents (paths, basic auth with an API token, the create
//! fields, transition ids) and answers as Jira does (201 with the key, 400 naming the
//! field, 204 for a transition, 429 with Retry-After).

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine;
use common::receiver::{holding_first, Answer, Received, Receiver};
use common::{am_alert, am_payload, settled, Daemon, AM_PATH};
use serde_json::{json, Value};

const AUTH_USER: &str = "sre@example.com";
const TOKEN: &str = "jira-api-token";

#[derive(Default)]
struct Jira {
    issues: Vec<Value>,
    comments: Vec<(String, String)>,
    /// Transitions to refuse with a 503 before taking one.
    failing_transitions: u32,
}

fn jira_api(state: &Arc<Mutex<Jira>>, r: &Received) -> Answer {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{TOKEN}"));
    let auth = r.header("authorization");
    if auth != Some(&format!("Basic {basic}")) && auth != Some("Bearer dc-personal-access-token") {
        return Answer::json(
            401,
            json!({"errorMessages": ["You are not authenticated."], "errors": {}}),
        );
    }
    let mut j = state.lock().unwrap();
    let path = r.path.as_str();
    match (r.method.as_str(), path) {
        ("POST", "/rest/api/2/issue") => {
            let f = &r.json()["fields"];
            let mut errors = serde_json::Map::new();
            if f["project"]["key"] != "OPS" {
                errors.insert("project".into(), json!("project is required"));
            }
            if f["issuetype"]["name"] != "Incident" {
                errors.insert(
                    "issuetype".into(),
                    json!("The issue type selected is invalid."),
                );
            }
            if !["Highest", "High", "Medium", "Low", "Lowest"]
                .contains(&f["priority"]["name"].as_str().unwrap_or(""))
            {
                errors.insert(
                    "priority".into(),
                    json!(format!(
                        "Priority name '{}' is not valid",
                        f["priority"]["name"]
                    )),
                );
            }
            if f["summary"].as_str().is_none_or(|s| s.is_empty()) {
                errors.insert(
                    "summary".into(),
                    json!("You must specify a summary of the issue."),
                );
            }
            if !errors.is_empty() {
                return Answer::json(400, json!({"errorMessages": [], "errors": errors}));
            }
            let n = j.issues.len() + 1;
            let key = format!("OPS-{n}");
            let mut issue = f.clone();
            issue["key"] = json!(key);
            issue["status"] = json!("Open");
            j.issues.push(issue);
            Answer::json(
                201,
                json!({"id": format!("{}", 10000 + n), "key": key,
                                     "self": format!("http://jira/rest/api/2/issue/{}", 10000 + n)}),
            )
        }
        // Cloud's enhanced search, and Data Center's.
        ("GET", "/rest/api/3/search/jql" | "/rest/api/2/search") => {
            let jql = form_urlencoded::parse(r.query.as_bytes())
                .find(|(k, _)| k == "jql")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let issues: Vec<Value> = j
                .issues
                .iter()
                .filter(|i| {
                    i["labels"].as_array().unwrap().iter().any(|l| {
                        jql.contains(&format!("labels = \"{}\"", l.as_str().unwrap()))
                            && l != "triaged"
                    })
                })
                .map(|i| json!({"id": "1", "key": i["key"]}))
                .collect();
            Answer::json(200, json!({"issues": issues, "isLast": true}))
        }
        // Newest first with orderBy=-created, a page of maxResults (Jira's default 50).
        ("GET", p) if p.ends_with("/comment") => {
            let key = p
                .trim_start_matches("/rest/api/2/issue/")
                .trim_end_matches("/comment");
            let q: std::collections::HashMap<String, String> =
                form_urlencoded::parse(r.query.as_bytes())
                    .into_owned()
                    .collect();
            let mut cs: Vec<Value> = j
                .comments
                .iter()
                .enumerate()
                .filter(|(_, (k, _))| k == key)
                .map(|(i, (_, body))| json!({"id": (i + 1).to_string(), "body": body}))
                .collect();
            if q.get("orderBy").map(String::as_str) == Some("-created") {
                cs.reverse();
            }
            let max: usize = q
                .get("maxResults")
                .and_then(|m| m.parse().ok())
                .unwrap_or(50);
            let total = cs.len();
            cs.truncate(max);
            Answer::json(
                200,
                json!({"startAt": 0, "maxResults": max, "total": total, "comments": cs}),
            )
        }
        ("POST", p) if p.ends_with("/comment") => {
            let key = p
                .trim_start_matches("/rest/api/2/issue/")
                .trim_end_matches("/comment")
                .to_string();
            if !j.issues.iter().any(|i| i["key"] == key.as_str()) {
                return Answer::json(
                    404,
                    json!({"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}),
                );
            }
            let body = r.json()["body"].as_str().unwrap_or("").to_string();
            j.comments.push((key, body.clone()));
            Answer::json(
                201,
                json!({"id": j.comments.len().to_string(), "body": body}),
            )
        }
        (m, p) if p.ends_with("/transitions") => {
            let key = p
                .trim_start_matches("/rest/api/2/issue/")
                .trim_end_matches("/transitions")
                .to_string();
            if m == "POST" && j.failing_transitions > 0 {
                j.failing_transitions -= 1;
                return Answer::json(503, json!({"errorMessages": ["try again"], "errors": {}}));
            }
            let Some(issue) = j.issues.iter_mut().find(|i| i["key"] == key.as_str()) else {
                return Answer::json(
                    404,
                    json!({"errorMessages": ["Issue does not exist"], "errors": {}}),
                );
            };
            let available: Vec<(&str, &str, &str)> = match issue["status"].as_str().unwrap() {
                "Open" => vec![
                    ("21", "Start Progress", "In Progress"),
                    ("31", "Resolve Issue", "Resolved"),
                ],
                "Resolved" => vec![
                    ("41", "Close Issue", "Closed"),
                    ("51", "Reopen Issue", "Open"),
                ],
                _ => vec![],
            };
            if m == "GET" {
                let ts: Vec<Value> = available
                    .iter()
                    .map(|(id, name, to)| json!({"id": id, "name": name, "to": {"name": to}}))
                    .collect();
                return Answer::json(200, json!({"expand": "transitions", "transitions": ts}));
            }
            let id = r.json()["transition"]["id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            match available.iter().find(|(i, _, _)| *i == id) {
                Some((_, _, to)) => {
                    issue["status"] = json!(to);
                    Answer::status(204)
                }
                None => Answer::json(
                    400,
                    json!({"errorMessages": ["Transition id is not valid for this issue."], "errors": {}}),
                ),
            }
        }
        _ => Answer::json(404, json!({"errorMessages": ["not found"], "errors": {}})),
    }
}

fn jira_sink(url: &str, extra: &str) -> String {
    std::env::set_var("TRIAGED_TEST_JIRA_TOKEN", TOKEN);
    format!(
        "[[sinks]]\nname = \"jira\"\ntype = \"jira\"\nurl = \"{url}\"\ncloud = true\n\
         username = \"{AUTH_USER}\"\ntoken_env = \"TRIAGED_TEST_JIRA_TOKEN\"\nproject = \"OPS\"\n\
         issue_type = \"Incident\"\nresolve_transition = \"Resolve Issue\"\nclose_transition = \"Close Issue\"\n\
         labels = [\"sre\"]\nretry_initial_secs = 1\nretry_max_secs = 2\n{extra}\n\
         [[routes]]\nsinks = [\"jira\"]\n"
    )
}

async fn fake() -> (Receiver, Arc<Mutex<Jira>>) {
    let state: Arc<Mutex<Jira>> = Arc::default();
    let st = state.clone();
    (
        Receiver::start_on(0, move |r| jira_api(&st, r)).await,
        state,
    )
}

async fn fire(url: &str) {
    let labels = json!({"alertname": "DiskFull", "service": "db", "severity": "critical"});
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-30T00:00:00Z")]);
    let resp = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_incident_is_one_jira_issue_commented_and_transitioned() {
    let (rx, state) = fake().await;
    rx.script([Answer::status(429).header("Retry-After", "1")]);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &jira_sink(&rx.url(""), "")).await;
    fire(&d.url(AM_PATH)).await;
    let v = settled(&d, 1).await;
    assert_eq!(v["deliveries"][0]["state"], "delivered", "{v}");
    {
        let j = state.lock().unwrap();
        assert_eq!(j.issues.len(), 1);
        let i = &j.issues[0];
        assert_eq!(i["priority"]["name"], "Highest", "P1 → Highest");
        assert_eq!(i["labels"], json!(["triaged", "triaged-INC-1", "sre"]));
        assert!(i["summary"].as_str().unwrap().contains("INC-1 opened"));
    }
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(
        inc["external"][0],
        json!({"sink": "jira", "id": "OPS-1", "at": inc["external"][0]["at"]})
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["incidents", "show", "INC-1"])
        .env("TRIAGED_URL", d.url(""))
        .env_remove("TRIAGED_TOKEN")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l == "external          jira OPS-1"),
        "{text}"
    );
    for (action, body) in [
        ("acknowledge", json!({})),
        (
            "resolve",
            json!({"code": "fixed", "note": "grew the volume"}),
        ),
        ("close", json!({})),
    ] {
        let (code, out) = d
            .post_json(&format!("/api/v1/incidents/INC-1/{action}"), &body)
            .await;
        assert_eq!(code, 200, "{out}");
    }
    for seq in 2..=4 {
        let v = settled(&d, seq).await;
        assert_eq!(v["deliveries"][0]["state"], "delivered", "{v}");
    }
    let (status, comments) = {
        let j = state.lock().unwrap();
        let comments: Vec<String> = j.comments.iter().map(|(_, c)| c.clone()).collect();
        (j.issues[0]["status"].clone(), comments)
    };
    assert_eq!(status, "Closed");
    assert_eq!(comments.len(), 3, "{comments:?}");
    assert!(
        comments[1].starts_with("Resolved (fixed: grew the volume)"),
        "{comments:?}"
    );
    d.stop().await;
}

/// The resolve event is a comment and then a transition; when the transition fails,
/// the retry finds its comment (by the event's marker, newest comments first) and
/// posts only the transition.
#[tokio::test]
async fn a_failed_transition_is_retried_without_commenting_twice() {
    let (rx, state) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &jira_sink(&rx.url(""), "")).await;
    fire(&d.url(AM_PATH)).await;
    assert_eq!(settled(&d, 1).await["deliveries"][0]["state"], "delivered");
    state.lock().unwrap().failing_transitions = 2;
    let (code, out) = d
        .post_json(
            "/api/v1/incidents/INC-1/resolve",
            &json!({"code": "fixed", "note": "grew the volume"}),
        )
        .await;
    assert_eq!(code, 200, "{out}");
    let v = settled(&d, 2).await;
    let del = &v["deliveries"][0];
    assert_eq!(del["state"], "delivered", "{v}");
    assert_eq!(del["attempts"], 3, "{v}");
    {
        let j = state.lock().unwrap();
        assert_eq!(j.issues[0]["status"], "Resolved");
        let resolved: Vec<&String> = j
            .comments
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.starts_with("Resolved"))
            .collect();
        assert_eq!(resolved.len(), 1, "{:?}", j.comments);
        assert!(
            resolved[0].ends_with("— posted by triaged (event 2)"),
            "{resolved:?}"
        );
    }
    let looked: Vec<String> = rx
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/comment"))
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(looked.len(), 2, "one look per retry: {looked:?}");
    assert!(looked[0].contains("orderBy=-created"), "{looked:?}");
    d.stop().await;
}

#[tokio::test]
async fn a_field_jira_refuses_is_a_dead_letter_naming_it() {
    let (rx, state) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &jira_sink(&rx.url(""), "[sinks.priorities]\nP1 = \"Urgent\""),
    )
    .await;
    fire(&d.url(AM_PATH)).await;
    let v = settled(&d, 1).await;
    let del = &v["deliveries"][0];
    assert_eq!(
        (del["state"].as_str(), del["status"].as_u64()),
        (Some("dead"), Some(400)),
        "{v}"
    );
    assert!(
        del["response"].as_str().unwrap().contains("Priority name"),
        "{v}"
    );
    assert!(state.lock().unwrap().issues.is_empty());
    d.stop().await;
}

#[tokio::test]
async fn a_crash_after_jira_created_the_issue_finds_it_by_label() {
    let state: Arc<Mutex<Jira>> = Arc::default();
    let st = state.clone();
    let rx = Receiver::start_on(
        0,
        holding_first(|r| r.method == "POST", move |r| jira_api(&st, r)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let child = common::crash_at_first_request(
        dir.path(),
        &jira_sink(&rx.url(""), ""),
        &rx,
        |url| async move { fire(&url).await },
    )
    .await;
    common::incident_when(&child, "INC-1", "the issue found after the restart", |v| {
        v["external"][0]["id"] == "OPS-1"
    })
    .await;
    assert_eq!(
        state.lock().unwrap().issues.len(),
        1,
        "a second ticket after the restart"
    );
    assert!(rx
        .requests()
        .iter()
        .any(|r| r.path == "/rest/api/3/search/jql"));
}

/// A Jira webhook as Jira sends it, signed with the secret.
async fn jira_webhook(d: &Daemon, body: &Value, secret: Option<&str>) -> (u16, Value) {
    use hmac::{Hmac, Mac};
    let bytes = body.to_string();
    let mut req = d
        .client
        .post(d.url("/api/v1/webhooks/jira"))
        .header("content-type", "application/json")
        .body(bytes.clone());
    if let Some(s) = secret {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(s.as_bytes()).unwrap();
        mac.update(bytes.as_bytes());
        req = req.header(
            "X-Hub-Signature",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        );
    }
    common::status_json(req.send().await.unwrap()).await
}

fn issue(key: &str, label: &str, status: &str, category: &str) -> Value {
    json!({"id": "10001", "key": key, "self": "http://jira/rest/api/2/issue/10001",
           "fields": {"labels": ["triaged", label, "sre"],
                      "status": {"name": status, "statusCategory": {"key": category, "name": status}},
                      "resolution": if category == "done" { json!({"name": "Done"}) } else { Value::Null }}})
}

#[tokio::test]
async fn comments_and_a_resolution_in_jira_come_back_without_echo() {
    const SECRET: &str = "jira-webhook-secret-0123";
    std::env::set_var("TRIAGED_TEST_JIRA_HOOK", SECRET);
    let (rx, state) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &jira_sink(&rx.url(""), "secret_env = \"TRIAGED_TEST_JIRA_HOOK\""),
    )
    .await;
    fire(&d.url(AM_PATH)).await;
    settled(&d, 1).await;
    let jane = json!({"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Jane Doe"});
    let comment = |body: &str| {
        json!({"timestamp": 1700000000000u64, "webhookEvent": "comment_created",
               "comment": {"id": "10100", "body": body, "author": jane},
               "issue": issue("OPS-1", "triaged-INC-1", "Open", "new")})
    };
    // Unsigned or badly signed: refused.
    let (code, _) = jira_webhook(&d, &comment("hi"), None).await;
    assert_eq!(code, 401);
    let (code, _) = jira_webhook(&d, &comment("hi"), Some("wrong-secret")).await;
    assert_eq!(code, 401);
    let (code, out) = jira_webhook(
        &d,
        &comment("the disk controller is replaced"),
        Some(SECRET),
    )
    .await;
    assert_eq!(
        (code, out["action"].as_str()),
        (200, Some("comment")),
        "{out}"
    );
    // triaged's own comment (its marker) and other issues are not taken.
    let own = format!("Acknowledged.\n\n{}", "— posted by triaged");
    let (_, out) = jira_webhook(&d, &comment(&own), Some(SECRET)).await;
    assert!(out["ignored"].is_string(), "{out}");
    let mut other = comment("x");
    other["issue"] = issue("OPS-9", "triaged-INC-1", "Open", "new");
    let (_, out) = jira_webhook(&d, &other, Some(SECRET)).await;
    assert_eq!(out["ignored"], "the issue is not the incident's ticket");
    // Done in Jira: resolved here, as Jane, with Jira's resolution.
    let done = json!({"timestamp": 1700000001000u64, "webhookEvent": "jira:issue_updated",
                      "issue_event_type_name": "issue_generic", "user": jane,
                      "issue": issue("OPS-1", "triaged-INC-1", "Done", "done"),
                      "changelog": {"items": [{"field": "status", "fromString": "Open", "toString": "Done"}]}});
    let (code, out) = jira_webhook(&d, &done, Some(SECRET)).await;
    assert_eq!(
        (code, out["status"].as_str()),
        (200, Some("resolved")),
        "{out}"
    );
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(inc["resolution"]["note"], "OPS-1 resolved in Jira: Done");
    let tl = inc["timeline"].as_array().unwrap();
    assert!(
        tl.iter().any(|e| e["action"] == "comment"
            && e["actor"] == "jira:Jane Doe"
            && e["detail"] == "OPS-1: the disk controller is replaced"),
        "{inc}"
    );
    assert!(
        tl.iter()
            .any(|e| e["action"] == "resolved" && e["actor"] == "jira:Jane Doe"),
        "{inc}"
    );
    // The same webhook again changes nothing; what came from Jira is not sent back.
    let (_, out) = jira_webhook(&d, &done, Some(SECRET)).await;
    assert!(
        out["ignored"].as_str().unwrap().contains("resolved"),
        "{out}"
    );
    for seq in 2..=3 {
        assert_eq!(
            settled(&d, seq).await["deliveries"][0]["state"],
            "delivered"
        );
    }
    let comments = state.lock().unwrap().comments.len();
    assert_eq!(comments, 0, "an echo of Jira's own change");
    d.stop().await;
}

#[tokio::test]
async fn a_wrong_api_token_is_a_dead_letter() {
    let (rx, state) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("TRIAGED_TEST_JIRA_WRONG", "not-the-token");
    let d = Daemon::start(
        dir.path(),
        &jira_sink(&rx.url(""), "").replace("TRIAGED_TEST_JIRA_TOKEN", "TRIAGED_TEST_JIRA_WRONG"),
    )
    .await;
    fire(&d.url(AM_PATH)).await;
    let v = settled(&d, 1).await;
    let del = &v["deliveries"][0];
    assert_eq!(
        (del["state"].as_str(), del["status"].as_u64()),
        (Some("dead"), Some(401)),
        "{v}"
    );
    assert!(
        del["response"]
            .as_str()
            .unwrap()
            .contains("not authenticated"),
        "{v}"
    );
    assert!(state.lock().unwrap().issues.is_empty());
    d.stop().await;
}

#[tokio::test]
async fn data_center_takes_a_personal_access_token_and_its_own_search() {
    let (rx, state) = fake().await;
    rx.script([Answer::status(503)]);
    std::env::set_var("TRIAGED_TEST_JIRA_PAT", "dc-personal-access-token");
    let dir = tempfile::tempdir().unwrap();
    let config = jira_sink(&rx.url(""), "")
        .replace("cloud = true\n", "cloud = false\n")
        .replace(&format!("username = \"{AUTH_USER}\"\n"), "")
        .replace("TRIAGED_TEST_JIRA_TOKEN", "TRIAGED_TEST_JIRA_PAT");
    let d = Daemon::start(dir.path(), &config).await;
    fire(&d.url(AM_PATH)).await;
    let v = settled(&d, 1).await;
    assert_eq!(v["deliveries"][0]["state"], "delivered", "{v}");
    let paths: Vec<String> = rx.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/rest/api/2/issue",
            "/rest/api/2/search",
            "/rest/api/2/issue"
        ],
        "after a failed create it looks first"
    );
    assert_eq!(state.lock().unwrap().issues.len(), 1);
    d.stop().await;
}
