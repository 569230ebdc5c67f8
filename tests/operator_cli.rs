//! The operator CLI against a running daemon, as on-call engineers use it:
//! `triaged incidents|problems|silences …` with a token from the environment, tables
//! by default, `--output json`, and the daemon's refusals printed with exit status 1.

mod common;

use common::{am_alert, am_payload, Daemon, AM_PATH};
use serde_json::{json, Value};

const INGEST: &str = "ingest-token-0123456789";
const ONCALL: &str = "oncall-token-0123456789";

fn tokens() -> String {
    format!(
        "[[server.tokens]]\nname = \"am\"\nrole = \"ingest\"\ntoken = \"{INGEST}\"\n\
         [[server.tokens]]\nname = \"oncall\"\nrole = \"operator\"\ntoken = \"{ONCALL}\"\n"
    )
}

struct Cli {
    url: String,
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Cli {
    async fn run_with(&self, token: Option<&str>, args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_triaged"));
        cmd.args(args)
            .env("TRIAGED_URL", &self.url)
            .env_remove("TRIAGED_TOKEN");
        if let Some(t) = token {
            cmd.env("TRIAGED_TOKEN", t);
        }
        let out = cmd.output().await.expect("triaged runs");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_with(Some(ONCALL), args).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(r.ok, "{args:?} failed: {}", r.stderr);
        r.stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.ok(&all).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }
}

async fn fire(d: &Daemon, alertname: &str, service: &str) {
    let labels = json!({"alertname": alertname, "service": service, "severity": "warning"});
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-29T00:00:00Z")]);
    let resp = d
        .client
        .post(d.url(AM_PATH))
        .bearer_auth(INGEST)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn on_call_works_incidents_problems_and_silences_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &tokens()).await;
    let cli = Cli {
        url: format!("http://{}", d.addr),
    };
    fire(&d, "DiskFull", "db").await;
    fire(&d, "Latency", "web").await;

    // list: a table for people, filters, JSON for scripts.
    let out = cli.ok(&["incidents", "list"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID "), "{out}");
    assert!(
        lines[0].contains("PRIORITY") && lines[0].contains("TITLE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("INC-2 ") && lines[2].starts_with("INC-1 "),
        "{out}"
    );
    let v = cli.json(&["incidents", "list", "--service", "db"]).await;
    let ids: Vec<&str> = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["INC-1"]);
    let v = cli.json(&["incidents", "list", "--priority", "P1"]).await;
    assert_eq!(v["incidents"], json!([]));
    let r = cli.run(&["incidents", "list", "--priority", "P9"]).await;
    assert!(
        !r.ok && r.stderr.contains("400") && r.stderr.contains("priority"),
        "{}",
        r.stderr
    );

    // Acting: one line back; refusals print the daemon's reason and exit 1.
    assert_eq!(
        cli.ok(&["incidents", "ack", "INC-1", "--note", "on it"])
            .await,
        "INC-1: acknowledged\n"
    );
    let show = cli.ok(&["incidents", "show", "INC-1"]).await;
    assert!(
        show.contains("acknowledged") && show.contains("token:oncall"),
        "{show}"
    );
    assert!(show.contains("respond by"), "{show}");
    assert_eq!(
        cli.ok(&[
            "incidents",
            "resolve",
            "INC-1",
            "--code",
            "fixed",
            "--note",
            "cleaned up"
        ])
        .await,
        "INC-1: resolved\n"
    );
    let r = cli.run(&["incidents", "ack", "INC-1"]).await;
    assert!(!r.ok, "{}", r.stdout);
    assert!(
        r.stderr.contains("409") && r.stderr.contains("current status resolved"),
        "{}",
        r.stderr
    );
    cli.ok(&["incidents", "comment", "INC-1", "root cause in PRB"])
        .await;
    let v = cli.json(&["incidents", "show", "INC-1"]).await;
    assert_eq!(
        v["timeline"].as_array().unwrap().last().unwrap()["detail"],
        "root cause in PRB"
    );
    cli.ok(&[
        "incidents",
        "update",
        "INC-2",
        "--impact",
        "high",
        "--urgency",
        "high",
        "--assignee",
        "ana",
    ])
    .await;
    let v = cli.json(&["incidents", "show", "INC-2"]).await;
    assert_eq!(
        (v["priority"].as_str(), v["assignee"].as_str()),
        (Some("P1"), Some("ana"))
    );
    cli.ok(&["incidents", "hold", "INC-2", "--reason", "awaiting_vendor"])
        .await;
    let r = cli
        .run(&["incidents", "hold", "INC-2", "--reason", "awaiting_vendor"])
        .await;
    assert!(r.stderr.contains("current status on_hold"), "{}", r.stderr);

    // Without a token the daemon refuses; an unreachable one is named.
    let r = cli.run_with(None, &["incidents", "list"]).await;
    assert!(!r.ok && r.stderr.contains("401"), "{}", r.stderr);
    let nowhere = Cli {
        url: format!("http://127.0.0.1:{}", common::free_port()),
    };
    let r = nowhere.run(&["incidents", "list"]).await;
    assert!(
        !r.ok && r.stderr.contains("cannot reach triaged at"),
        "{}",
        r.stderr
    );

    // Problems.
    assert_eq!(
        cli.ok(&[
            "problems",
            "open",
            "--title",
            "Disk fills",
            "--incident",
            "INC-1"
        ])
        .await,
        "PRB-1: open\n"
    );
    assert_eq!(
        cli.ok(&[
            "problems",
            "known-error",
            "PRB-1",
            "--root-cause",
            "logs",
            "--workaround",
            "rotate"
        ])
        .await,
        "PRB-1: known_error\n"
    );
    let out = cli.ok(&["problems", "list"]).await;
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("PRB-1  known_error  1"),
        "{out}"
    );
    let out = cli.ok(&["problems", "show", "PRB-1"]).await;
    assert!(out.contains("rotate") && out.contains("INC-1"), "{out}");

    // Silences.
    let out = cli
        .ok(&[
            "silences",
            "add",
            "service=db",
            "alertname=~Disk.*",
            "--comment",
            "patching",
            "--duration",
            "1h",
        ])
        .await;
    assert!(out.starts_with("SIL-1: active until "), "{out}");
    assert!(
        out.contains("service=\"db\" alertname=~\"Disk.*\""),
        "{out}"
    );
    let out = cli.ok(&["silences", "list"]).await;
    assert!(
        out.lines().nth(1).unwrap().starts_with("SIL-1  active"),
        "{out}"
    );
    assert!(out.contains("token:oncall"), "{out}");
    let r = cli
        .run(&[
            "silences",
            "add",
            "service",
            "--comment",
            "x",
            "--duration",
            "1h",
        ])
        .await;
    assert!(
        !r.ok && r.stderr.contains("matcher \"service\""),
        "{}",
        r.stderr
    );
    let r = cli
        .run(&["silences", "add", "service=db", "--comment", "x"])
        .await;
    assert!(
        !r.ok && r.stderr.contains("--duration or --until"),
        "{}",
        r.stderr
    );
    assert!(cli
        .ok(&["silences", "expire", "SIL-1"])
        .await
        .starts_with("SIL-1: expired"));
    let v = cli.json(&["silences", "list", "--state", "expired"]).await;
    assert_eq!(v["silences"][0]["id"], "SIL-1");
}

/// Every incident and problem action the CLI offers, each landing in the daemon.
#[tokio::test]
async fn every_action_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        tmp.path(),
        &format!("{}[incidents]\nreopen_window_secs = 3600\n", tokens()),
    )
    .await;
    let cli = Cli {
        url: format!("http://{}", d.addr),
    };
    fire(&d, "A", "db").await;
    fire(&d, "B", "db").await;
    let steps: &[(&[&str], &str)] = &[
        (&["incidents", "start", "INC-1"], "INC-1: in_progress\n"),
        (
            &[
                "incidents",
                "hold",
                "INC-1",
                "--reason",
                "awaiting_customer",
                "--note",
                "asked",
            ],
            "INC-1: on_hold\n",
        ),
        (
            &["incidents", "start", "INC-1", "--note", "answer came"],
            "INC-1: in_progress\n",
        ),
        (
            &[
                "incidents",
                "resolve",
                "INC-1",
                "--code",
                "workaround",
                "--note",
                "failover",
            ],
            "INC-1: resolved\n",
        ),
        (
            &["incidents", "reopen", "INC-1", "--note", "back again"],
            "INC-1: in_progress\n",
        ),
        (
            &[
                "incidents",
                "update",
                "INC-1",
                "--major",
                "true",
                "--owner",
                "mim",
            ],
            "INC-1: in_progress\n",
        ),
        (
            &[
                "incidents",
                "resolve",
                "INC-1",
                "--code",
                "fixed",
                "--note",
                "patched",
            ],
            "INC-1: resolved\n",
        ),
        (
            &["incidents", "close", "INC-1", "--review", "PIR-1 done"],
            "INC-1: closed\n",
        ),
        (
            &[
                "incidents",
                "cancel",
                "INC-2",
                "--reason",
                "duplicate",
                "--note",
                "of INC-1",
            ],
            "INC-2: cancelled\n",
        ),
        (
            &["problems", "open", "--title", "T", "--key", "A/db"],
            "PRB-1: open\n",
        ),
        (&["problems", "link", "PRB-1", "INC-2"], "PRB-1: open\n"),
        (
            &["problems", "comment", "PRB-1", "looking"],
            "PRB-1: open\n",
        ),
        (
            &[
                "problems",
                "resolve",
                "PRB-1",
                "--root-cause",
                "bad config",
                "--note",
                "reverted",
            ],
            "PRB-1: resolved\n",
        ),
        (&["problems", "reopen", "PRB-1"], "PRB-1: open\n"),
        (&["problems", "resolve", "PRB-1"], "PRB-1: resolved\n"),
        (
            &["problems", "close", "PRB-1", "--note", "verified"],
            "PRB-1: closed\n",
        ),
    ];
    for (args, want) in steps {
        assert_eq!(&cli.ok(args).await, want, "{args:?}");
    }
    let inc = cli.json(&["incidents", "show", "INC-1"]).await;
    assert_eq!(
        (inc["owner"].as_str(), inc["review"].as_str()),
        (Some("mim"), Some("PIR-1 done"))
    );
    assert!(inc["sla"]["paused_secs"].as_u64().is_some());
    let inc = cli.json(&["incidents", "show", "INC-2"]).await;
    assert_eq!(
        (inc["resolution"]["code"].as_str(), inc["problem"].as_str()),
        (Some("duplicate"), Some("PRB-1"))
    );
    let prb = cli.json(&["problems", "show", "PRB-1"]).await;
    assert_eq!(prb["root_cause"], "bad config");
    let r = cli.run(&["incidents", "close", "INC-2"]).await;
    assert!(
        !r.ok && r.stderr.contains("current status cancelled"),
        "{}",
        r.stderr
    );
}
