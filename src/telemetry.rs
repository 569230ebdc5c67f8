//! Logs and metrics: the tracing subscriber and every `triaged_` metric in one place.
//!
//! Metric label values come from bounded sets (sources, reasons, routes, rule files);
//! never an incident id or an error string. Each daemon instance has its own registry
//! so that tests can run several in one process.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::config::{LogFormat, LogSettings};

/// Installs the global tracing subscriber: text on a terminal, JSON when configured.
/// `RUST_LOG`, when set, overrides the configured level. Call once, from `main`.
pub fn init_logging(log: &LogSettings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    // Colours only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    pub alerts_received: IntCounterVec,
    pub alerts_rejected: IntCounterVec,
    pub incidents_opened: IntCounter,
    pub incidents_reopened: IntCounter,
    pub incidents_resolved: IntCounter,
    pub alerts_dropped: IntCounter,
    pub rule_errors: IntCounterVec,
    pub http_duration: HistogramVec,
    pub batch_size: prometheus::Histogram,
    pub commit_duration: prometheus::Histogram,
    pub store_errors: IntCounter,
    pub queue_depth: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h =
                prometheus::Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                    .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "triaged_http_request_duration_seconds",
                "HTTP request latency by route and status",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route", "status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("unique metric");
        let queue_depth = IntGauge::new(
            "triaged_correlation_queue_depth",
            "Requests waiting for the correlation task",
        )
        .expect("valid metric");
        registry
            .register(Box::new(queue_depth.clone()))
            .expect("unique metric");

        Metrics {
            alerts_received: counter_vec(
                "triaged_alerts_received_total",
                "Alerts accepted from a source",
                &["source"],
            ),
            alerts_rejected: counter_vec(
                "triaged_alerts_rejected_total",
                "Requests refused by a source, by reason",
                &["source", "reason"],
            ),
            incidents_opened: counter("triaged_incidents_opened_total", "Incidents opened"),
            incidents_reopened: counter("triaged_incidents_reopened_total", "Incidents reopened"),
            incidents_resolved: counter(
                "triaged_incidents_resolved_total",
                "Incidents resolved because every alert resolved",
            ),
            alerts_dropped: counter("triaged_alerts_dropped_total", "Alerts a rule dropped"),
            rule_errors: counter_vec(
                "triaged_rule_errors_total",
                "Rule calls that failed (the default decision was used)",
                &["rule", "kind"],
            ),
            http_duration,
            batch_size: histogram(
                "triaged_correlation_batch_alerts",
                "Alerts per correlation batch (one store commit each)",
                vec![1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0],
            ),
            commit_duration: histogram(
                "triaged_store_commit_duration_seconds",
                "Time to commit one correlation batch (log append and fdatasync)",
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ],
            ),
            store_errors: counter("triaged_store_errors_total", "Failed store commits"),
            queue_depth,
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("exposition is UTF-8")
    }
}
