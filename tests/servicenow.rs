//! The ServiceNow sink against a fake of the Table API (ServiceNow cannot run here):
//! the fake checks what ServiceNow documents (paths, basic auth, the incident
//! fields, the data policy that a resolution needs a close code and notes) and answers
//! as it does (`{"result": …}`, `{"error": {"message", "detail"}, "status":
//! "failure"}`).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::receiver::{holding_first, Answer, Received, Receiver};
use common::{am_alert, am_payload, settled, Daemon, AM_PATH};
use serde_json::{json, Value};

#[derive(Default)]
struct Instance {
    incidents: Vec<Value>,
}

fn failure(status: u16, message: &str, detail: &str) -> Answer {
    Answer::json(
        status,
        json!({"error": {"message": message, "detail": detail}, "status": "failure"}),
    )
}

fn table_api(state: &Arc<Mutex<Instance>>, r: &Received) -> Answer {
    let basic =
        base64::engine::general_purpose::STANDARD.encode("triaged.integration:snow-password");
    if r.header("authorization") != Some(&format!("Basic {basic}")) {
        return failure(
            401,
            "User Not Authenticated",
            "Required to provide Auth information",
        );
    }
    let mut s = state.lock().unwrap();
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/now/table/incident") => {
            let b = r.json();
            if b["short_description"].as_str().is_none_or(str::is_empty) {
                return failure(400, "Missing mandatory field", "short_description");
            }
            for f in ["impact", "urgency"] {
                if !["1", "2", "3"].contains(&b[f].as_str().unwrap_or("")) {
                    return failure(400, "Invalid value", f);
                }
            }
            let n = s.incidents.len() + 1;
            let mut inc = b.clone();
            inc["sys_id"] = json!(format!("{n:032x}"));
            inc["number"] = json!(format!("INC{:07}", 10000 + n));
            inc["state"] = json!("1");
            inc["work_notes_list"] = json!([]);
            s.incidents.push(inc.clone());
            Answer::json(201, json!({"result": inc}))
        }
        ("GET", "/api/now/table/incident") => {
            let q: std::collections::HashMap<String, String> =
                form_urlencoded::parse(r.query.as_bytes())
                    .into_owned()
                    .collect();
            let want = q["sysparm_query"]
                .trim_start_matches("correlation_id=")
                .to_string();
            let found: Vec<Value> = s
                .incidents
                .iter()
                .filter(|i| i["correlation_id"] == want.as_str())
                .map(|i| json!({"sys_id": i["sys_id"], "number": i["number"]}))
                .collect();
            Answer::json(200, json!({"result": found}))
        }
        ("PATCH", p) if p.starts_with("/api/now/table/incident/") => {
            let id = p.trim_start_matches("/api/now/table/incident/");
            let b = r.json();
            let Some(inc) = s.incidents.iter_mut().find(|i| i["sys_id"] == id) else {
                return failure(
                    404,
                    "No Record found",
                    "Record doesn't exist or ACL restricts the record retrieval",
                );
            };
            if b["state"] == "6" && (b["close_code"].is_null() || b["close_notes"].is_null()) {
                return failure(
                    403,
                    "Operation Failed",
                    "Data Policy Exception: \n\tThe following fields are mandatory: Resolution code, Resolution notes",
                );
            }
            for (k, v) in b.as_object().unwrap() {
                if k == "work_notes" {
                    inc["work_notes_list"]
                        .as_array_mut()
                        .unwrap()
                        .push(v.clone());
                } else {
                    inc[k] = v.clone();
                }
            }
            Answer::json(200, json!({"result": inc}))
        }
        _ => failure(
            400,
            "Requested URI does not represent any resource",
            &r.path,
        ),
    }
}

fn snow_sink(url: &str, password: &str) -> String {
    // One variable per password: tests run side by side in this process.
    let var = format!(
        "TRIAGED_TEST_SNOW_PASSWORD_{}",
        password.replace('-', "_").to_uppercase()
    );
    std::env::set_var(&var, password);
    format!(
        "[[sinks]]\nname = \"snow\"\ntype = \"servicenow\"\nurl = \"{url}\"\nusername = \"triaged.integration\"\n\
         password_env = \"{var}\"\ncaller = \"monitoring\"\nassignment_group = \"SRE\"\n\
         retry_initial_secs = 1\nretry_max_secs = 2\n[sinks.close_codes]\nfixed = \"Solved (Permanently)\"\n\
         [[routes]]\nsinks = [\"snow\"]\n"
    )
}

async fn fire(url: &str) {
    let labels = json!({"alertname": "DiskFull", "service": "db", "severity": "warning", "instance": "db-1"});
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
async fn an_incident_is_one_servicenow_incident_with_work_notes_and_its_resolution() {
    let state: Arc<Mutex<Instance>> = Arc::default();
    let st = state.clone();
    let rx = Receiver::start_on(0, move |r| table_api(&st, r)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &snow_sink(&rx.url(""), "snow-password")).await;
    fire(&d.url(AM_PATH)).await;
    assert_eq!(settled(&d, 1).await["deliveries"][0]["state"], "delivered");
    {
        let s = state.lock().unwrap();
        let i = &s.incidents[0];
        assert_eq!(i["correlation_id"], "INC-1");
        assert_eq!(i["correlation_display"], "triaged");
        assert_eq!(
            (i["impact"].as_str(), i["urgency"].as_str()),
            (Some("2"), Some("2")),
            "{i}"
        );
        assert_eq!(i["caller_id"], "monitoring");
        assert_eq!(i["assignment_group"], "SRE");
        assert_eq!(i["cmdb_ci"], "db-1");
    }
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(inc["external"][0]["id"], format!("{:032x}", 1));
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
        assert_eq!(
            settled(&d, seq).await["deliveries"][0]["state"],
            "delivered"
        );
    }
    let i = state.lock().unwrap().incidents[0].clone();
    assert_eq!(i["state"], "7", "{i}");
    assert_eq!(i["close_code"], "Solved (Permanently)");
    assert_eq!(i["close_notes"], "grew the volume");
    assert_eq!(i["work_notes_list"].as_array().unwrap().len(), 3, "{i}");
    d.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_a_dead_letter_and_a_crash_finds_the_ticket_by_correlation_id() {
    let state: Arc<Mutex<Instance>> = Arc::default();
    let st = state.clone();
    let rx = Receiver::start_on(0, move |r| table_api(&st, r)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &snow_sink(&rx.url(""), "wrong")).await;
    fire(&d.url(AM_PATH)).await;
    let v = settled(&d, 1).await;
    assert_eq!(v["deliveries"][0]["state"], "dead");
    assert_eq!(v["deliveries"][0]["status"], 401);
    assert!(v["deliveries"][0]["response"]
        .as_str()
        .unwrap()
        .contains("User Not Authenticated"));
    d.stop().await;

    let st = state.clone();
    let rx = Receiver::start_on(
        0,
        holding_first(|r| r.method == "POST", move |r| table_api(&st, r)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let child = common::crash_at_first_request(
        dir.path(),
        &snow_sink(&rx.url(""), "snow-password"),
        &rx,
        |url| async move { fire(&url).await },
    )
    .await;
    common::incident_when(&child, "INC-1", "the ticket found after the restart", |v| {
        v["external"][0]["id"] == format!("{:032x}", 1)
    })
    .await;
    assert_eq!(
        state.lock().unwrap().incidents.len(),
        1,
        "a second ticket after the restart"
    );
}

#[tokio::test]
async fn a_servicenow_resolution_and_comments_come_back_without_echo() {
    std::env::set_var("TRIAGED_TEST_SNOW_HOOK", "snow-outbound-secret-01");
    let state: Arc<Mutex<Instance>> = Arc::default();
    let st = state.clone();
    let rx = Receiver::start_on(0, move |r| table_api(&st, r)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &snow_sink(&rx.url(""), "snow-password").replace(
            "[sinks.close_codes]",
            "secret_env = \"TRIAGED_TEST_SNOW_HOOK\"\n[sinks.close_codes]",
        ),
    )
    .await;
    fire(&d.url(AM_PATH)).await;
    settled(&d, 1).await;
    let sys_id = format!("{:032x}", 1);
    let post = |body: Value, secret: &str| {
        let req = d
            .client
            .post(d.url(&format!("/api/v1/webhooks/servicenow?secret={secret}")))
            .json(&body)
            .send();
        async move { common::status_json(req.await.unwrap()).await }
    };
    let update = json!({"sys_id": sys_id, "number": "INC0010001", "correlation_id": "INC-1",
                        "state": "2", "comments": "vendor engaged", "sys_updated_by": "jane.doe"});
    assert_eq!(post(update.clone(), "wrong").await.0, 401);
    let (code, out) = post(update, "snow-outbound-secret-01").await;
    assert_eq!(code, 200, "{out}");
    let resolved = json!({"sys_id": sys_id, "number": "INC0010001", "correlation_id": "INC-1",
                          "state": "6", "close_code": "Solution provided",
                          "close_notes": "replaced the controller", "sys_updated_by": "jane.doe"});
    let (code, out) = post(resolved, "snow-outbound-secret-01").await;
    assert_eq!(
        (code, out["done"][0]["status"].as_str()),
        (200, Some("resolved")),
        "{out}"
    );
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(
        inc["resolution"]["note"],
        "INC0010001 resolved in ServiceNow (Solution provided): replaced the controller"
    );
    let tl = inc["timeline"].as_array().unwrap();
    assert!(
        tl.iter().any(|e| e["action"] == "comment"
            && e["actor"] == "servicenow:jane.doe"
            && e["detail"] == "INC0010001: vendor engaged"),
        "{inc}"
    );
    // Neither the comment nor the resolution goes back as a work note.
    for seq in 2..=3 {
        assert_eq!(
            settled(&d, seq).await["deliveries"][0]["state"],
            "delivered"
        );
    }
    let notes = state.lock().unwrap().incidents[0]["work_notes_list"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(notes, 0);
    d.stop().await;
}

#[tokio::test]
async fn servicenow_429_is_retried_and_a_400_is_a_dead_letter() {
    let state: Arc<Mutex<Instance>> = Arc::default();
    let st = state.clone();
    let rx = Receiver::start_on(0, move |r| table_api(&st, r)).await;
    rx.script(
        [failure(429, "Too Many Requests", "rate limit exceeded").header("Retry-After", "1")],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &snow_sink(&rx.url(""), "snow-password")).await;
    fire(&d.url(AM_PATH)).await;
    let v = settled(&d, 1).await;
    assert_eq!(v["deliveries"][0]["state"], "delivered", "{v}");
    assert_eq!(v["deliveries"][0]["attempts"], 2);
    let got = rx.requests();
    assert!(got[1].at.duration_since(got[0].at) >= Duration::from_millis(900));
    // A field the instance refuses: a dead letter with its message.
    rx.script([failure(
        400,
        "Invalid field",
        "work_notes is read only for this user",
    )]);
    let (code, _) = d
        .post_json("/api/v1/incidents/INC-1/comment", &json!({"text": "x"}))
        .await;
    assert_eq!(code, 200);
    let v = settled(&d, 2).await;
    let del = &v["deliveries"][0];
    assert_eq!(
        (del["state"].as_str(), del["status"].as_u64()),
        (Some("dead"), Some(400)),
        "{v}"
    );
    assert!(
        del["response"].as_str().unwrap().contains("read only"),
        "{v}"
    );
    d.stop().await;
}
