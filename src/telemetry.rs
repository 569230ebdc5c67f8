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
    pub problems_opened: IntCounter,
    pub sla_breaches: IntCounterVec,
    pub source_polls: IntCounterVec,
    pub log_lines: IntCounterVec,
    pub log_matched: IntCounterVec,
    pub log_truncated: IntCounterVec,
    pub log_behind: prometheus::IntGaugeVec,
    pub source_stale: prometheus::IntGaugeVec,
    pub escalations: IntCounter,
    pub rule_errors: IntCounterVec,
    pub rules_reloads: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub http_duration: HistogramVec,
    pub batch_size: prometheus::Histogram,
    pub commit_duration: prometheus::Histogram,
    pub stages: Stages,
    pub store_errors: IntCounter,
    pub queue_depth: IntGauge,
    pub incidents_flapping: IntGauge,
    pub heartbeats_missing: prometheus::IntGaugeVec,
    /// Outbox deliveries by sink: delivered, retried (an attempt to try again),
    /// dead-lettered.
    pub sink_delivered: IntCounterVec,
    pub sink_retried: IntCounterVec,
    pub sink_dead: IntCounterVec,
    /// Deliveries waiting per sink, and the age of the oldest.
    pub sink_queue: prometheus::IntGaugeVec,
    pub sink_oldest: prometheus::GaugeVec,
    /// 1 while a sink's circuit breaker is open.
    pub sink_circuit_open: prometheus::IntGaugeVec,
    store_incidents: IntGauge,
    store_pending_records: IntGauge,
    store_log_bytes: IntGauge,
    store_checkpoints: IntCounterVec,
    store_last_checkpoint: prometheus::Gauge,
    store_healthy: IntGauge,
    store_refusing_writes: IntGauge,
    store_checkpoints_blocked: IntGauge,
    store_free_bytes: IntGauge,
    /// The store's checkpoint counts at the last scrape (its counters are absolute).
    seen_checkpoints: std::sync::Mutex<(u64, u64)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a submission's time goes from its task to its answer,
/// `triaged_correlation_stage_seconds{stage}`: `queued` (until correlation takes its
/// batch), `correlated` (the batch's rules and records, until it is in the log),
/// `waiting_sync` (until the sync that covers it starts: the one running ends first),
/// `synced` (the fdatasync and making the batch visible) and `answered` (until the
/// waiting task runs again).
#[derive(Clone)]
pub struct Stages {
    pub queued: prometheus::Histogram,
    pub correlated: prometheus::Histogram,
    pub synced: prometheus::Histogram,
    pub answered: prometheus::Histogram,
}

/// Registers a metric with the daemon's registry (names are fixed and unique).
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: &M) {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(&registry, &c);
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            register(&registry, &c);
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h =
                prometheus::Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                    .expect("valid metric");
            register(&registry, &h);
            h
        };
        let histogram_vec = |name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            register(&registry, &h);
            h
        };
        let http_duration = histogram_vec(
            "triaged_http_request_duration_seconds",
            "HTTP request latency by route and status",
            vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
            &["route", "status"],
        );
        let stages = histogram_vec(
            "triaged_correlation_stage_seconds",
            "Time a submission spends in each stage between its task and its answer",
            vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5,
            ],
            &["stage"],
        );
        let stage = |name: &str| stages.with_label_values(&[name]);
        let stages = Stages {
            queued: stage("queued"),
            correlated: stage("correlated"),
            synced: stage("synced"),
            answered: stage("answered"),
        };
        let queue_depth = IntGauge::new(
            "triaged_correlation_queue_depth",
            "Requests waiting for the correlation task",
        )
        .expect("valid metric");
        register(&registry, &queue_depth);

        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            register(&registry, &g);
            g
        };
        let incidents_flapping = gauge(
            "triaged_incidents_flapping",
            "Open incidents flapping now (an attached alert changes status too often)",
        );
        let heartbeats_missing = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "triaged_heartbeat_missing",
                "1 while a configured heartbeat ([[heartbeats]]) has not been seen for its interval",
            ),
            &["heartbeat"],
        )
        .expect("valid metric");
        register(&registry, &heartbeats_missing);
        let source_stale = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "triaged_source_stale",
                "1 while a polled source ([[prometheus]]) fails to answer: nothing it reported resolves meanwhile",
            ),
            &["source"],
        )
        .expect("valid metric");
        register(&registry, &source_stale);
        let int_gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = prometheus::IntGaugeVec::new(prometheus::Opts::new(name, help), labels)
                .expect("valid metric");
            register(&registry, &g);
            g
        };
        let sink_queue = int_gauge_vec(
            "triaged_outbox_queue_depth",
            "Outbox deliveries waiting for a sink (pending, not dead)",
            &["sink"],
        );
        let sink_circuit_open = int_gauge_vec(
            "triaged_sink_circuit_open",
            "1 while a sink's circuit breaker is open (nothing is sent to it until a trial succeeds)",
            &["sink"],
        );
        let sink_oldest = prometheus::GaugeVec::new(
            prometheus::Opts::new(
                "triaged_outbox_oldest_age_seconds",
                "Age of the oldest delivery waiting for a sink",
            ),
            &["sink"],
        )
        .expect("valid metric");
        register(&registry, &sink_oldest);
        let log_behind = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "triaged_log_bytes_behind",
                "Bytes of a log watcher's files not read yet, as of its last poll",
            ),
            &["watcher"],
        )
        .expect("valid metric");
        register(&registry, &log_behind);
        let store_last_checkpoint = prometheus::Gauge::new(
            "triaged_store_last_checkpoint_duration_seconds",
            "Duration of the last checkpoint of the write-ahead log into the database",
        )
        .expect("valid metric");
        register(&registry, &store_last_checkpoint);
        Metrics {
            store_incidents: gauge("triaged_store_incidents", "Incidents stored"),
            store_pending_records: gauge(
                "triaged_store_pending_records",
                "Records committed to the write-ahead log and not yet checkpointed",
            ),
            store_log_bytes: gauge(
                "triaged_store_log_segment_bytes",
                "Bytes in the write-ahead log's current segment",
            ),
            store_checkpoints: counter_vec(
                "triaged_store_checkpoints_total",
                "Checkpoints of the write-ahead log into the database, by result",
                &["result"],
            ),
            store_last_checkpoint,
            store_healthy: gauge(
                "triaged_store_healthy",
                "1 while the store takes writes, 0 after a log failure (restart needed)",
            ),
            store_refusing_writes: gauge(
                "triaged_store_refusing_writes",
                "1 while writes are refused for want of space (503; they succeed again once there is room)",
            ),
            store_checkpoints_blocked: gauge(
                "triaged_store_checkpoints_blocked",
                "1 while checkpoints are put off for want of space on the data dir (the write-ahead log grows)",
            ),
            store_free_bytes: gauge(
                "triaged_store_free_bytes",
                "Free bytes on the data dir's filesystem",
            ),
            seen_checkpoints: std::sync::Mutex::new((0, 0)),
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
                "Incidents resolved (every alert resolved, or by hand)",
            ),
            alerts_dropped: counter("triaged_alerts_dropped_total", "Alerts a rule dropped"),
            problems_opened: counter(
                "triaged_problems_opened_total",
                "Problems opened by a rule's on_incident",
            ),
            source_stale,
            log_behind,
            log_lines: counter_vec(
                "triaged_log_lines_read_total",
                "Lines a log watcher read",
                &["watcher"],
            ),
            log_matched: counter_vec(
                "triaged_log_lines_matched_total",
                "Lines a log watcher turned into alerts (fired or resolved)",
                &["watcher"],
            ),
            log_truncated: counter_vec(
                "triaged_log_lines_truncated_total",
                "Lines longer than a log watcher's max_line_bytes, cut",
                &["watcher"],
            ),
            source_polls: counter_vec(
                "triaged_source_polls_total",
                "Polls of a polled source ([[prometheus]]), by result",
                &["source", "result"],
            ),
            sla_breaches: counter_vec(
                "triaged_sla_breaches_total",
                "SLA targets missed by incidents, by target (respond, resolve)",
                &["target"],
            ),
            escalations: counter(
                "triaged_incident_escalations_total",
                "Escalation levels reached by unacknowledged incidents",
            ),
            rule_errors: counter_vec(
                "triaged_rule_errors_total",
                "Rule calls that failed (the default decision was used)",
                &["rule", "kind"],
            ),
            rules_reloads: counter_vec(
                "triaged_rules_reloads_total",
                "Reloads of the rules directory, by result (success: the new rules are in force)",
                &["result"],
            ),
            config_reloads: counter_vec(
                "triaged_config_reloads_total",
                "Reloads of the configuration file (SIGHUP), by result",
                &["result"],
            ),
            http_duration,
            stages,
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
            sink_delivered: counter_vec(
                "triaged_outbox_delivered_total",
                "Outbox deliveries a sink accepted",
                &["sink"],
            ),
            sink_retried: counter_vec(
                "triaged_outbox_retried_total",
                "Outbox delivery attempts that failed and will be tried again",
                &["sink"],
            ),
            sink_dead: counter_vec(
                "triaged_outbox_dead_letters_total",
                "Outbox deliveries rejected for good or given up on (dead letters)",
                &["sink"],
            ),
            sink_queue,
            sink_oldest,
            sink_circuit_open,
            queue_depth,
            incidents_flapping,
            heartbeats_missing,
            registry,
        }
    }

    /// Sets the store's metrics from its current figures (called at scrape time).
    pub fn observe_store(&self, stats: &crate::store::Stats) {
        self.store_incidents.set(stats.incidents as i64);
        self.store_pending_records.set(stats.pending_records as i64);
        self.store_log_bytes.set(stats.log_bytes as i64);
        self.store_last_checkpoint
            .set(stats.last_checkpoint_seconds);
        self.store_healthy.set(i64::from(stats.failed.is_none()));
        self.store_refusing_writes
            .set(i64::from(stats.refusing_writes.is_some()));
        self.store_checkpoints_blocked
            .set(i64::from(stats.checkpoints_blocked.is_some()));
        if let Some(free) = stats.free_bytes {
            self.store_free_bytes
                .set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        let mut seen = self
            .seen_checkpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (ok, failed) = *seen;
        self.store_checkpoints
            .with_label_values(&["ok"])
            .inc_by(stats.checkpoints_ok.saturating_sub(ok));
        self.store_checkpoints
            .with_label_values(&["failed"])
            .inc_by(stats.checkpoints_failed.saturating_sub(failed));
        *seen = (
            stats.checkpoints_ok.max(ok),
            stats.checkpoints_failed.max(failed),
        );
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
