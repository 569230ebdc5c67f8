//! Data-driven rule tests: a script, an alert, the verdict expected.

use super::*;
use crate::alerts::{AlertStatus, Source};
use crate::config::RuleLimits;

fn alert(labels: &[(&str, &str)]) -> Alert {
    Alert {
        source: Source::Alertmanager,
        fingerprint: "f1".into(),
        status: AlertStatus::Firing,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [("summary".to_string(), "Disk is full".to_string())].into(),
        starts_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        ends_at: None,
        generator_url: None,
        received_at: "2026-01-01T00:00:01Z".parse().unwrap(),
    }
}

fn rules(scripts: &[(&str, &str)], limits: RuleLimits) -> Result<Rules, LoadError> {
    rules_in(
        scripts,
        &RuleEnv {
            limits,
            ..RuleEnv::default()
        },
    )
}

fn rules_in(scripts: &[(&str, &str)], env: &RuleEnv) -> Result<Rules, LoadError> {
    let sources = scripts
        .iter()
        .map(|(name, src)| (PathBuf::from(name), src.to_string()))
        .collect();
    Rules::compile(sources, env)
}

/// Runs `scripts` on an alert with `labels`; returns (rule, outcome, failure kinds).
fn check(
    scripts: &[(&str, &str)],
    labels: &[(&str, &str)],
) -> (String, Outcome, Vec<&'static str>) {
    let rules = rules(scripts, RuleLimits::default()).expect("scripts compile");
    let (verdict, failures) = rules.decide(&alert(labels));
    (
        verdict.rule,
        verdict.outcome,
        failures.iter().map(|f| f.kind).collect(),
    )
}

fn spec(key: &str, title: &str, service: Option<&str>) -> Outcome {
    Outcome::Incident(IncidentSpec {
        key: key.into(),
        title: title.into(),
        service: service.map(Into::into),
        ci: None,
        impact: Level::Medium,
        urgency: Level::Medium,
        major: false,
        sinks: Vec::new(),
    })
}

#[test]
fn no_rules_gives_default_by_alertname_and_service_then_job() {
    let (rule, outcome, _) = check(
        &[],
        &[
            ("alertname", "DiskFull"),
            ("service", "db"),
            ("job", "node"),
        ],
    );
    assert_eq!(rule, "default");
    assert_eq!(outcome, spec("DiskFull/db", "Disk is full", Some("db")));
    let (_, outcome, _) = check(&[], &[("alertname", "DiskFull"), ("job", "node")]);
    assert_eq!(outcome, spec("DiskFull/node", "Disk is full", Some("node")));
    let (_, outcome, _) = check(&[], &[("alertname", "DiskFull")]);
    assert_eq!(outcome, spec("DiskFull/", "Disk is full", None));
}

#[test]
fn first_decision_wins_and_nothing_goes_on() {
    let scripts = [
        ("10-pass.rhai", "fn on_alert(a) { }"),
        (
            "20-drop.rhai",
            r#"fn on_alert(a) { if a.labels.severity == "info" { drop("informational") } }"#,
        ),
        (
            "30-group.rhai",
            r#"fn on_alert(a) { incident(#{ key: "team-" + a.labels.team, title: "Team alert" }) }"#,
        ),
    ];
    let (rule, outcome, failures) = check(
        &scripts,
        &[("alertname", "X"), ("severity", "info"), ("team", "a")],
    );
    assert_eq!(
        (rule.as_str(), outcome, failures),
        (
            "20-drop.rhai",
            Outcome::Drop("informational".into()),
            vec![]
        )
    );

    let (rule, outcome, _) = check(
        &scripts,
        &[("alertname", "X"), ("severity", "page"), ("team", "a")],
    );
    assert_eq!(rule, "30-group.rhai");
    assert_eq!(outcome, spec("team-a", "Team alert", None));
}

#[test]
fn incident_fields_are_read() {
    let script = r#"fn on_alert(a) {
        incident(#{ key: "k", title: "T", service: "pay", ci: "db1", impact: "high", urgency: "high", major: true })
    }"#;
    let (_, outcome, _) = check(&[("r.rhai", script)], &[("alertname", "X")]);
    assert_eq!(
        outcome,
        Outcome::Incident(IncidentSpec {
            key: "k".into(),
            title: "T".into(),
            service: Some("pay".into()),
            ci: Some("db1".into()),
            impact: Level::High,
            urgency: Level::High,
            major: true,
            sinks: Vec::new(),
        })
    );
}

#[test]
fn failing_rules_fall_through_to_the_default() {
    let cases = [
        ("fn on_alert(a) { throw \"boom\" }", "runtime"),
        ("fn on_alert(a) { a.labels.missing.len() }", "runtime"),
        ("fn on_alert(a) { loop { } }", "limit"),
        ("fn on_alert(a) { on_alert(a) }", "limit"),
        (
            "fn on_alert(a) { let s = \"x\"; loop { s += s; } }",
            "limit",
        ),
        ("fn on_alert(a) { 42 }", "malformed"),
        (
            "fn on_alert(a) { incident(#{ title: \"no key\" }) }",
            "malformed",
        ),
        (
            "fn on_alert(a) { incident(#{ key: \"k\", impact: \"huge\" }) }",
            "malformed",
        ),
        (
            "fn on_alert(a) { incident(#{ key: \"k\", colour: \"red\" }) }",
            "malformed",
        ),
        (
            "fn on_alert(a) { incident(#{ key: \"k\", major: \"yes\" }) }",
            "malformed",
        ),
    ];
    for (script, kind) in cases {
        let (rule, outcome, failures) =
            check(&[("bad.rhai", script)], &[("alertname", "X"), ("job", "j")]);
        assert_eq!(rule, "default", "{script}");
        assert_eq!(outcome, spec("X/j", "Disk is full", Some("j")), "{script}");
        assert_eq!(failures, vec![kind], "{script}");
    }
}

#[test]
fn sandbox_has_no_eval_or_import() {
    for script in [
        "fn on_alert(a) { eval(\"1\") }",
        "import \"x\" as y; fn on_alert(a) { }",
    ] {
        let err = rules(&[("s.rhai", script)], RuleLimits::default()).unwrap_err();
        assert!(matches!(err, LoadError::Compile { .. }), "{script}: {err}");
    }
}

#[test]
fn compile_errors_name_file_line_and_column() {
    let err = rules(
        &[
            ("ok.rhai", "fn on_alert(a) { }"),
            ("broken.rhai", "fn on_alert(a) {\n  let x = ;\n}"),
        ],
        RuleLimits::default(),
    )
    .unwrap_err();
    match &err {
        LoadError::Compile { file, line, .. } => {
            assert_eq!(file, &PathBuf::from("broken.rhai"));
            assert_eq!(*line, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().starts_with("broken.rhai:2:"), "{err}");

    let err = rules(
        &[("two.rhai", "fn on_alert(a, b) { }")],
        RuleLimits::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("exactly one parameter"), "{err}");
}

#[test]
fn shipped_rules_compile_and_decide() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = Rules::load(&dir, &RuleEnv::default()).unwrap();
    assert!(!rules.script_names().is_empty());
    let (verdict, failures) = rules.decide(&alert(&[("alertname", "Watchdog")]));
    assert!(failures.is_empty());
    assert!(matches!(verdict.outcome, Outcome::Drop(_)), "{verdict:?}");
    let (verdict, failures) = rules.decide(&alert(&[
        ("alertname", "DiskFull"),
        ("job", "node"),
        ("severity", "critical"),
    ]));
    assert!(failures.is_empty(), "{failures:?}");
    match verdict.outcome {
        Outcome::Incident(spec) => {
            assert_eq!(spec.key, "DiskFull/node");
            assert_eq!((spec.impact, spec.urgency), (Level::High, Level::High));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn labels_set_by_an_earlier_script_are_seen_by_later_ones() {
    let scripts = [
        (
            "10-enrich.rhai",
            r#"fn on_alert(a) { if a.labels.job == "pg" { a.labels.team = "db"; } }"#,
        ),
        (
            "20-team.rhai",
            r#"fn on_alert(a) { if "team" in a.labels { incident(#{ key: "team-" + a.labels.team }) } }"#,
        ),
    ];
    let (rule, outcome, failures) = check(&scripts, &[("alertname", "X"), ("job", "pg")]);
    assert_eq!((rule.as_str(), failures), ("20-team.rhai", vec![]));
    match outcome {
        Outcome::Incident(spec) => assert_eq!(spec.key, "team-db"),
        other => panic!("unexpected {other:?}"),
    }
    let (rule, _, _) = check(&scripts, &[("alertname", "X"), ("job", "web")]);
    assert_eq!(rule, "default");
}

#[test]
fn a_call_past_its_wall_clock_deadline_is_stopped() {
    let limits = RuleLimits {
        max_operations: u64::MAX,
        max_call: std::time::Duration::from_millis(20),
        ..RuleLimits::default()
    };
    let rules = rules(
        &[(
            "10-spin.rhai",
            "fn on_alert(a) { let n = 0; loop { n += 1; } }",
        )],
        limits,
    )
    .expect("compiles");
    let (verdict, failures) = rules.decide(&alert(&[("alertname", "A")]));
    assert_eq!(verdict.rule, DEFAULT_RULE);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].kind, "limit");
    assert!(
        failures[0].message.contains("deadline of 20 ms exceeded"),
        "{}",
        failures[0].message
    );
    // The next call gets its own deadline.
    let (_, failures) = rules.decide(&alert(&[("alertname", "B")]));
    assert_eq!(failures.len(), 1);
}

fn catalogue() -> RuleEnv {
    let mut env = RuleEnv::default();
    env.services.insert(
        "checkout".into(),
        crate::config::Service {
            owner: Some("team-shop".into()),
            tier: Some("1".into()),
            impact: Some(Level::High),
        },
    );
    env
}

/// Runs one script in `env` and returns the incident key it decided (rules put what
/// they computed into the key) or the failure kinds.
fn key_from(script: &str, labels: &[(&str, &str)]) -> Result<String, Vec<&'static str>> {
    let rules = rules_in(&[("10-t.rhai", script)], &catalogue()).expect("compiles");
    let (verdict, failures) = rules.decide(&alert(labels));
    match verdict.outcome {
        Outcome::Incident(spec) if verdict.rule == "10-t.rhai" => Ok(spec.key),
        _ => Err(failures.iter().map(|f| f.kind).collect()),
    }
}

#[test]
fn host_functions_answer_from_the_alert_and_the_catalogue() {
    let cases: &[(&str, Result<&str, Vec<&str>>)] = &[
        // now() is the alert's receive time (2026-01-01T00:00:01Z).
        (r#"incident(#{ key: `${now()}` })"#, Ok("1767225601")),
        (
            r#"incident(#{ key: `${now() - parse_time("2026-01-01T00:00:00Z")}` })"#,
            Ok("1"),
        ),
        (
            r#"incident(#{ key: `${parse_time("yesterday")}` })"#,
            Err(vec!["runtime"]),
        ),
        (
            r#"incident(#{ key: `${regex_match("^disk-(full|slow)$", a.labels.alertname)}` })"#,
            Ok("true"),
        ),
        (
            r#"incident(#{ key: `${regex_match("^cpu", a.labels.alertname)}` })"#,
            Ok("false"),
        ),
        (
            r#"incident(#{ key: `${regex_match("(", "x")}` })"#,
            Err(vec!["runtime"]),
        ),
        (
            r#"incident(#{ key: label(a, "team", "nobody") })"#,
            Ok("nobody"),
        ),
        (
            r#"incident(#{ key: label(a, "service", "nobody") })"#,
            Ok("checkout"),
        ),
        (
            r#"let s = service(a.labels.service); incident(#{ key: s.owner + "/" + s.tier + "/" + s.impact })"#,
            Ok("team-shop/1/high"),
        ),
        (
            r#"incident(#{ key: `${service("nope") == ()}` })"#,
            Ok("true"),
        ),
    ];
    for (body, want) in cases {
        let script = format!("fn on_alert(a) {{ {body} }}");
        let got = key_from(
            &script,
            &[("alertname", "disk-full"), ("service", "checkout")],
        );
        let want = want.clone().map(str::to_string);
        assert_eq!(got, want, "{body}");
    }
}

#[test]
fn the_catalogue_gives_the_impact_a_rule_leaves_out() {
    let env = catalogue();
    let labels = [("alertname", "A"), ("service", "checkout")];
    let impact = |script: Option<&str>| {
        let scripts: Vec<(&str, &str)> = script.map(|s| ("10-t.rhai", s)).into_iter().collect();
        let rules = rules_in(&scripts, &env).unwrap();
        match rules.decide(&alert(&labels)).0.outcome {
            Outcome::Incident(spec) => spec.impact,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(impact(None), Level::High, "the built-in default");
    assert_eq!(
        impact(Some(r#"fn on_alert(a) { incident(#{ key: "k" }) }"#)),
        Level::High
    );
    assert_eq!(
        impact(Some(
            r#"fn on_alert(a) { incident(#{ key: "k", impact: "low" }) }"#
        )),
        Level::Low,
        "the rule's own impact wins"
    );
    assert_eq!(
        impact(Some(
            r#"fn on_alert(a) { incident(#{ key: "k", service: "other" }) }"#
        )),
        Level::Medium,
        "a service outside the catalogue"
    );
}

fn default_policy() -> crate::incidents::Policy {
    crate::config::Settings::from_toml(
        std::path::Path::new("t.toml"),
        "",
        &crate::config::Overrides::default(),
    )
    .unwrap()
    .incidents
}

/// The shipped rules' fixtures, through the code `triaged rules test` runs.
#[test]
fn shipped_rule_fixtures_pass() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    let report = fixtures::run(&dir, &RuleEnv::default(), default_policy()).unwrap();
    assert_eq!(report.failed, 0, "{}", report.text);
    assert!(report.passed >= 15, "{}", report.text);
}

#[test]
fn a_fixture_that_does_not_hold_is_reported_with_its_differences() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("tests")).unwrap();
    std::fs::write(
        tmp.path().join("10-k.rhai"),
        r#"fn on_alert(a) { incident(#{ key: "k/" + a.labels.alertname, impact: "low" }) }"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("tests/k.toml"),
        r#"
[[case]]
name = "holds"
alert = { labels = { alertname = "A" } }
expect = { decision = "incident", rule = "10-k.rhai", key = "k/A", impact = "low" }

[[case]]
name = "wrong key and impact"
alert = { labels = { alertname = "A" } }
expect = { decision = "incident", key = "k/B", impact = "high" }

[[case]]
name = "wrong decision"
alert = { labels = { alertname = "A" } }
expect = { decision = "drop" }

[[sequence]]
name = "wrong count"
alerts = [ { labels = { alertname = "A" } }, { at = 5, labels = { alertname = "B" } } ]
incident_count = 1
incidents = [ { key = "k/A", alerts_total = 1 }, { key = "k/C" } ]
"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("tests/p.json"),
        r#"{"case": [{"name": "a payload", "expect": {"decision": "incident", "key": "k/A"},
            "payload": {"version": "4", "status": "firing", "alerts": [
              {"status": "firing", "labels": {"alertname": "A"}, "startsAt": "2026-01-01T00:00:00Z"},
              {"status": "firing", "labels": {"alertname": "B"}, "startsAt": "2026-01-01T00:00:00Z"}]}}]}"#,
    )
    .unwrap();
    let report = fixtures::run(tmp.path(), &RuleEnv::default(), default_policy()).unwrap();
    assert_eq!((report.passed, report.failed), (1, 4), "{}", report.text);
    assert!(
        report.text.contains(
            "FAIL  p.json: a payload\n      alert 2: key: expected \"k/A\", got \"k/B\"\n"
        ),
        "{}",
        report.text
    );
    for expected in [
        "FAIL  k.toml: wrong key and impact\n      key: expected \"k/B\", got \"k/A\"\n      impact: expected \"high\", got \"low\"\n",
        "FAIL  k.toml: wrong decision\n      decision: expected \"drop\", got \"incident\"\n",
        "      incidents: expected 1, got 2\n",
        "      incident \"k/C\": expected, but the incidents are [\"k/A\", \"k/B\"]\n",
    ] {
        assert!(report.text.contains(expected), "{}", report.text);
    }

    std::fs::write(tmp.path().join("tests/k.toml"), "[[case]]\nname = 1\n").unwrap();
    let err = fixtures::run(tmp.path(), &RuleEnv::default(), default_policy()).unwrap_err();
    assert!(err.contains("tests/k.toml:2:8: invalid type"), "{err}");
}

/// `incidents_for_key` counts the key's earlier incidents in the window, through the
/// real pipeline (a fixture sequence); without history (a fixture case) it is 0.
#[test]
fn incidents_for_key_counts_the_keys_recurrences() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("tests")).unwrap();
    std::fs::write(
        tmp.path().join("10-recurring.rhai"),
        r#"
fn on_alert(a) {
    let key = "rec/" + a.labels.alertname;
    let earlier = incidents_for_key(key, 86400);
    incident(#{ key: key, title: `earlier: ${earlier}`, major: earlier >= 2 })
}
"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("tests/rec.toml"),
        r#"
[[case]]
name = "no history outside the pipeline"
alert = { labels = { alertname = "Flaky" } }
expect = { decision = "incident", title = "earlier: 0", major = false }

[[sequence]]
name = "the third incident of a key within a day is major"
alerts = [
  { at = 0, labels = { alertname = "Flaky" } },
  { at = 60, status = "resolved", labels = { alertname = "Flaky" } },
  { at = 3700, labels = { alertname = "Flaky" } },
  { at = 3760, status = "resolved", labels = { alertname = "Flaky" } },
  { at = 7400, labels = { alertname = "Flaky" } },
  { at = 7460, status = "resolved", labels = { alertname = "Flaky" } },
  { at = 100000, labels = { alertname = "Flaky" } },
]
incident_count = 4
incidents = [
  { key = "rec/Flaky", title = "earlier: 0", major = false, previous = "" },
  { key = "rec/Flaky", title = "earlier: 1", major = false, previous = "INC-1" },
  { key = "rec/Flaky", title = "earlier: 2", major = true, previous = "INC-2" },
  # INC-3 opened at 7400, more than a day before 100000: out of the window.
  { key = "rec/Flaky", title = "earlier: 0", major = false, previous = "INC-3" },
]
"#,
    )
    .unwrap();
    let report = fixtures::run(tmp.path(), &RuleEnv::default(), default_policy()).unwrap();
    assert_eq!(report.failed, 0, "{}", report.text);
    assert_eq!(report.passed, 2, "{}", report.text);
}

fn an_incident() -> crate::incidents::Incident {
    let spec = IncidentSpec {
        key: "Lag/db".into(),
        title: "Replication lag".into(),
        service: Some("db".into()),
        ci: None,
        impact: Level::High,
        urgency: Level::Medium,
        major: false,
        sinks: Vec::new(),
    };
    crate::incidents::Incident::open(
        crate::incidents::IncidentId(7),
        &spec,
        "50-severity.rhai",
        "2026-01-01T00:00:00Z".parse().unwrap(),
        "2026-01-01T00:00:01Z".parse().unwrap(),
        &crate::incidents::Policy::default(),
    )
    .0
}

#[test]
fn on_incident_reads_the_incident_and_history_and_may_open_a_problem() {
    let history = IncidentHistory {
        last_hour: 1,
        last_day: 3,
        last_week: 4,
    };
    let decide = |scripts: &[(&str, &str)]| {
        let rules = rules(scripts, RuleLimits::default()).expect("compiles");
        let (d, f) = rules.decide_incident(
            &an_incident(),
            history,
            &NoHistory,
            "2026-01-01T00:00:01Z".parse().unwrap(),
        );
        (
            d,
            f.iter()
                .map(|f| (f.rule.clone(), f.kind))
                .collect::<Vec<_>>(),
        )
    };
    let (d, f) = decide(&[(
        "60-r.rhai",
        r#"fn on_incident(i, h) {
            if h.last_day >= 3 && i.priority == "P2" && i.service == "db" && i.id == "INC-7" {
                problem(#{ key: i.key, title: `${h.last_hour}/${h.last_day}/${h.last_week} ${i.title}` })
            }
        }"#,
    )]);
    assert!(f.is_empty(), "{f:?}");
    let (rule, spec) = d.expect("a problem");
    assert_eq!(rule, "60-r.rhai");
    assert_eq!(spec.key, "Lag/db");
    assert_eq!(spec.title, "1/3/4 Replication lag");

    // The title defaults to the incident's; failures fall through to the next script.
    let (d, f) = decide(&[
        ("10-throws.rhai", "fn on_incident(i, h) { throw \"x\" }"),
        ("20-wrong.rhai", "fn on_incident(i, h) { drop(\"no\") }"),
        (
            "30-nokey.rhai",
            "fn on_incident(i, h) { problem(#{ title: \"t\" }) }",
        ),
        (
            "35-badlink.rhai",
            "fn on_incident(i, h) { problem(#{ key: \"k\", link_recent_secs: -1 }) }",
        ),
        (
            "40-ok.rhai",
            "fn on_incident(i, h) { problem(#{ key: \"k\", link_recent_secs: 60 }) }",
        ),
    ]);
    let spec = d.unwrap().1;
    assert_eq!(spec.title, "Replication lag");
    assert_eq!(spec.link_recent_secs, 60);
    assert_eq!(
        f,
        [
            ("10-throws.rhai".to_string(), "runtime"),
            ("20-wrong.rhai".to_string(), "malformed"),
            ("30-nokey.rhai".to_string(), "malformed"),
            ("35-badlink.rhai".to_string(), "malformed"),
        ]
    );

    // Nothing decided: no problem.
    let (d, f) = decide(&[("10-quiet.rhai", "fn on_incident(i, h) { }")]);
    assert!(d.is_none() && f.is_empty());
}

#[test]
fn hooks_are_checked_for_their_parameters_and_decisions_for_their_hook() {
    let err = rules(
        &[("x.rhai", "fn on_incident(i) { }")],
        RuleLimits::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("on_incident must take exactly two parameters"),
        "{err}"
    );
    // problem(...) from on_alert is malformed; the default decides.
    let (rule, _, kinds) = check(
        &[("10-p.rhai", "fn on_alert(a) { problem(#{ key: \"k\" }) }")],
        &[("alertname", "A")],
    );
    assert_eq!(rule, DEFAULT_RULE);
    assert_eq!(kinds, ["malformed"]);
    // A file with only on_incident is listed with that hook and not run for alerts.
    let r = rules(
        &[("60-r.rhai", "fn on_incident(i, h) { }")],
        RuleLimits::default(),
    )
    .unwrap();
    assert_eq!(r.files()[0].hooks, ["on_incident"]);
    assert_eq!(r.decide(&alert(&[("alertname", "A")])).0.rule, DEFAULT_RULE);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 300,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// The rule API under hostile alerts: an alertname (as every source requires) and
    /// any other label names and values (empty, NUL,
    /// right-to-left marks, astral characters, long strings, the names the shipped
    /// scripts read) go through the shipped rules without a panic; the verdict is a
    /// drop or an incident whose key and title are set, and a script failure is
    /// reported, never silent.
    #[test]
    fn shipped_rules_take_any_labels(
        labels in proptest::collection::btree_map(
            proptest::prop_oneof![
                proptest::strategy::Just("alertname".to_string()),
                proptest::strategy::Just("service".to_string()),
                proptest::strategy::Just("severity".to_string()),
                proptest::strategy::Just("job".to_string()),
                proptest::strategy::Just("instance".to_string()),
                proptest::strategy::Just("heartbeat".to_string()),
                ".{0,16}",
            ],
            proptest::prop_oneof![
                proptest::strategy::Just(String::new()),
                proptest::strategy::Just("critical".to_string()),
                proptest::strategy::Just("info".to_string()),
                proptest::strategy::Just("Watchdog".to_string()),
                proptest::strategy::Just("\u{0}\u{202e}\u{1f525}\u{10ffff}".to_string()),
                proptest::strategy::Just("x".repeat(5000)),
                ".{0,40}",
            ],
            0..8,
        ),
        annotations in proptest::collection::btree_map(".{0,12}", ".{0,60}", 0..4),
        // Every source refuses an alert without a non-blank alertname.
        alertname in proptest::prop_oneof![
            "[^\\s]{1,30}",
            proptest::strategy::Just("\u{202e}Disk\u{0}\u{1f525}".to_string()),
            proptest::strategy::Just("Watchdog".to_string()),
            proptest::strategy::Just("A".repeat(5000)),
        ],
    ) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        thread_local! {
            static SHIPPED: std::cell::OnceCell<Rules> = const { std::cell::OnceCell::new() };
        }
        let mut a = alert(&[]);
        a.labels = labels;
        a.labels.insert("alertname".into(), alertname);
        a.annotations = annotations;
        let (verdict, failures) = SHIPPED.with(|cell| {
            cell.get_or_init(|| Rules::load(&dir, &RuleEnv::default()).unwrap())
                .decide(&a)
        });
        for f in &failures {
            proptest::prop_assert!(!f.rule.is_empty(), "{failures:?}");
        }
        match verdict.outcome {
            Outcome::Drop(reason) => proptest::prop_assert!(!reason.is_empty()),
            Outcome::Incident(spec) => {
                proptest::prop_assert!(!spec.key.is_empty(), "{spec:?}");
                proptest::prop_assert!(!spec.title.is_empty(), "{spec:?}");
            }
        }
    }
}
