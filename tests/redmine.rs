//! The Redmine sink against a real Redmine (Debian's package, started by the test):
//! tickets created, updated and resolved through triaged and read back through
//! Redmine's API; a note and a close made in Redmine come back (Redmine is polled);
//! a crash between "ticket created" and "key recorded" still leaves one ticket.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::redmine::{Redmine, KEY};
use common::{
    am_alert, am_payload, config_toml, settled, shipped_rules, wait_for, Child, Daemon, AM_PATH,
};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sink(url: &str) -> String {
    std::env::set_var("TRIAGED_TEST_REDMINE_KEY", KEY);
    format!(
        "[[sinks]]\nname = \"redmine\"\ntype = \"redmine\"\nurl = \"{url}\"\ntoken_env = \"TRIAGED_TEST_REDMINE_KEY\"\n\
         project = \"ops\"\ntracker_id = 1\npoll_interval_secs = 1\nretry_initial_secs = 1\nretry_max_secs = 2\n\
         timeout_secs = 30\n[[routes]]\nsinks = [\"redmine\"]\n"
    )
}

async fn fire(url: &str, alertname: &str, severity: &str) {
    let labels = json!({"alertname": alertname, "service": "db", "severity": severity});
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-30T00:00:00Z")]);
    let resp = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn issue(rm: &Redmine, id: &str) -> Value {
    let (code, v) = rm
        .api(
            Method::GET,
            &format!("/issues/{id}.json?include=journals"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    v["issue"].clone()
}

#[tokio::test]
async fn tickets_follow_incidents_and_redmine_changes_come_back() {
    let rm = Redmine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &sink(&rm.url)).await;
    fire(&d.url(AM_PATH), "DiskFull", "critical").await;
    assert_eq!(settled(&d, 1).await["deliveries"][0]["state"], "delivered");
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    let id = inc["external"][0]["id"].as_str().unwrap().to_string();
    let i = issue(&rm, &id).await;
    assert!(
        i["subject"]
            .as_str()
            .unwrap()
            .starts_with("[INC-1] [P1] INC-1 opened"),
        "{i}"
    );
    assert_eq!(i["priority"]["name"], "Immediate", "P1");
    assert_eq!(i["project"]["name"], "Ops");
    for (action, body) in [
        ("acknowledge", json!({})),
        (
            "resolve",
            json!({"code": "fixed", "note": "grew the volume"}),
        ),
    ] {
        let (code, out) = d
            .post_json(&format!("/api/v1/incidents/INC-1/{action}"), &body)
            .await;
        assert_eq!(code, 200, "{out}");
    }
    settled(&d, 2).await;
    settled(&d, 3).await;
    let i = issue(&rm, &id).await;
    assert_eq!(i["status"]["name"], "Resolved", "{i}");
    let notes: Vec<&str> = i["journals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["notes"].as_str().filter(|n| !n.is_empty()))
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[1].starts_with("Resolved (fixed: grew the volume)"),
        "{notes:?}"
    );

    // A second incident: a note, then a close, made in Redmine.
    fire(&d.url(AM_PATH), "Latency", "warning").await;
    let v = settled(&d, 4).await;
    assert_eq!(v["deliveries"][0]["state"], "delivered", "{v}");
    let (_, inc2) = d.get("/api/v1/incidents/INC-2").await;
    let id2 = inc2["external"][0]["id"].as_str().unwrap().to_string();
    let (code, _) = rm
        .api(
            Method::PUT,
            &format!("/issues/{id2}.json"),
            Some(json!({"issue": {"notes": "the vendor is on it"}})),
        )
        .await;
    assert_eq!(code, 204);
    let inc2 = wait_for(20, "the note mirrored", || async {
        let (_, inc) = d.get("/api/v1/incidents/INC-2").await;
        inc["timeline"]
            .as_array()?
            .iter()
            .any(|e| {
                e["action"] == "comment" && e["detail"] == format!("#{id2}: the vendor is on it")
            })
            .then_some(inc)
    })
    .await;
    let note = inc2["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "comment")
        .cloned()
        .unwrap();
    assert_eq!(note["actor"], "redmine:Redmine Admin");
    let (code, _) = rm
        .api(
            Method::PUT,
            &format!("/issues/{id2}.json"),
            Some(json!({"issue": {"status_id": 5}})),
        )
        .await;
    assert_eq!(code, 204);
    let inc2 = wait_for(20, "the incident resolved from Redmine", || async {
        let (_, inc) = d.get("/api/v1/incidents/INC-2").await;
        (inc["status"] == "resolved").then_some(inc)
    })
    .await;
    assert_eq!(
        inc2["resolution"]["note"],
        format!("#{id2} Closed in Redmine")
    );
    // Nothing echoed back, and the note is mirrored once however often it polls.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, inc2) = d.get("/api/v1/incidents/INC-2").await;
    let comments = inc2["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "comment")
        .count();
    assert_eq!(comments, 1, "{inc2}");
    let i2 = issue(&rm, &id2).await;
    let ours = i2["journals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            j["notes"]
                .as_str()
                .is_some_and(|n| n.contains("posted by triaged"))
        })
        .count();
    assert_eq!(ours, 0, "triaged echoed Redmine's own change: {i2}");
    d.stop().await;
}

/// A TCP proxy to `upstream` that holds the answer to the first `POST /issues.json`
/// until the client is gone.
async fn holding_proxy(upstream: String, hold: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (upstream, hold) = (upstream.clone(), hold.clone());
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let mut first = vec![0u8; 65536];
                let Ok(n) = client.read(&mut first).await else {
                    return;
                };
                let holding = first[..n].starts_with(b"POST /issues.json")
                    && hold.swap(false, Ordering::SeqCst);
                if server.write_all(&first[..n]).await.is_err() {
                    return;
                }
                if holding {
                    // Redmine creates the issue; its answer never reaches the daemon.
                    let mut sink = vec![0u8; 65536];
                    let _ = server.read(&mut sink).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_crash_between_ticket_created_and_key_recorded_leaves_one_ticket() {
    let rm = Redmine::start().await;
    let hold = Arc::new(AtomicBool::new(true));
    let port = holding_proxy(
        rm.url.trim_start_matches("http://").to_string(),
        hold.clone(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_toml(
        &dir.path().join("data"),
        &shipped_rules(),
        &sink(&format!("http://127.0.0.1:{port}")),
    );
    let child = Child::start_with_config(dir.path(), &config).await;
    fire(&child.url(AM_PATH), "DiskFull", "critical").await;
    wait_for(30, "the ticket in Redmine", || async {
        let (_, v) = rm
            .api(Method::GET, "/issues.json?project_id=ops&status_id=*", None)
            .await;
        (v["total_count"] == 1).then_some(())
    })
    .await;
    assert!(!hold.load(Ordering::SeqCst));
    child.signal("KILL");
    drop(child);
    let child = Child::start_with_config(dir.path(), &config).await;
    let client = reqwest::Client::new();
    let (_, list) = rm
        .api(Method::GET, "/issues.json?project_id=ops&status_id=*", None)
        .await;
    let only = list["issues"][0]["id"].as_u64().unwrap().to_string();
    wait_for(30, "the ticket found after the restart", || {
        let req = client.get(child.url("/api/v1/incidents/INC-1")).send();
        let only = only.clone();
        async move {
            let v: Value = req.await.ok()?.json().await.ok()?;
            (v["external"][0]["id"] == only.as_str()).then_some(())
        }
    })
    .await;
    let (_, list) = rm
        .api(Method::GET, "/issues.json?project_id=ops&status_id=*", None)
        .await;
    assert_eq!(
        list["total_count"], 1,
        "a second ticket after the restart: {list}"
    );
}
