//! Rule evaluation through the shipped rules (`rules/`), one core: alerts per second.
//!
//! `cargo bench --bench rules`

use std::hint::black_box;
use std::path::Path;

use divan::counter::ItemsCount;
use divan::Bencher;
use triaged::alerts::{Alert, AlertStatus, Source};
use triaged::config::RuleEnv;
use triaged::rules::Rules;

fn main() {
    divan::main();
}

/// Alerts shaped like the ingest benchmark's: 50 alert names, 20 services.
fn alerts(n: usize) -> Vec<Alert> {
    let now: jiff::Timestamp = "2026-11-29T01:00:00Z".parse().unwrap();
    (0..n)
        .map(|i| {
            let labels = [
                ("alertname", format!("LoadAlert{:02}", i % 50)),
                ("service", format!("svc{:02}", (i / 50) % 20)),
                ("instance", format!("host-{i}.example.net:9100")),
                ("job", "loadgen".to_string()),
                (
                    "severity",
                    ["critical", "warning", "info"][i % 3].to_string(),
                ),
            ];
            Alert {
                source: Source::Alertmanager,
                fingerprint: format!("{i:016x}"),
                status: AlertStatus::Firing,
                labels: labels
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                annotations: [("summary".to_string(), format!("load alert {i}"))].into(),
                starts_at: now,
                ends_at: None,
                generator_url: Some("http://prometheus.example.net:9090/graph".into()),
                received_at: now,
            }
        })
        .collect()
}

/// Decides 1 000 alerts per iteration.
fn bench_decide(bencher: Bencher, rules: &Rules) {
    let alerts = alerts(1000);
    bencher
        .counter(ItemsCount::new(alerts.len()))
        .bench_local(|| {
            for a in &alerts {
                black_box(rules.decide(black_box(a)));
            }
        });
}

#[divan::bench]
fn shipped_rules(bencher: Bencher) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = Rules::load(&dir, &RuleEnv::default()).expect("shipped rules compile");
    bench_decide(bencher, &rules);
}

#[divan::bench]
fn builtin_default_only(bencher: Bencher) {
    let rules = Rules::compile(Vec::new(), &RuleEnv::default()).unwrap();
    bench_decide(bencher, &rules);
}
