//! Log watchers against the file, as the binary runs them: lines are appended while the
//! log is rotated by rename (the writer goes on writing to the renamed file for a
//! while, as a logger does until it reopens), by copytruncate and by truncation, and
//! the daemon is killed with SIGKILL in between; every matching line gives exactly one
//! alert: none lost, none twice.

mod common;

use std::io::Write;
use std::path::Path;

use common::*;
use serde_json::Value;

fn config(dir: &Path) -> String {
    let logs = dir.join("logs");
    config_toml(
        &dir.join("data"),
        &shipped_rules(),
        &format!(
            "[[log_watchers]]\nname = \"app\"\npaths = [{:?}]\nmatch = 'ERROR seq=(?P<seq>\\d+)'\n\
             resolve_match = 'RECOVERED seq=(?P<seq>\\d+)'\nalertname = \"LogError\"\n\
             labels = {{ service = \"app\", severity = \"warning\" }}\nstart = \"beginning\"\n",
            logs.join("app.log*").display().to_string()
        ),
    )
}

/// A logger's open file: lines go where the handle points, even after a rename.
struct Writer {
    file: std::fs::File,
    next: u64,
}

impl Writer {
    fn open(path: &Path, next: u64) -> Writer {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        Writer { file, next }
    }

    /// `n` matching lines, each followed by a line that matches nothing.
    fn errors(&mut self, n: u64) {
        let mut text = String::new();
        for _ in 0..n {
            self.next += 1;
            text.push_str(&format!(
                "2026-12-01 ERROR seq={} disk full\nINFO all good\n",
                self.next
            ));
        }
        self.file.write_all(text.as_bytes()).unwrap();
        self.file.flush().unwrap();
    }
}

/// seq → notifications of every LogError alert stored.
async fn seen(client: &reqwest::Client, d: &Child) -> std::collections::BTreeMap<u64, u64> {
    let (_, v) = status_json(
        client
            .get(d.url("/api/v1/alerts?status=any&limit=1000"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "LogError")
        .map(|a: &Value| {
            (
                a["labels"]["seq"].as_str().unwrap().parse().unwrap(),
                a["notifications"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn caught_up(client: &reqwest::Client, d: &Child, written: u64) {
    wait_for(30, "the watcher to read every line", || async {
        (seen(client, d).await.len() as u64 == written).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_gives_one_alert_through_rotations_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    let rotated = logs.join("app.log.1");
    let client = reqwest::Client::new();
    let cfg = config(dir.path());
    let mut w = Writer::open(&log, 0);
    w.errors(20); // before the first start: read from the beginning
    let rotations = [
        "rename",
        "copytruncate",
        "truncate",
        "rename",
        "copytruncate",
        "truncate",
    ];
    for (cycle, rotation) in rotations.iter().enumerate() {
        let mut d = Child::start_with_config(dir.path(), &cfg).await;
        w.errors(15);
        // Truncation loses what is not read yet, for any reader: let it catch up first.
        if *rotation != "rename" {
            caught_up(&client, &d, w.next).await;
        }
        match *rotation {
            "rename" => {
                std::fs::rename(&log, &rotated).unwrap();
                w.errors(5); // still into the renamed file
                w = Writer::open(&log, w.next);
            }
            "copytruncate" => {
                std::fs::copy(&log, &rotated).unwrap();
                w.file.set_len(0).unwrap();
            }
            _ => w.file.set_len(0).unwrap(),
        }
        w.errors(10 + cycle as u64);
        // Killed at some point while it reads; lines keep coming while it is down.
        tokio::time::sleep(std::time::Duration::from_millis(30 * cycle as u64)).await;
        d.process.kill().unwrap();
        d.process.wait().unwrap();
        w.errors(7);
    }
    let d = Child::start_with_config(dir.path(), &cfg).await;
    caught_up(&client, &d, w.next).await;
    let got = seen(&client, &d).await;
    let lost: Vec<u64> = (1..=w.next).filter(|s| !got.contains_key(s)).collect();
    let twice: Vec<(&u64, &u64)> = got.iter().filter(|(_, n)| **n != 1).collect();
    assert!(lost.is_empty(), "lines lost: {lost:?}\n{}", d.log_text());
    assert!(
        twice.is_empty(),
        "lines read more than once (seq, times): {twice:?}"
    );
    assert_eq!(got.len() as u64, w.next);

    // A resolving line resolves the alert with the same labels; metrics per watcher.
    w.file.write_all(b"RECOVERED seq=3\n").unwrap();
    wait_for(10, "seq 3 to resolve", || async {
        let (_, v) = status_json(
            client
                .get(d.url("/api/v1/alerts?status=resolved&limit=1000"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["seq"] == "3")
            .then_some(())
    })
    .await;
    let metrics = client
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("triaged_log_lines_read_total{watcher=\"app\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("triaged_log_bytes_behind{watcher=\"app\"} 0"),
        "{metrics}"
    );
}
