//! The audit log as an auditor checks it: `GET /api/v1/audit/verify` on the running
//! daemon, `triaged audit verify` on the data directory, and both naming the entry an
//! edit or a deletion broke.

mod common;

use std::path::Path;
use std::process::Command;

use common::{am_alert, am_payload, Daemon, AM_PATH};
use serde_json::json;

fn verify_cli(config: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A data dir and a config file pointing at it (for the offline commands).
fn data_and_config(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    let config = dir.join("triaged.toml");
    std::fs::write(
        &config,
        common::config_toml(&data, &common::shipped_rules(), ""),
    )
    .unwrap();
    (data, config)
}

/// Opens the stopped daemon's sled database and edits its audit tree.
fn tamper(data: &Path, edit: impl FnOnce(&sled::Tree)) {
    let db = sled::Config::new().path(data.join("sled")).open().unwrap();
    let audit = db.open_tree("audit").unwrap();
    edit(&audit);
    db.flush().unwrap();
}

#[tokio::test]
async fn verify_passes_an_intact_log_and_names_an_edited_or_deleted_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, config) = data_and_config(tmp.path());
    let d = Daemon::start(&data, "").await;
    for name in ["Disk", "Cpu", "Mem"] {
        let alert = am_alert(
            "firing",
            json!({"alertname": name, "service": "db"}),
            "2026-11-29T10:00:00Z",
        );
        let (code, body) = d.post_json(AM_PATH, &am_payload(vec![alert])).await;
        assert_eq!(code, 200, "{body}");
    }
    let (code, v) = d.get("/api/v1/audit/verify").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(
        v["entries"], 6,
        "opened + alerts_attached for each of three: {v}"
    );
    assert_eq!(v["head"]["seq"], 6);
    assert!(v["first_bad"].is_null());
    let (code, t) = d.get("/api/v1/incidents/INC-2/timeline").await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["id"], "INC-2");
    let actions: Vec<&str> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["opened", "alerts_attached"]);
    assert_eq!(t["timeline"][1]["prev_hash"], t["timeline"][0]["hash"]);
    let (code, _) = d.get("/api/v1/incidents/INC-9/timeline").await;
    assert_eq!(code, 404);

    // While the daemon holds the store, the CLI says so.
    let (code, _, err) = verify_cli(&config);
    assert_eq!(code, 1);
    assert!(err.contains("is in use"), "{err}");
    d.stop().await;

    let (code, out, err) = verify_cli(&config);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("audit log intact: 6 entries, head "), "{out}");

    // An edit in place: entry 3 ("INC-2 opened") now says INC-3.
    tamper(&data, |audit| {
        let key = 3u64.to_be_bytes();
        let mut v = audit.get(key).unwrap().unwrap().to_vec();
        let at = v
            .windows(5)
            .position(|w| w == b"INC-2")
            .expect("the record id is stored as text");
        v[at + 4] = b'3';
        audit.insert(key, v).unwrap();
    });
    let (code, _, err) = verify_cli(&config);
    assert_eq!(code, 1);
    assert!(
        err.contains("audit log damaged at entry 3: its content does not match its hash")
            && err.contains("(2 entries before it are intact)"),
        "{err}"
    );

    // A deletion is named too (the edited entry removed altogether).
    tamper(&data, |audit| {
        audit.remove(3u64.to_be_bytes()).unwrap();
    });
    let (code, _, err) = verify_cli(&config);
    assert_eq!(code, 1);
    assert!(
        err.contains("damaged at entry 3: missing: the next entry found is 4"),
        "{err}"
    );

    // And over HTTP, on the restarted daemon.
    let d = Daemon::start(&data, "").await;
    let (_, v) = d.get("/api/v1/audit/verify").await;
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["first_bad"]["seq"], 3);
    assert_eq!(v["entries"], 2);
    d.stop().await;
}

#[tokio::test]
async fn export_writes_every_record_and_audit_entry_as_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, config) = data_and_config(tmp.path());
    let d = Daemon::start(&data, "").await;
    for (name, status) in [("Disk", "firing"), ("Cpu", "firing"), ("Disk", "resolved")] {
        let alert = am_alert(
            status,
            json!({"alertname": name, "service": "db"}),
            "2026-11-29T10:00:00Z",
        );
        let (code, body) = d.post_json(AM_PATH, &am_payload(vec![alert])).await;
        assert_eq!(code, 200, "{body}");
    }
    let ends = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    let silence = json!({"matchers": [{"name": "service", "op": "=", "value": "web"}],
                         "ends_at": ends, "comment": "deploy"});
    let (code, body) = d.post_json("/api/v1/silences", &silence).await;
    assert_eq!(code, 201, "{body}");
    let (_, verified) = d.get("/api/v1/audit/verify").await;
    let entries = verified["entries"].as_u64().unwrap();
    d.stop().await;

    let export = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_triaged"))
            .args(["export", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (stdout, stderr) = export(&[]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |kind: &str| lines.iter().filter(|l| l["record"] == kind).count() as u64;
    assert_eq!(count("incident"), 2, "{stdout}");
    assert_eq!(count("alert"), 2);
    assert_eq!(count("silence"), 1);
    // Two incidents opened, one resolved: three outbox events.
    assert_eq!(count("outbox"), 3);
    assert!(
        lines
            .iter()
            .filter(|l| l["record"] == "outbox")
            .all(|l| l["deliveries"] == serde_json::json!([])),
        "outbox events carry their deliveries (none without sinks): {stdout}"
    );
    assert_eq!(count("audit"), entries);
    assert_eq!(lines.len() as u64, 8 + entries, "nothing else: {stdout}");
    let disk = lines
        .iter()
        .find(|l| l["record"] == "incident" && l["key"] == "Disk/db")
        .unwrap();
    assert_eq!(disk["status"], "resolved");
    assert!(
        stderr.contains(&format!(
            "exported 2 incidents, 0 problems, 0 changes, 2 alerts, 1 silences, 3 outbox events, {entries} audit entries"
        )),
        "{stderr}"
    );

    // To a file, and bounded in time: nothing happened after the end of 2099.
    let file = tmp.path().join("archive.jsonl");
    export(&["--output", file.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout);
    let (later, _) = export(&["--from", "2099-12-31T00:00:00Z"]);
    assert_eq!(later, "");
    let (earlier, _) = export(&["--to", "2000-01-01T00:00:00Z"]);
    assert_eq!(earlier, "");
}
