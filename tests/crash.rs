//! Durability of the real binary: kill -9 under load loses nothing that was answered
//! 200, and SIGTERM drains and exits 0.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{json, Value};

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    status_json(client.get(url).send().await.unwrap()).await
}

async fn incident_ids(client: &reqwest::Client, d: &Child) -> Vec<u64> {
    let (_, list) = get(client, d.url("/api/v1/incidents?limit=1000")).await;
    list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap()[4..].parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_answered_alert_and_reuses_no_incident_number() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut answered: Vec<String> = Vec::new();
    for cycle in 0..3 {
        let mut d = Child::start(dir.path()).await;
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut load = Vec::new();
        for worker in 0..8 {
            let client = client.clone();
            let url = d.url(AM_PATH);
            let acked = acked.clone();
            load.push(tokio::spawn(async move {
                for n in 0.. {
                    let alerts: Vec<Value> = (0..5)
                        .map(|k| {
                            am_alert(
                                "firing",
                                json!({"alertname": format!("Crash{}", k), "job": "load",
                                       "instance": format!("c{cycle}-w{worker}-n{n}")}),
                                "2026-11-29T01:00:00Z",
                            )
                        })
                        .collect();
                    let fps: Vec<String> = alerts
                        .iter()
                        .map(|a| a["fingerprint"].as_str().unwrap().to_string())
                        .collect();
                    match client.post(&url).json(&am_payload(alerts)).send().await {
                        Ok(r) if r.status().as_u16() == 200 => acked.lock().unwrap().extend(fps),
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(_) => return, // the daemon is gone
                    }
                }
            }));
        }
        wait_for(60, "alerts to be answered", || {
            let n = acked.lock().unwrap().len();
            async move { (n >= 400).then_some(()) }
        })
        .await;
        d.process.kill().unwrap(); // SIGKILL, mid-load
        d.process.wait().unwrap();
        for t in load {
            t.await.unwrap();
        }
        answered.extend(acked.lock().unwrap().iter().cloned());
        drop(d);

        let d = Child::start(dir.path()).await;
        for fp in &answered {
            let (status, alert) = get(&client, d.url(&format!("/api/v1/alerts/{fp}"))).await;
            assert_eq!(
                status,
                200,
                "cycle {cycle}: answered alert {fp} lost after kill -9\n{}",
                d.log_text()
            );
            assert_eq!(alert["disposition"]["kind"], "attached");
        }
        // Numbers go on from the highest stored one; none is reused or skipped.
        let mut ids = incident_ids(&client, &d).await;
        ids.sort();
        let expected: Vec<u64> = (1..=ids.len() as u64).collect();
        assert_eq!(ids, expected, "incident numbers are dense and unique");
        let fresh = am_alert(
            "firing",
            json!({"alertname": format!("Fresh{cycle}"), "job": "x"}),
            "2026-11-29T01:00:00Z",
        );
        let resp = client
            .post(d.url(AM_PATH))
            .json(&am_payload(vec![fresh]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let mut after = incident_ids(&client, &d).await;
        after.sort();
        assert_eq!(after.last(), Some(&(ids.len() as u64 + 1)));
        drop(d);
    }
    assert!(answered.len() >= 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_and_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut d = Child::start(dir.path()).await;
    let alert = am_alert(
        "firing",
        json!({"alertname": "Term", "job": "x"}),
        "2026-11-29T01:00:00Z",
    );
    let resp = client
        .post(d.url(AM_PATH))
        .json(&am_payload(vec![alert]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let status = std::process::Command::new("kill")
        .args(["-TERM", &d.process.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_for(30, "triaged to exit", || {
        let done = d.process.try_wait().unwrap();
        async move { done }
    })
    .await;
    assert_eq!(exit.code(), Some(0), "{}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("graceful shutdown requested"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    drop(d);

    let d = Child::start(dir.path()).await;
    let (status, inc) = get(&client, d.url("/api/v1/incidents/INC-1")).await;
    assert_eq!((status, inc["key"].as_str()), (200, Some("Term/x")));
}
