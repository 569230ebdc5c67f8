//! The command line as operators use it: --version, --help, check-config, and serve
//! refusing to start on bad config or rules with file, line and column.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn triaged(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("triaged runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_help() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = triaged(&["--version"], here);
    assert!(out.status.success());
    assert_eq!(
        text(&out).0.trim(),
        format!("triaged {}", env!("CARGO_PKG_VERSION"))
    );
    let out = triaged(&["--help"], here);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for word in ["serve", "check-config", "rules"] {
        assert!(stdout.contains(word), "{stdout}");
    }
    let out = triaged(&["serve", "--help"], here);
    let (stdout, _) = text(&out);
    for flag in ["--config", "--listen", "--data-dir"] {
        assert!(stdout.contains(flag), "{stdout}");
    }
}

#[test]
fn check_config_accepts_the_shipped_config() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = triaged(&["check-config", "--config", "config/triaged.toml"], here);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("ok (6 rule script(s) in rules)"),
        "{stdout}"
    );
}

#[test]
fn check_config_names_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:9797\"\n\n[incidents]\nreopen_window = 60\n",
    )
    .unwrap();
    let out = triaged(&["check-config", "--config", "bad.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("bad.toml:5:1: incidents.reopen_window: unknown field `reopen_window`"),
        "{stderr}"
    );

    std::fs::write(&file, "[server]\nlisten = \"0.0.0.0:9797\"\n").unwrap();
    let out = triaged(&["check-config", "--config", "bad.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out)
        .1
        .contains("bad.toml:2:1: server.listen: 0.0.0.0:9797 is not a loopback address"));

    // A sink's template that does not compile, and a route to a sink that does not exist.
    std::fs::write(
        &file,
        "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\
         [sinks.templates]\ntext = \"{{ incident.title \"\n",
    )
    .unwrap();
    let out = triaged(&["check-config", "--config", "bad.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("bad.toml:6:1: sinks[0].templates.text: template text, line 1"),
        "{stderr}"
    );
    std::fs::write(&file, "[[routes]]\nsinks = [\"pager\"]\n").unwrap();
    let out = triaged(&["check-config", "--config", "bad.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("routes[0].sinks[0]: no sink named \"pager\" (configured: none)"),
        "{}",
        text(&out).1
    );

    let out = triaged(&["check-config", "--config", "missing.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out)
        .1
        .contains("missing.toml: cannot read config file"));
}

#[test]
fn broken_rules_stop_check_config_and_serve_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("20-broken.rhai"),
        "fn on_alert(alert) {\n    let x = ;\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("triaged.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{}\"\n", common::free_port()),
    )
    .unwrap();
    for args in [
        &["check-config", "--config", "triaged.toml"][..],
        &["serve", "--config", "triaged.toml"][..],
    ] {
        let out = triaged(args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let (_, stderr) = text(&out);
        assert!(stderr.contains("20-broken.rhai:2:"), "{args:?}: {stderr}");
    }
    // Rules are checked before the store is opened: nothing was created.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn serve_flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("triaged.toml"),
        "[server]\nlisten = \"127.0.0.1:9797\"\n",
    )
    .unwrap();
    let out = triaged(
        &["serve", "--config", "triaged.toml", "--listen", "0.0.0.0:1"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("triaged.toml: --listen: 0.0.0.0:1 is not a loopback address"),
        "{:?}",
        text(&out)
    );
}

/// Runs `triaged serve` in a temp dir with the shipped rules and `log_section` as its
/// `[log]` section, waits for its port, sends SIGTERM, and returns its stderr (it must
/// exit 0) and the dir.
fn serve_until_sigterm(log_section: &str) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    std::fs::write(
        dir.path().join("triaged.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[rules]\ndir = {:?}\n[log]\n{log_section}\n",
            common::shipped_rules().display().to_string()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["serve", "--config", "triaged.toml"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "daemon did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (stderr, dir)
}

#[test]
fn json_logs_are_one_object_per_line_and_sigterm_exits_zero() {
    let (stderr, dir) = serve_until_sigterm("format = \"json\"");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(messages.contains(&"listening"), "{stderr}");
    assert!(messages.contains(&"stopped"), "{stderr}");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "{stderr}"
    );
    // The store was created relative to the working directory.
    assert!(dir.path().join("data").is_dir());
}

#[test]
fn text_logs_have_no_colour_codes_off_a_terminal() {
    let (stderr, _dir) = serve_until_sigterm("format = \"text\"");
    assert!(stderr.contains("listening"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in a log file: {stderr:?}"
    );
}

#[test]
fn rules_check_lists_the_files_or_names_file_line_and_column() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The shipped config's rules.dir.
    let out = triaged(&["rules", "check"], here);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("rules/10-heartbeats.rhai: ok (on_alert)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("6 rule file(s) in rules compiled"),
        "{stdout}"
    );

    // --dir, without any config file present.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("10-ok.rhai"), "fn on_alert(alert) { }\n").unwrap();
    std::fs::write(
        dir.path().join("20-broken.rhai"),
        "fn on_alert(alert) {\n    if alert.status == \"firing\" {\n        drop(\"x\"\n    }\n}\n",
    )
    .unwrap();
    let out = triaged(&["rules", "check", "--dir", "."], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stderr.starts_with("error: ./20-broken.rhai:4:"), "{stderr}");
}

#[test]
fn rules_eval_prints_the_decision_and_what_made_it() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.json");
    std::fs::write(
        &one,
        r#"{"labels": {"alertname": "HighLatency", "service": "api", "severity": "critical"},
            "annotations": {"summary": "p99 above 2 s"}, "startsAt": "2026-11-29T03:00:00Z"}"#,
    )
    .unwrap();
    let out = triaged(&["rules", "eval", one.to_str().unwrap()], here);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!(
            "alert HighLatency ({}, firing)\n  decision: incident, by rules/50-severity.rhai (on_alert)\n  \
             key: HighLatency/api\n  title: p99 above 2 s\n  service: api\n  ci: -\n  impact: high\n  \
             urgency: high\n  major: false",
            triaged::alerts::fingerprint(
                &[("alertname", "HighLatency"), ("service", "api"), ("severity", "critical")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            )
        )
    );

    // A whole Alertmanager payload: one block per alert; the heartbeat is dropped.
    let payload = dir.path().join("payload.json");
    let body = common::am_payload(vec![
        common::am_alert(
            "firing",
            serde_json::json!({"alertname": "Watchdog"}),
            "2026-11-29T03:00:00Z",
        ),
        common::am_alert(
            "firing",
            serde_json::json!({"alertname": "DiskFull", "job": "node"}),
            "2026-11-29T03:00:00Z",
        ),
    ]);
    std::fs::write(&payload, body.to_string()).unwrap();
    let out = triaged(&["rules", "eval", payload.to_str().unwrap()], here);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("  decision: drop, by rules/10-heartbeats.rhai (on_alert)\n  reason: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("alert DiskFull (") && stdout.contains("  key: DiskFull/node"),
        "{stdout}"
    );

    // A rule that throws is reported and the next rule or the default decides.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("10-throws.rhai"),
        "fn on_alert(alert) { throw \"no luck\"; }\n",
    )
    .unwrap();
    let out = triaged(
        &[
            "rules",
            "eval",
            one.to_str().unwrap(),
            "--dir",
            rules.to_str().unwrap(),
        ],
        here,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("10-throws.rhai (on_alert, runtime): "),
        "{stdout}"
    );
    assert!(
        stdout.contains("  decision: incident, by the built-in default"),
        "{stdout}"
    );

    // Bad input names the file and the field.
    std::fs::write(
        &one,
        r#"{"labels": {"service": "api"}, "startsAt": "2026-11-29T03:00:00Z"}"#,
    )
    .unwrap();
    let out = triaged(&["rules", "eval", one.to_str().unwrap()], here);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("one.json: labels.alertname: missing label alertname"),
        "{stderr}"
    );
}

#[test]
fn rules_test_runs_the_fixtures_and_fails_with_a_diff() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = triaged(&["rules", "test"], here);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok    severity.toml: warning is medium"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(
        dir.path().join("10-drop.rhai"),
        "fn on_alert(a) { drop(\"all quiet\") }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tests/t.toml"),
        "[[case]]\nname = \"pages\"\nalert = { labels = { alertname = \"A\" } }\n\
         expect = { decision = \"incident\" }\n",
    )
    .unwrap();
    let out = triaged(&["rules", "test", "--dir", "."], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  t.toml: pages\n      decision: expected \"incident\", got \"drop\""),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
    assert!(stderr.contains("error: 1 fixture(s) failed"), "{stderr}");
}
