//! Reports over a seeded history with figures worked out by hand: the history is
//! written through the store as the daemon writes it (incidents driven through the
//! real core at chosen times), then the daemon serves the reports over HTTP and the
//! CLI prints them as tables and CSV.

mod common;

use common::Daemon;
use jiff::Timestamp;
use serde_json::{json, Value};
use triaged::changes::{ChangeId, ChangeRequest, ChangeStatus};
use triaged::config::StoreSettings;
use triaged::incidents::{
    Action, Incident, IncidentId, IncidentSpec, Level, Policy, ResolutionCode,
};
use triaged::problems::{Problem, ProblemAction, ProblemId, ProblemSpec};
use triaged::store::Batch;

/// 2026-11-02T00:00:00Z plus `secs`.
fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_793_577_600 + secs).unwrap()
}

const DAY: i64 = 86_400;

fn incident(id: u64, key: &str, service: &str, level: Level, opened: i64) -> Incident {
    let spec = IncidentSpec {
        key: format!("{key}/{service}"),
        title: format!("{key} on {service}"),
        service: Some(service.into()),
        ci: None,
        impact: level,
        urgency: level,
        major: false,
        sinks: Vec::new(),
    };
    Incident::open(
        IncidentId(id),
        &spec,
        "seed",
        t(opened),
        t(opened),
        &Policy::default(),
    )
    .0
}

fn act(inc: &mut Incident, a: Action, at: i64) {
    inc.act(&a, t(at), &Policy::default()).unwrap();
}

fn ack() -> Action {
    Action::Acknowledge { note: None }
}

fn resolve() -> Action {
    Action::Resolve {
        code: ResolutionCode::Fixed,
        note: "fixed".into(),
    }
}

/// The shipped SLA targets: P1 respond 15 min, resolve 4 h; P3 2 h and 24 h.
fn seed(dir: &std::path::Path) {
    let store = triaged::store::open(&StoreSettings {
        data_dir: dir.to_path_buf(),
        cache_capacity_bytes: 4 << 20,
        checkpoint_interval_secs: 3600,
        checkpoint_max_records: 100_000,
        backup_dir: std::path::PathBuf::from("backups"),
        ballast_bytes: 0,
    })
    .unwrap();
    // INC-1 P1 db: ack after 10 min, resolved after 3 h: both met.
    let mut i1 = incident(1, "Down", "db", Level::High, 0);
    act(&mut i1, ack(), 600);
    act(&mut i1, resolve(), 3 * 3600);
    // INC-2 P1 db, a day later: ack after 20 min (late), resolved after 5 h (late).
    let mut i2 = incident(2, "Down", "db", Level::High, DAY);
    act(&mut i2, ack(), DAY + 1200);
    act(&mut i2, resolve(), DAY + 5 * 3600);
    i2.changes = vec![ChangeId(1)];
    // INC-3 P3 web: ack after 1 h, resolved after 10 h: met; major.
    let mut i3 = incident(3, "Slow", "web", Level::Medium, 2 * DAY);
    act(&mut i3, ack(), 2 * DAY + 3600);
    act(&mut i3, resolve(), 2 * DAY + 10 * 3600);
    i3.major = true;
    // INC-4 P3 web: cancelled as a false positive.
    let mut i4 = incident(4, "Slow", "web", Level::Medium, 2 * DAY + 60);
    act(
        &mut i4,
        Action::Cancel {
            reason: ResolutionCode::FalsePositive,
            note: None,
        },
        2 * DAY + 120,
    );
    // INC-5 P1 web, outside the reported range (10 days later).
    let i5 = incident(5, "Down", "web", Level::High, 10 * DAY);

    let spec = ProblemSpec {
        key: "Down/db".into(),
        title: "db keeps going down".into(),
        link_recent_secs: 0,
    };
    let (mut p1, _) = Problem::open(ProblemId(1), &spec, "seed", t(DAY + 60));
    p1.link(IncidentId(1), t(DAY + 60));
    p1.link(IncidentId(2), t(DAY + 60));
    p1.act(
        &ProblemAction::KnownError {
            root_cause: Some("connection pool".into()),
            workaround: Some("restart the pool".into()),
        },
        t(DAY + 120),
    )
    .unwrap();
    let req = ChangeRequest {
        service: "db".into(),
        summary: "upgrade to 16.2".into(),
        window_start: t(DAY - 600),
        window_end: t(DAY - 60),
        status: ChangeStatus::Completed,
        external_id: Some("deploy-1".into()),
    };
    let (c1, _) = req.record(ChangeId(1), "token:ci", t(DAY - 600));

    store
        .commit(Batch {
            incidents: vec![i1, i2, i3, i4, i5],
            incident_counter: Some((1, 6)),
            keys: vec![
                ("Down/db".into(), IncidentId(2)),
                ("Slow/web".into(), IncidentId(4)),
                ("Down/web".into(), IncidentId(5)),
            ],
            problems: vec![p1],
            problem_counter: Some((1, 2)),
            problem_keys: vec![("Down/db".into(), ProblemId(1))],
            changes: vec![c1],
            change_counter: Some((1, 2)),
            ..Batch::default()
        })
        .unwrap();
    store.flush().unwrap();
}

const RANGE: &str = "from=2026-11-02T00:00:00Z&to=2026-11-09T00:00:00Z";

#[tokio::test]
async fn reports_over_a_seeded_history_give_the_figures_worked_out_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    seed(&data);
    let d = Daemon::start(&data, "").await;

    let (code, sla) = d.get(&format!("/api/v1/reports/sla?{RANGE}")).await;
    assert_eq!(code, 200, "{sla}");
    let p1 = &sla["priorities"]["P1"];
    assert_eq!(p1["incidents"], 2, "{sla}");
    assert_eq!(
        (
            p1["respond"]["met"].as_u64(),
            p1["respond"]["breached"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        (
            p1["resolve"]["met"].as_u64(),
            p1["resolve"]["breached"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(p1["respond"]["met_ratio"], 0.5);
    // MTTA (600 + 1200) / 2; MTTR (3 h + 5 h) / 2.
    assert_eq!(p1["mtta"]["mean_secs"], 900.0);
    assert_eq!(p1["mttr"]["mean_secs"], 4.0 * 3600.0);
    let p3 = &sla["priorities"]["P3"];
    assert_eq!(
        (p3["incidents"].as_u64(), p3["resolve"]["met"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(sla["cancelled"], 1);
    assert_eq!(sla["total"]["incidents"], 3);
    let (_, db) = d
        .get(&format!("/api/v1/reports/sla?{RANGE}&service=db"))
        .await;
    assert_eq!(db["total"]["incidents"], 2);
    assert_eq!(db["cancelled"], 0);

    let (code, inc) = d.get(&format!("/api/v1/reports/incidents?{RANGE}")).await;
    assert_eq!(code, 200, "{inc}");
    assert_eq!(inc["total"], 4);
    assert_eq!(inc["by_service"], json!({"db": 2, "web": 2}));
    assert_eq!(
        inc["by_day"],
        json!({"2026-11-02": 1, "2026-11-03": 1, "2026-11-04": 2})
    );
    assert_eq!(inc["by_status"], json!({"resolved": 3, "cancelled": 1}));
    assert_eq!(inc["major"], 1);

    let (_, prb) = d.get(&format!("/api/v1/reports/problems?{RANGE}")).await;
    assert_eq!(
        prb["backlog"],
        json!({"open": 0, "known_error": 1}),
        "{prb}"
    );
    assert_eq!(prb["known_errors"][0]["workaround"], "restart the pool");
    assert_eq!(
        prb["recurring_keys"],
        json!([["Down/db", 2], ["Slow/web", 2]])
    );

    let (_, chg) = d.get(&format!("/api/v1/reports/changes?{RANGE}")).await;
    assert_eq!(chg["changes"][0]["id"], "CHG-1", "{chg}");
    assert_eq!(chg["changes"][0]["incidents"], json!(["INC-2"]));
    assert_eq!(
        (
            chg["causing_incidents"].as_u64(),
            chg["change_caused_incidents"].as_u64()
        ),
        (Some(1), Some(1))
    );

    // Bad queries name the parameter.
    for (q, field) in [
        ("/api/v1/reports/sla?from=yesterday", "from"),
        (
            "/api/v1/reports/sla?from=2026-11-09T00:00:00Z&to=2026-11-02T00:00:00Z",
            "from",
        ),
        ("/api/v1/reports/sla?colour=red", "colour"),
    ] {
        let (code, err) = d.get(q).await;
        assert_eq!(
            (code, err["field"].as_str()),
            (400, Some(field)),
            "{q}: {err}"
        );
    }
    let (code, err) = d.get("/api/v1/reports/uptime").await;
    assert_eq!((code, err["field"].as_str()), (404, Some("report")));

    // The CLI prints the same figures as a table, CSV or JSON.
    let cli = |args: Vec<&'static str>| {
        let url = format!("http://{}", d.addr);
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
                .args(&args)
                .env("TRIAGED_URL", url)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let range = [
        "--from",
        "2026-11-02T00:00:00Z",
        "--to",
        "2026-11-09T00:00:00Z",
    ];
    let args = |kind: &'static str, output: &'static str| {
        let mut a = vec!["report", kind];
        a.extend(range);
        a.extend(["--output", output]);
        a
    };
    let csv = cli(args("sla", "csv")).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "PRIORITY,INCIDENTS,RESPOND MET,RESPOND BREACHED,RESPOND MET %,RESOLVE MET,RESOLVE BREACHED,RESOLVE RUNNING,RESOLVE MET %,MTTA S,MTTR S"
    );
    assert_eq!(lines[1], "P1,2,1,1,50.0%,1,1,0,50.0%,900,14400");
    assert_eq!(
        lines.last().unwrap(),
        &"total,3,2,1,66.7%,2,1,0,66.7%,1800,21600"
    );
    let table = cli(args("changes", "table")).await;
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("CHG-1   db       completed  1          INC-2"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&cli(args("problems", "json")).await).unwrap();
    assert_eq!(json["known_errors"][0]["id"], "PRB-1");
    let csv = cli(args("incidents", "csv")).await;
    assert!(csv.contains("\r\nservice,db,2\r\n"), "{csv}");
}
