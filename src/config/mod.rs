//! Configuration: the TOML file's raw form, its defaults, and the validated
//! [`Settings`] the daemon runs on.
//!
//! Loading is one fallible step (read, parse, validate) that happens before any port is
//! bound; every error names the file, line, column and key. Nothing here starts tasks
//! or binds sockets. Relative paths in the file are taken from the working directory.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::incidents::{Level, Policy};

mod delivery;
pub use delivery::redact_url;

/// The raw file. Every section is optional; defaults live in the `Default` impls below.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// HTTP listener and authentication.
    pub server: RawServer,
    /// The embedded store.
    pub store: RawStore,
    /// Correlation rules.
    pub rules: RawRules,
    /// Incident correlation policy.
    pub incidents: RawIncidents,
    /// The service catalogue rules read with `service(name)`.
    pub services: BTreeMap<String, RawService>,
    /// Dead-man switches: alerts that must keep arriving.
    pub heartbeats: Vec<RawHeartbeat>,
    /// The priority matrix: impact (keys) × urgency (the array's high, medium, low).
    pub priority: RawPriority,
    /// Respond-by and resolve-by targets per priority (`[sla.P1]` … `[sla.P5]`).
    pub sla: BTreeMap<String, RawTarget>,
    /// Escalation of incidents not acknowledged by their respond-by time.
    pub escalation: RawEscalation,
    /// Maintenance windows: alerts on their services are recorded but do not page.
    pub maintenance: Vec<RawMaintenance>,
    /// Named webhooks: `POST /api/v1/webhooks/{name}` through a mapping script.
    pub webhooks: Vec<RawWebhook>,
    /// Prometheus servers polled for alerts and queries.
    pub prometheus: Vec<RawPrometheus>,
    /// Log files watched for lines that become alerts.
    pub log_watchers: Vec<RawLogWatcher>,
    /// Where outbox events are delivered.
    pub sinks: Vec<delivery::RawSink>,
    /// Which events go to which sinks.
    pub routes: Vec<delivery::RawRoute>,
    /// Logging.
    pub log: RawLog,
}

/// `[priority]`: for each impact, the priorities for urgency high, medium and low.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPriority {
    pub high: [String; 3],
    pub medium: [String; 3],
    pub low: [String; 3],
}

impl Default for RawPriority {
    fn default() -> Self {
        let row = |a: &str, b: &str, c: &str| [a.to_string(), b.to_string(), c.to_string()];
        RawPriority {
            high: row("P1", "P2", "P3"),
            medium: row("P2", "P3", "P4"),
            low: row("P3", "P4", "P5"),
        }
    }
}

/// One `[sla.Pn]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Seconds from opening to the first acknowledgement.
    pub respond_secs: Option<u64>,
    /// Seconds from opening to resolution.
    pub resolve_secs: Option<u64>,
}

/// One `[[maintenance]]` window: either `starts_at` + `ends_at` (RFC 3339), or weekly
/// `days` + `start` (`HH:MM`, UTC) + `duration_mins`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    pub name: String,
    /// Services covered (empty: every service).
    #[serde(default)]
    pub services: Vec<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub days: Option<Vec<crate::silences::Day>>,
    pub start: Option<String>,
    pub duration_mins: Option<u64>,
}

/// One `[[log_watchers]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogWatcher {
    pub name: String,
    /// Files to watch: absolute paths whose file name may be a glob (`/var/log/app.log*`).
    pub paths: Vec<String>,
    /// A regular expression; a matching line fires an alert, its named captures labels.
    #[serde(rename = "match")]
    pub match_: Option<String>,
    /// Instead of `match`: a script in `<rules.dir>/mappings/` whose `fn on_line(line)`
    /// returns an alert map (or nothing).
    pub script: Option<String>,
    /// A line matching this resolves the alert with the same labels.
    pub resolve_match: Option<String>,
    pub alertname: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Fire only after this many matches within `window_secs`.
    pub threshold: Option<RawThreshold>,
    /// `end` (new lines only, the default) or `beginning`, for files found at start.
    #[serde(default = "end")]
    pub start: String,
    /// Longer lines are cut (and counted).
    #[serde(default = "sixty_four_k")]
    pub max_line_bytes: usize,
    /// `checksum` (the first line; the default) or `device_inode` (device, inode and
    /// the first line's checksum).
    #[serde(default = "checksum")]
    pub identify_by: String,
}

fn checksum() -> String {
    "checksum".into()
}

fn end() -> String {
    "end".into()
}

fn sixty_four_k() -> usize {
    64 * 1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThreshold {
    pub count: u32,
    pub window_secs: u64,
}

/// One `[[prometheus]]` poller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrometheus {
    /// Names the source (metrics, the alerts' `prometheus` annotation).
    pub name: String,
    /// Prometheus' base URL, `http://host:9090`.
    pub url: String,
    #[serde(default = "thirty")]
    pub interval_secs: u64,
    #[serde(default = "ten")]
    pub timeout_secs: u64,
    /// Poll `/api/v1/alerts` (mode 1).
    #[serde(default = "yes")]
    pub alerts: bool,
    /// An alert or series absent this long resolves (default: three intervals).
    pub resolve_grace_secs: Option<u64>,
    /// Environment variable or file holding a bearer token for Prometheus.
    pub bearer_token_env: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    /// Basic auth: user name, password from an environment variable.
    pub username: Option<String>,
    pub password_env: Option<String>,
    /// Mode 2: PromQL queries whose series fire.
    #[serde(default)]
    pub queries: Vec<RawQuery>,
}

fn thirty() -> u64 {
    30
}

fn ten() -> u64 {
    10
}

fn yes() -> bool {
    true
}

/// One `[[prometheus.queries]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    pub alertname: String,
    /// PromQL giving an instant vector: each series is an alert.
    pub expr: String,
    /// A series fires once present this long.
    #[serde(default)]
    pub for_secs: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// One `[[webhooks]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// The path segment: `POST /api/v1/webhooks/{name}`.
    pub name: String,
    /// The mapping script, a file name in `<rules.dir>/mappings/`.
    pub mapping: String,
    /// Environment variable holding the HMAC-SHA256 secret (then a signature is required).
    pub hmac_secret_env: Option<String>,
    /// File holding the HMAC secret (trailing newline ignored).
    pub hmac_secret_file: Option<PathBuf>,
    /// Header carrying the signature (hex, or `sha256=` + hex).
    #[serde(default = "hub_signature")]
    pub hmac_header: String,
    /// A bearer token of this role is required (default: an ingest token when tokens
    /// are configured and no HMAC secret is).
    pub role: Option<Role>,
}

fn hub_signature() -> String {
    "X-Hub-Signature-256".into()
}

/// `[escalation]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEscalation {
    pub levels: Vec<RawEscalationLevel>,
    /// Targets (`sink` or `sink:recipient`) told of every SLA breach, besides the
    /// routes'.
    pub breach_notify: Vec<String>,
}

/// One `[[escalation.levels]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEscalationLevel {
    /// Seconds past respond-by, still unacknowledged, at which this level is reached.
    pub after_secs: u64,
    /// Who is told (names the sinks resolve).
    pub notify: Vec<String>,
    /// Only incidents of these priorities climb this level (default: all).
    #[serde(default)]
    pub priorities: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address to listen on, `IP:PORT`.
    pub listen: String,
    /// Largest request body accepted; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Seconds a client has to send a request's head; then the connection is closed.
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body; then 408.
    pub body_timeout_secs: u64,
    /// Seconds a graceful shutdown waits for requests in flight.
    pub drain_secs: u64,
    /// Serve a non-loopback address without tokens (not recommended).
    pub allow_unauthenticated: bool,
    /// Named bearer tokens with a role.
    pub tokens: Vec<RawToken>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:9797".into(),
            max_body_bytes: 1024 * 1024,
            header_timeout_secs: 30,
            body_timeout_secs: 30,
            drain_secs: 30,
            allow_unauthenticated: false,
            tokens: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// Name recorded in the audit log as `token:<name>`; the basic-auth user name.
    pub name: String,
    /// `ingest` (webhooks), `operator` (read and act on records) or `admin` (all).
    pub role: Role,
    /// The secret itself (prefer `token_env` or `token_file`).
    pub token: Option<String>,
    /// Environment variable holding the secret.
    pub token_env: Option<String>,
    /// File holding the secret (trailing newline ignored).
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// Directory of the store (`sled/` and the write-ahead log `wal/` below it).
    pub data_dir: PathBuf,
    /// Memory sled may use as its page cache, in MiB.
    pub cache_capacity_mb: u64,
    /// Seconds between checkpoints of the write-ahead log into sled.
    pub checkpoint_interval_secs: u64,
    /// Records changed since the last checkpoint that start the next one early.
    pub checkpoint_max_records: usize,
    /// Where `POST /api/v1/store/backups` (`triaged store backup --online`) writes
    /// (default: `backups` beside the data dir).
    pub backup_dir: Option<PathBuf>,
    /// Space the store keeps reserved in the data dir (MiB, 0: none), given up so that
    /// it can open on a full disk.
    pub ballast_mb: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            data_dir: PathBuf::from("data"),
            cache_capacity_mb: 4,
            checkpoint_interval_secs: 30,
            checkpoint_max_records: 50_000,
            backup_dir: None,
            ballast_mb: 32,
        }
    }
}

/// One `[[heartbeats]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    /// Names the heartbeat (the `heartbeat` label of the alert raised when it stops).
    pub name: String,
    /// The alert name that beats (Alertmanager's `Watchdog`, say).
    pub alertname: String,
    /// Other labels the beating alert must carry (equality).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Not seen for this long (seconds) → a `HeartbeatMissing` alert fires.
    pub interval_secs: u64,
    /// `service` label of the raised alert (default: the heartbeat's name).
    pub service: Option<String>,
    /// `severity` label of the raised alert.
    #[serde(default = "critical")]
    pub severity: String,
}

fn critical() -> String {
    "critical".into()
}

/// One entry of `[services.<name>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Who runs it (a team or person), for rules and, later, routing.
    pub owner: Option<String>,
    /// Service tier, free text (`"1"`, `"gold"`).
    pub tier: Option<String>,
    /// The impact an incident on it has unless a rule says otherwise.
    pub impact: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRules {
    /// Directory of `*.rhai` rule scripts, run in file-name order.
    pub dir: PathBuf,
    /// Reload the rules when a file in `dir` changes.
    pub watch: bool,
    /// Rhai operations one hook call may run.
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Nesting of expressions (also for functions).
    pub max_expr_depth: usize,
    /// Longest string a rule may build, in bytes.
    pub max_string_size: usize,
    /// Largest array a rule may build.
    pub max_array_size: usize,
    /// Largest object map a rule may build.
    pub max_map_size: usize,
    /// Wall-clock time one hook call may take, in milliseconds.
    pub max_call_millis: u64,
}

impl Default for RawRules {
    fn default() -> Self {
        RawRules {
            dir: PathBuf::from("rules"),
            watch: true,
            max_operations: 100_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_call_millis: 50,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIncidents {
    /// Resolve an incident when every attached alert has resolved.
    pub auto_resolve: bool,
    /// A firing alert for the key of an incident resolved this recently reopens it.
    pub reopen_window_secs: u64,
    /// Status changes of one alert within `flap_window_secs` beyond which its incident
    /// flaps (0: off).
    pub flap_threshold: u32,
    /// The flap window, and how long an incident must be quiet to stop flapping.
    pub flap_window_secs: u64,
    /// Link a new incident to the changes on its service that ran or ended this many
    /// seconds before it opened (0: off).
    pub change_link_secs: u64,
}

impl Default for RawIncidents {
    fn default() -> Self {
        RawIncidents {
            auto_resolve: true,
            reopen_window_secs: 3600,
            flap_threshold: 4,
            flap_window_secs: 1800,
            change_link_secs: 3600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// A tracing filter: `info`, or `triaged=debug,info`. `RUST_LOG` overrides it.
    pub level: String,
    /// `text` (for a terminal) or `json` (for log shippers).
    pub format: LogFormat,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Post alerts to webhooks.
    Ingest,
    /// Read and act on records.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// The validated configuration the daemon runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub rules: RulesSettings,
    pub incidents: Policy,
    pub escalation: crate::sla::Escalation,
    pub maintenance: Vec<crate::silences::MaintenanceWindow>,
    pub webhooks: Vec<Webhook>,
    pub prometheus: Vec<crate::sources::prometheus::Poller>,
    pub log_watchers: Vec<crate::sources::logs::LogWatcher>,
    pub heartbeats: Vec<Heartbeat>,
    pub sinks: Vec<crate::sinks::SinkSettings>,
    pub routes: crate::outbox::routing::Routes,
    pub log: LogSettings,
}

impl Settings {
    /// What `GET /api/v1/config` shows: every setting, token names and roles but never
    /// their secrets.
    pub fn view(&self) -> serde_json::Value {
        use serde_json::json;
        let p = &self.incidents;
        let levels = ["high", "medium", "low"];
        let matrix: serde_json::Map<String, serde_json::Value> = levels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let row: Vec<&str> = p.matrix.0[i].iter().map(|x| x.as_str()).collect();
                (l.to_string(), json!(row))
            })
            .collect();
        let sla: serde_json::Map<String, serde_json::Value> = crate::incidents::Priority::ALL
            .iter()
            .map(|pr| {
                let t = p.targets.of(*pr);
                (
                    pr.as_str().to_string(),
                    json!({"respond_secs": t.respond_secs, "resolve_secs": t.resolve_secs}),
                )
            })
            .collect();
        let maintenance: Vec<serde_json::Value> = self
            .maintenance
            .iter()
            .map(|m| {
                let schedule = match &m.schedule {
                    crate::silences::Schedule::Once { starts_at, ends_at } => {
                        json!({"starts_at": starts_at, "ends_at": ends_at})
                    }
                    crate::silences::Schedule::Weekly {
                        days,
                        start,
                        duration,
                    } => json!({"days": days, "start": start.strftime("%H:%M").to_string(),
                               "duration_mins": duration.as_mins()}),
                };
                json!({"name": m.name, "services": m.services, "schedule": schedule})
            })
            .collect();
        json!({
            "server": {
                "listen": self.server.listen.to_string(),
                "max_body_bytes": self.server.max_body_bytes,
                "header_timeout_secs": self.server.header_timeout.as_secs(),
                "body_timeout_secs": self.server.body_timeout.as_secs(),
                "drain_secs": self.server.drain.as_secs(),
            },
            "tokens": tokens_view(&self.server.tokens),
            "store": {
                "data_dir": self.store.data_dir,
                "cache_capacity_bytes": self.store.cache_capacity_bytes,
                "checkpoint_interval_secs": self.store.checkpoint_interval_secs,
                "checkpoint_max_records": self.store.checkpoint_max_records,
                "backup_dir": self.store.backup_dir,
                "ballast_bytes": self.store.ballast_bytes,
            },
            "rules": rules_view(&self.rules),
            "incidents": {
                "auto_resolve": p.auto_resolve,
                "reopen_window_secs": p.reopen_window_secs,
                "flap_threshold": p.flap_threshold,
                "flap_window_secs": p.flap_window_secs,
                "change_link_secs": p.change_link_secs,
            },
            "priority": matrix,
            "sla": sla,
            "escalation": {"levels": self.escalation.levels, "breach_notify": self.escalation.breach_notify},
            "sinks": self.sinks.iter().map(crate::sinks::SinkSettings::view).collect::<Vec<_>>(),
            "routes": self.routes.routes.iter().map(|r| json!({
                "services": r.services,
                "priorities": r.priorities.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "events": r.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                "matchers": r.matchers.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                "sinks": r.sinks.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                "continue": r.continue_matching,
                "quiet": r.quiet,
            })).collect::<Vec<_>>(),
            "maintenance": maintenance,
            "webhooks": self.webhooks.iter().map(|w| json!({
                "name": w.name, "mapping": w.mapping, "signed": w.hmac_secret.is_some(),
                "hmac_header": w.hmac_header, "role": w.role.map(|r| r.as_str()),
            })).collect::<Vec<_>>(),
            "prometheus": self.prometheus.iter().map(|p| json!({
                "name": p.name, "url": p.url, "interval_secs": p.interval.as_secs(),
                "timeout_secs": p.timeout.as_secs(), "alerts": p.alerts,
                "resolve_grace_secs": p.resolve_grace_secs,
                "queries": p.queries.iter().map(|q| json!({
                    "alertname": q.alertname, "expr": q.expr, "for_secs": q.for_secs,
                    "labels": q.labels, "annotations": q.annotations,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "heartbeats": self.heartbeats.iter().map(|h| json!({
                "name": h.name, "alertname": h.alertname, "labels": h.labels,
                "interval_secs": h.interval.as_secs(), "service": h.service, "severity": h.severity,
            })).collect::<Vec<_>>(),
            "log": {"level": self.log.level, "format": format!("{:?}", self.log.format).to_lowercase()},
        })
    }
}

/// Token names and roles (never secrets), for the config view.
pub fn tokens_view(tokens: &[Token]) -> serde_json::Value {
    tokens
        .iter()
        .map(|t| serde_json::json!({"name": t.name, "role": t.role.as_str()}))
        .collect()
}

/// The rules settings, for the config view.
pub fn rules_view(r: &RulesSettings) -> serde_json::Value {
    let l = &r.limits;
    serde_json::json!({
        "dir": r.dir,
        "watch": r.watch,
        "max_operations": l.max_operations,
        "max_call_levels": l.max_call_levels,
        "max_expr_depth": l.max_expr_depth,
        "max_string_size": l.max_string_size,
        "max_array_size": l.max_array_size,
        "max_map_size": l.max_map_size,
        "max_call_millis": l.max_call.as_millis() as u64,
        "services": r.services.iter().map(|(n, s)| (n.clone(), serde_json::json!({
            "owner": s.owner, "tier": s.tier, "impact": s.impact.map(|i| i.as_str()),
        }))).collect::<serde_json::Map<_, _>>(),
    })
}

/// A named webhook, its secret resolved. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    pub mapping: String,
    pub hmac_secret: Option<Vec<u8>>,
    pub hmac_header: String,
    pub role: Option<Role>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("mapping", &self.mapping)
            .field("hmac", &self.hmac_secret.is_some())
            .field("hmac_header", &self.hmac_header)
            .field("role", &self.role)
            .finish()
    }
}

impl RulesSettings {
    /// Where webhook mapping scripts live.
    pub fn mappings_dir(&self) -> PathBuf {
        self.dir.join("mappings")
    }
}

/// A dead-man switch: `alertname` (with `labels`) must be seen at least every
/// `interval`, or triaged raises a `HeartbeatMissing` alert until it is seen again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub name: String,
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
    pub interval: std::time::Duration,
    pub service: String,
    pub severity: String,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub header_timeout: std::time::Duration,
    pub body_timeout: std::time::Duration,
    pub drain: std::time::Duration,
    pub tokens: Vec<Token>,
}

/// A bearer token with its secret resolved. `Debug` never prints the secret.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub secret: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub data_dir: PathBuf,
    pub cache_capacity_bytes: u64,
    pub checkpoint_interval_secs: u64,
    pub checkpoint_max_records: usize,
    pub backup_dir: PathBuf,
    pub ballast_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct RulesSettings {
    pub dir: PathBuf,
    pub watch: bool,
    pub limits: RuleLimits,
    pub services: BTreeMap<String, Service>,
}

impl RulesSettings {
    /// What rules are compiled with.
    pub fn env(&self) -> RuleEnv {
        RuleEnv {
            limits: self.limits,
            services: self.services.clone(),
        }
    }
}

/// A service of the catalogue (`[services.<name>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub owner: Option<String>,
    pub tier: Option<String>,
    pub impact: Option<Level>,
}

/// What a rule set is compiled with: its limits and the service catalogue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleEnv {
    pub limits: RuleLimits,
    pub services: BTreeMap<String, Service>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleLimits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_call: std::time::Duration,
}

impl Default for RuleLimits {
    fn default() -> Self {
        let raw = RawRules::default();
        RuleLimits {
            max_operations: raw.max_operations,
            max_call_levels: raw.max_call_levels,
            max_expr_depth: raw.max_expr_depth,
            max_string_size: raw.max_string_size,
            max_array_size: raw.max_array_size,
            max_map_size: raw.max_map_size,
            max_call: std::time::Duration::from_millis(raw.max_call_millis),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

/// Command-line flags that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// A configuration error with its place: `file:line:column: key: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; `None` when the key is not in the file (a default or a flag).
    pub position: Option<(usize, usize)>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

impl Settings {
    /// Reads, parses and validates the file at `path`, with `overrides` applied.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            position: None,
            key: String::new(),
            message: format!("cannot read config file: {e}"),
        })?;
        Settings::from_toml(path, &src, overrides)
    }

    /// Parses and validates `src`; `path` is only used in error messages.
    pub fn from_toml(
        path: &Path,
        src: &str,
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let raw = parse(path, src)?;
        validate(raw, overrides).map_err(|(key, message)| {
            let from_flag = key.starts_with("--");
            ConfigError {
                file: path.to_path_buf(),
                position: if from_flag { None } else { locate(src, &key) },
                key,
                message,
            }
        })
    }
}

fn parse(path: &Path, src: &str) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::new(src);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut key = e.path().to_string();
        if key == "." {
            key.clear();
        }
        let inner = e.into_inner();
        let message = inner.message().to_string();
        if let Some(name) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            if !key.ends_with(name) {
                key = if key.is_empty() {
                    name.to_string()
                } else {
                    format!("{key}.{name}")
                };
            }
        }
        let position = inner
            .span()
            .map(|span| line_col(src, span.start))
            .or_else(|| locate(src, &key));
        ConfigError {
            file: path.to_path_buf(),
            position,
            key,
            message,
        }
    })
}

type Invalid = (String, String);

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    (key.into(), message.into())
}

fn validate(raw: RawConfig, overrides: &Overrides) -> Result<Settings, Invalid> {
    let (matrix, targets, escalation) = service_levels(&raw)?;
    let maintenance = maintenance_windows(&raw.maintenance)?;
    let webhooks = webhooks(&raw.webhooks)?;
    let prometheus = pollers(&raw.prometheus)?;
    let log_watchers = log_watchers(&raw.log_watchers)?;
    let sinks = delivery::sinks(&raw.sinks)?;
    let sink_names: HashSet<&str> = sinks.iter().map(|s| s.name.as_str()).collect();
    let routes = delivery::routes(&raw.routes, &sink_names)?;
    for (i, l) in escalation.levels.iter().enumerate() {
        for (j, n) in l.notify.iter().enumerate() {
            delivery::target(
                format!("escalation.levels[{i}].notify[{j}]"),
                n,
                &sink_names,
            )?;
        }
    }
    for (j, n) in escalation.breach_notify.iter().enumerate() {
        delivery::target(format!("escalation.breach_notify[{j}]"), n, &sink_names)?;
    }
    let (listen_key, listen_src) = match &overrides.listen {
        Some(l) => ("--listen", l.as_str()),
        None => ("server.listen", raw.server.listen.as_str()),
    };
    let listen: SocketAddr = listen_src.parse().map_err(|_| {
        invalid(
            listen_key,
            format!("expected an address like 127.0.0.1:9797, got {listen_src:?}"),
        )
    })?;
    let max_body = raw.server.max_body_bytes;
    if !(1024..=64 * 1024 * 1024).contains(&max_body) {
        return Err(invalid(
            "server.max_body_bytes",
            format!("expected between 1024 and 67108864 bytes, got {max_body}"),
        ));
    }
    let secs = |key: &str, value: u64| {
        if (1..=3600).contains(&value) {
            Ok(std::time::Duration::from_secs(value))
        } else {
            Err(invalid(
                format!("server.{key}"),
                format!("expected between 1 and 3600 seconds, got {value}"),
            ))
        }
    };
    let header_timeout = secs("header_timeout_secs", raw.server.header_timeout_secs)?;
    let body_timeout = secs("body_timeout_secs", raw.server.body_timeout_secs)?;
    let drain = secs("drain_secs", raw.server.drain_secs)?;

    let mut tokens = Vec::new();
    let mut names = HashSet::new();
    for (i, t) in raw.server.tokens.into_iter().enumerate() {
        let key = |field: &str| format!("server.tokens[{i}].{field}");
        if t.name.trim().is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        if !names.insert(t.name.clone()) {
            return Err(invalid(
                key("name"),
                format!("token name {:?} is used twice", t.name),
            ));
        }
        let secret = match (t.token, t.token_env, t.token_file) {
            (Some(s), None, None) => s,
            (None, Some(var), None) => std::env::var(&var).map_err(|_| {
                invalid(
                    key("token_env"),
                    format!("environment variable {var} is not set"),
                )
            })?,
            (None, None, Some(file)) => std::fs::read_to_string(&file)
                .map_err(|e| {
                    invalid(
                        key("token_file"),
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            _ => {
                return Err(invalid(
                    key("name"),
                    "set exactly one of token, token_env and token_file",
                ))
            }
        };
        if secret.len() < 16 {
            return Err(invalid(
                key("name"),
                "the token must be at least 16 characters long",
            ));
        }
        tokens.push(Token {
            name: t.name,
            role: t.role,
            secret,
        });
    }
    if tokens.is_empty() && !listen.ip().is_loopback() && !raw.server.allow_unauthenticated {
        return Err(invalid(
            listen_key,
            format!(
                "{listen} is not a loopback address and no tokens are configured; \
                 add [[server.tokens]] or set server.allow_unauthenticated = true"
            ),
        ));
    }

    let data_dir = overrides
        .data_dir
        .clone()
        .unwrap_or_else(|| raw.store.data_dir.clone());
    if data_dir.as_os_str().is_empty() {
        return Err(invalid("store.data_dir", "must not be empty"));
    }
    let st = &raw.store;
    if !(1..=1024 * 1024).contains(&st.cache_capacity_mb) {
        return Err(invalid(
            "store.cache_capacity_mb",
            format!("expected 1 to 1048576, got {}", st.cache_capacity_mb),
        ));
    }
    if !(1..=86_400).contains(&st.checkpoint_interval_secs) {
        return Err(invalid(
            "store.checkpoint_interval_secs",
            format!("expected 1 to 86400, got {}", st.checkpoint_interval_secs),
        ));
    }
    if !(100..=10_000_000).contains(&st.checkpoint_max_records) {
        return Err(invalid(
            "store.checkpoint_max_records",
            format!(
                "expected 100 to 10000000, got {}",
                st.checkpoint_max_records
            ),
        ));
    }
    if st.ballast_mb > 65_536 {
        return Err(invalid(
            "store.ballast_mb",
            format!("expected 0 to 65536, got {}", st.ballast_mb),
        ));
    }
    if raw.rules.dir.as_os_str().is_empty() {
        return Err(invalid("rules.dir", "must not be empty"));
    }
    let r = &raw.rules;
    for (name, value) in [
        ("max_operations", r.max_operations as usize),
        ("max_call_levels", r.max_call_levels),
        ("max_expr_depth", r.max_expr_depth),
        ("max_string_size", r.max_string_size),
        ("max_array_size", r.max_array_size),
        ("max_map_size", r.max_map_size),
        ("max_call_millis", r.max_call_millis as usize),
    ] {
        if value == 0 {
            return Err(invalid(format!("rules.{name}"), "must be greater than 0"));
        }
    }
    let mut heartbeats: Vec<Heartbeat> = Vec::new();
    for (i, h) in raw.heartbeats.iter().enumerate() {
        let key = |field: &str| format!("heartbeats[{i}].{field}");
        if h.name.trim().is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        if heartbeats.iter().any(|o| o.name == h.name) {
            return Err(invalid(key("name"), format!("{:?} is used twice", h.name)));
        }
        if h.alertname.trim().is_empty() {
            return Err(invalid(key("alertname"), "must not be empty"));
        }
        if h.interval_secs == 0 {
            return Err(invalid(key("interval_secs"), "must be greater than 0"));
        }
        heartbeats.push(Heartbeat {
            name: h.name.clone(),
            alertname: h.alertname.clone(),
            labels: h.labels.clone(),
            interval: std::time::Duration::from_secs(h.interval_secs),
            service: h.service.clone().unwrap_or_else(|| h.name.clone()),
            severity: h.severity.clone(),
        });
    }
    let mut services = BTreeMap::new();
    for (name, s) in &raw.services {
        let impact = match &s.impact {
            None => None,
            Some(text) => Some(
                text.parse::<Level>()
                    .map_err(|e| invalid(format!("services.{name}.impact"), e))?,
            ),
        };
        services.insert(
            name.clone(),
            Service {
                owner: s.owner.clone(),
                tier: s.tier.clone(),
                impact,
            },
        );
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.log.level) {
        return Err(invalid("log.level", format!("not a valid log filter: {e}")));
    }

    Ok(Settings {
        server: ServerSettings {
            listen,
            max_body_bytes: max_body,
            header_timeout,
            body_timeout,
            drain,
            tokens,
        },
        store: StoreSettings {
            cache_capacity_bytes: raw.store.cache_capacity_mb * 1024 * 1024,
            checkpoint_interval_secs: raw.store.checkpoint_interval_secs,
            checkpoint_max_records: raw.store.checkpoint_max_records,
            ballast_bytes: raw.store.ballast_mb * 1024 * 1024,
            backup_dir: match &raw.store.backup_dir {
                Some(d) => d.clone(),
                None => data_dir.parent().unwrap_or(Path::new("")).join("backups"),
            },
            data_dir,
        },
        rules: RulesSettings {
            dir: raw.rules.dir.clone(),
            watch: raw.rules.watch,
            limits: RuleLimits {
                max_operations: r.max_operations,
                max_call_levels: r.max_call_levels,
                max_expr_depth: r.max_expr_depth,
                max_string_size: r.max_string_size,
                max_array_size: r.max_array_size,
                max_map_size: r.max_map_size,
                max_call: std::time::Duration::from_millis(r.max_call_millis),
            },
            services,
        },
        incidents: Policy {
            matrix,
            targets,
            auto_resolve: raw.incidents.auto_resolve,
            reopen_window_secs: raw.incidents.reopen_window_secs,
            flap_threshold: raw.incidents.flap_threshold,
            flap_window_secs: raw.incidents.flap_window_secs,
            change_link_secs: raw.incidents.change_link_secs,
        },
        escalation,
        maintenance,
        webhooks,
        prometheus,
        log_watchers,
        heartbeats,
        sinks,
        routes,
        log: LogSettings {
            level: raw.log.level,
            format: raw.log.format,
        },
    })
}

/// `[[log_watchers]]` validated, patterns compiled.
fn log_watchers(raw: &[RawLogWatcher]) -> Result<Vec<crate::sources::logs::LogWatcher>, Invalid> {
    let mut out: Vec<crate::sources::logs::LogWatcher> = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let key = |field: &str| format!("log_watchers[{i}].{field}");
        if w.name.trim().is_empty() || out.iter().any(|o| o.name == w.name) || w.name.contains('\0')
        {
            return Err(invalid(
                key("name"),
                format!("{:?} is empty or used twice", w.name),
            ));
        }
        if w.paths.is_empty() {
            return Err(invalid(key("paths"), "name at least one file"));
        }
        let mut patterns = Vec::new();
        for (j, p) in w.paths.iter().enumerate() {
            let path = std::path::Path::new(p);
            let (Some(dir), Some(file)) =
                (path.parent(), path.file_name().and_then(|f| f.to_str()))
            else {
                return Err(invalid(
                    format!("log_watchers[{i}].paths[{j}]"),
                    format!("expected a file path, got {p:?}"),
                ));
            };
            let dir_text = dir.to_string_lossy();
            if dir_text.contains(['*', '?', '[', '{']) {
                return Err(invalid(
                    format!("log_watchers[{i}].paths[{j}]"),
                    "only the file name may be a pattern, not the directories",
                ));
            }
            let glob = globset::Glob::new(file).map_err(|e| {
                invalid(
                    format!("log_watchers[{i}].paths[{j}]"),
                    format!("not a pattern: {e}"),
                )
            })?;
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir.to_path_buf()
            };
            patterns.push((dir, file.to_string(), glob.compile_matcher()));
        }
        let regex = |field: &str, re: &str| {
            regex::RegexBuilder::new(re)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| invalid(key(field), format!("not a regular expression: {e}")))
        };
        let matcher = match (&w.match_, &w.script) {
            (Some(m), None) => Some(regex("match", m)?),
            (None, Some(file)) if file.ends_with(".rhai") && !file.contains(['/', '\\']) => None,
            (None, Some(file)) => {
                return Err(invalid(
                    key("script"),
                    format!("expected a file name like auth.rhai, got {file:?}"),
                ))
            }
            _ => {
                return Err(invalid(
                    key("match"),
                    "give exactly one of match and script",
                ))
            }
        };
        let resolve = w
            .resolve_match
            .as_deref()
            .map(|r| regex("resolve_match", r))
            .transpose()?;
        if w.alertname.trim().is_empty() {
            return Err(invalid(key("alertname"), "must not be empty"));
        }
        let threshold = match &w.threshold {
            None => None,
            Some(t) if t.count >= 1 && t.window_secs >= 1 => Some((t.count, t.window_secs)),
            Some(_) => {
                return Err(invalid(
                    key("threshold"),
                    "count and window_secs must be at least 1",
                ))
            }
        };
        let start_at_end = match w.start.as_str() {
            "end" => true,
            "beginning" => false,
            other => {
                return Err(invalid(
                    key("start"),
                    format!("expected end or beginning, got {other:?}"),
                ))
            }
        };
        let by_inode = match w.identify_by.as_str() {
            "checksum" => false,
            "device_inode" => true,
            other => {
                return Err(invalid(
                    key("identify_by"),
                    format!("expected checksum or device_inode, got {other:?}"),
                ))
            }
        };
        if !(128..=16 << 20).contains(&w.max_line_bytes) {
            return Err(invalid(key("max_line_bytes"), "expected 128 to 16777216"));
        }
        out.push(crate::sources::logs::LogWatcher {
            name: w.name.clone(),
            patterns,
            matcher,
            script: w.script.clone(),
            resolve,
            alertname: w.alertname.clone(),
            labels: w.labels.clone(),
            threshold,
            start_at_end,
            by_inode,
            max_line_bytes: w.max_line_bytes,
        });
    }
    Ok(out)
}

/// `[[prometheus]]` validated, secrets read.
fn pollers(raw: &[RawPrometheus]) -> Result<Vec<crate::sources::prometheus::Poller>, Invalid> {
    use crate::sources::prometheus::{Auth, Poller, Query};
    let mut out: Vec<Poller> = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let key = |field: &str| format!("prometheus[{i}].{field}");
        if p.name.trim().is_empty() || out.iter().any(|o| o.name == p.name) {
            return Err(invalid(
                key("name"),
                format!("{:?} is empty or used twice", p.name),
            ));
        }
        let url = p.url.trim_end_matches('/');
        match reqwest::Url::parse(url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(invalid(
                    key("url"),
                    format!(
                        "expected an http(s) URL like http://127.0.0.1:9090, got {:?}",
                        p.url
                    ),
                ))
            }
        }
        if !(1..=86_400).contains(&p.interval_secs) {
            return Err(invalid(key("interval_secs"), "expected 1 to 86400"));
        }
        if !(1..=600).contains(&p.timeout_secs) {
            return Err(invalid(key("timeout_secs"), "expected 1 to 600"));
        }
        let secret_env = |field: &str, var: &str| {
            std::env::var(var)
                .map_err(|_| invalid(key(field), format!("environment variable {var} is not set")))
        };
        let auth = match (
            &p.bearer_token_env,
            &p.bearer_token_file,
            &p.username,
            &p.password_env,
        ) {
            (None, None, None, None) => Auth::None,
            (Some(var), None, None, None) => Auth::Bearer(secret_env("bearer_token_env", var)?),
            (None, Some(file), None, None) => Auth::Bearer(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        invalid(
                            key("bearer_token_file"),
                            format!("cannot read {}: {e}", file.display()),
                        )
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, None, Some(user), Some(var)) => Auth::Basic {
                user: user.clone(),
                password: secret_env("password_env", var)?,
            },
            _ => return Err(invalid(
                key("name"),
                "give one of bearer_token_env, bearer_token_file, or username with password_env",
            )),
        };
        let mut queries: Vec<Query> = Vec::new();
        for (j, q) in p.queries.iter().enumerate() {
            let qkey = |field: &str| format!("prometheus[{i}].queries[{j}].{field}");
            if q.alertname.trim().is_empty() {
                return Err(invalid(qkey("alertname"), "must not be empty"));
            }
            if q.expr.trim().is_empty() {
                return Err(invalid(qkey("expr"), "must not be empty"));
            }
            queries.push(Query {
                alertname: q.alertname.clone(),
                expr: q.expr.clone(),
                for_secs: q.for_secs,
                labels: q.labels.clone(),
                annotations: q.annotations.clone(),
            });
        }
        if !p.alerts && queries.is_empty() {
            return Err(invalid(
                key("alerts"),
                "with alerts = false, give at least one [[prometheus.queries]]",
            ));
        }
        out.push(Poller {
            name: p.name.clone(),
            url: url.to_string(),
            interval: std::time::Duration::from_secs(p.interval_secs),
            timeout: std::time::Duration::from_secs(p.timeout_secs),
            alerts: p.alerts,
            resolve_grace_secs: p.resolve_grace_secs.unwrap_or(3 * p.interval_secs),
            queries,
            auth,
        });
    }
    Ok(out)
}

/// `[[webhooks]]` validated, secrets read.
fn webhooks(raw: &[RawWebhook]) -> Result<Vec<Webhook>, Invalid> {
    let mut out: Vec<Webhook> = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let key = |field: &str| format!("webhooks[{i}].{field}");
        let ok_name = !w.name.is_empty()
            && w.name.len() <= 64
            && w.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok_name {
            return Err(invalid(
                key("name"),
                format!("expected 1 to 64 of a-z, 0-9, - and _, got {:?}", w.name),
            ));
        }
        if ["alertmanager", "jira", "servicenow"].contains(&w.name.as_str())
            || out.iter().any(|o| o.name == w.name)
        {
            return Err(invalid(key("name"), format!("{:?} is taken", w.name)));
        }
        let plain = !w.mapping.is_empty()
            && w.mapping.ends_with(".rhai")
            && !w.mapping.contains(['/', '\\'])
            && !w.mapping.starts_with('.');
        if !plain {
            return Err(invalid(
                key("mapping"),
                format!(
                    "expected a file name like grafana.rhai in the rules' mappings directory, got {:?}",
                    w.mapping
                ),
            ));
        }
        let hmac_secret = match (&w.hmac_secret_env, &w.hmac_secret_file) {
            (None, None) => None,
            (Some(var), None) => Some(
                std::env::var(var)
                    .map_err(|_| {
                        invalid(
                            key("hmac_secret_env"),
                            format!("environment variable {var} is not set"),
                        )
                    })?
                    .into_bytes(),
            ),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        invalid(
                            key("hmac_secret_file"),
                            format!("cannot read {}: {e}", file.display()),
                        )
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .as_bytes()
                    .to_vec(),
            ),
            _ => {
                return Err(invalid(
                    key("hmac_secret_env"),
                    "set at most one of hmac_secret_env and hmac_secret_file",
                ))
            }
        };
        if hmac_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(invalid(
                key(if w.hmac_secret_env.is_some() {
                    "hmac_secret_env"
                } else {
                    "hmac_secret_file"
                }),
                "the HMAC secret must be at least 16 bytes long",
            ));
        }
        if axum::http::HeaderName::from_bytes(w.hmac_header.as_bytes()).is_err() {
            return Err(invalid(
                key("hmac_header"),
                format!("not a header name: {:?}", w.hmac_header),
            ));
        }
        out.push(Webhook {
            name: w.name.clone(),
            mapping: w.mapping.clone(),
            hmac_secret,
            hmac_header: w.hmac_header.to_ascii_lowercase(),
            role: w.role,
        });
    }
    Ok(out)
}

/// `[[maintenance]]` validated.
fn maintenance_windows(
    raw: &[RawMaintenance],
) -> Result<Vec<crate::silences::MaintenanceWindow>, Invalid> {
    use crate::silences::{MaintenanceWindow, Schedule};
    let mut out: Vec<MaintenanceWindow> = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let key = |field: &str| format!("maintenance[{i}].{field}");
        if m.name.trim().is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        if out.iter().any(|o| o.name == m.name) {
            return Err(invalid(key("name"), format!("{:?} is used twice", m.name)));
        }
        let time = |field: &str, v: &str| {
            v.parse::<jiff::Timestamp>().map_err(|e| {
                invalid(
                    key(field),
                    format!("expected an RFC 3339 time like 2026-12-06T02:00:00Z: {e}"),
                )
            })
        };
        let schedule = match (&m.starts_at, &m.ends_at, &m.days, &m.start, m.duration_mins) {
            (Some(a), Some(b), None, None, None) => {
                let (starts_at, ends_at) = (time("starts_at", a)?, time("ends_at", b)?);
                if ends_at <= starts_at {
                    return Err(invalid(key("ends_at"), "must be after starts_at"));
                }
                Schedule::Once { starts_at, ends_at }
            }
            (None, None, Some(days), Some(start), Some(mins)) => {
                if days.is_empty() {
                    return Err(invalid(key("days"), "name at least one day"));
                }
                let start = jiff::civil::Time::strptime("%H:%M", start).map_err(|_| {
                    invalid(key("start"), format!("expected HH:MM (UTC), got {start:?}"))
                })?;
                if !(1..=7 * 24 * 60).contains(&mins) {
                    return Err(invalid(key("duration_mins"), "expected 1 to 10080 minutes"));
                }
                Schedule::Weekly {
                    days: days.clone(),
                    start,
                    duration: jiff::SignedDuration::from_mins(mins as i64),
                }
            }
            _ => {
                return Err(invalid(
                    key("name"),
                    "give either starts_at and ends_at, or days, start and duration_mins",
                ))
            }
        };
        out.push(MaintenanceWindow {
            name: m.name.clone(),
            services: m.services.clone(),
            schedule,
        });
    }
    Ok(out)
}

/// `[priority]`, `[sla.*]` and `[escalation]` validated.
fn service_levels(
    raw: &RawConfig,
) -> Result<
    (
        crate::sla::Matrix,
        crate::sla::Targets,
        crate::sla::Escalation,
    ),
    Invalid,
> {
    use crate::incidents::Priority;
    use crate::sla::{EscalationLevel, Matrix, Target, Targets};
    let mut matrix = Matrix::default();
    for (row, (name, cells)) in [
        ("high", &raw.priority.high),
        ("medium", &raw.priority.medium),
        ("low", &raw.priority.low),
    ]
    .into_iter()
    .enumerate()
    {
        for (col, cell) in cells.iter().enumerate() {
            matrix.0[row][col] = cell
                .parse::<Priority>()
                .map_err(|e| invalid(format!("priority.{name}[{col}]"), e))?;
        }
    }
    let mut targets = Targets::default();
    for (name, t) in &raw.sla {
        let p: Priority = name
            .parse()
            .map_err(|e| invalid(format!("sla.{name}"), e))?;
        let slot = &mut targets.0[p as usize];
        let Target {
            respond_secs,
            resolve_secs,
        } = *slot;
        *slot = Target {
            respond_secs: t.respond_secs.unwrap_or(respond_secs),
            resolve_secs: t.resolve_secs.unwrap_or(resolve_secs),
        };
        if slot.respond_secs == 0 || slot.resolve_secs == 0 {
            let field = if slot.respond_secs == 0 {
                "respond_secs"
            } else {
                "resolve_secs"
            };
            return Err(invalid(
                format!("sla.{name}.{field}"),
                "must be greater than 0",
            ));
        }
        if slot.respond_secs > slot.resolve_secs {
            return Err(invalid(
                format!("sla.{name}.respond_secs"),
                format!(
                    "respond_secs ({}) must not exceed resolve_secs ({})",
                    slot.respond_secs, slot.resolve_secs
                ),
            ));
        }
    }
    let mut levels: Vec<EscalationLevel> = Vec::new();
    for (i, l) in raw.escalation.levels.iter().enumerate() {
        let key = |field: &str| format!("escalation.levels[{i}].{field}");
        if levels
            .last()
            .is_some_and(|prev| prev.after_secs > l.after_secs)
        {
            return Err(invalid(
                key("after_secs"),
                "levels must be in order: after_secs may not be smaller than the level before",
            ));
        }
        if l.notify.is_empty() || l.notify.iter().any(|n| n.trim().is_empty()) {
            return Err(invalid(
                key("notify"),
                "name at least one target, none empty",
            ));
        }
        let mut priorities = Vec::new();
        for (j, p) in l.priorities.iter().enumerate() {
            priorities.push(
                p.parse::<Priority>()
                    .map_err(|e| invalid(format!("escalation.levels[{i}].priorities[{j}]"), e))?,
            );
        }
        levels.push(EscalationLevel {
            after_secs: l.after_secs,
            notify: l.notify.clone(),
            priorities,
        });
    }
    Ok((
        matrix,
        targets,
        crate::sla::Escalation {
            levels,
            breach_notify: raw.escalation.breach_notify.clone(),
        },
    ))
}

/// 1-based line and column of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Finds where a key path such as `server.tokens[0].role` is written in the file:
/// the deepest key of the path that the file has.
fn locate(src: &str, key: &str) -> Option<(usize, usize)> {
    let doc = toml_edit::ImDocument::parse(src).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut span = None;
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((k, item)) = table.get_key_value(name) else {
            break;
        };
        span = k.span().or(span);
        if let (Some(i), toml_edit::Item::ArrayOfTables(array)) = (index, item) {
            let Some(t) = array.get(i) else { break };
            span = t.span().or(span);
            table = t;
            continue;
        }
        if let Some(i) = index {
            match item.as_array().and_then(|a| a.get(i)) {
                Some(v) => {
                    span = v.span().or(span);
                    break;
                }
                None => break,
            }
        }
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    span.map(|s| line_col(src, s.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(Path::new("t.toml"), src, &Overrides::default())
    }

    #[test]
    fn empty_file_gives_defaults() {
        let s = load("").unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:9797");
        assert_eq!(s.server.max_body_bytes, 1 << 20);
        assert_eq!(s.store.data_dir, PathBuf::from("data"));
        assert_eq!(s.rules.dir, PathBuf::from("rules"));
        assert!(s.incidents.auto_resolve);
        assert_eq!(s.incidents.reopen_window_secs, 3600);
        assert_eq!(s.incidents, Policy::default());
        assert!(s.escalation.levels.is_empty());
        assert_eq!(s.log.format, LogFormat::Text);
    }

    #[test]
    fn shipped_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/triaged.toml");
        let s = Settings::load(&path, &Overrides::default()).unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:9797");
        assert_eq!(s.store.data_dir, PathBuf::from("data"));
        assert_eq!(s.rules.dir, PathBuf::from("rules"));
        // The file shows the defaults: both must agree.
        let defaults = load("").unwrap();
        assert_eq!(
            s.store.cache_capacity_bytes,
            defaults.store.cache_capacity_bytes
        );
        assert_eq!(
            s.store.checkpoint_interval_secs,
            defaults.store.checkpoint_interval_secs
        );
        assert_eq!(
            s.store.checkpoint_max_records,
            defaults.store.checkpoint_max_records
        );
        assert_eq!(s.rules.limits, defaults.rules.limits);
        assert_eq!(s.incidents, defaults.incidents);
        assert_eq!(s.escalation, defaults.escalation);
        assert_eq!(s.server.max_body_bytes, defaults.server.max_body_bytes);
        assert_eq!(
            (s.log.level.as_str(), s.log.format),
            (defaults.log.level.as_str(), defaults.log.format)
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_position() {
        let err = load("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert_eq!(err.key, "server.lisen");
        assert_eq!(err.position, Some((3, 1)));
        assert!(
            err.to_string()
                .starts_with("t.toml:3:1: server.lisen: unknown field `lisen`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_section_is_named() {
        let err = load("[servr]\nlisten = 1\n").unwrap_err();
        assert_eq!(err.key, "servr");
        assert_eq!(err.position, Some((1, 2)));
    }

    #[test]
    fn wrong_type_names_key_and_value_position() {
        let err = load("[incidents]\nreopen_window_secs = \"soon\"\n").unwrap_err();
        assert_eq!(err.key, "incidents.reopen_window_secs");
        assert_eq!(err.position, Some((2, 22)));
    }

    #[test]
    fn toml_syntax_error_has_position() {
        let err = load("[server\n").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(1));
    }

    #[test]
    fn invalid_values_are_located() {
        let err = load("[server]\n\nlisten = \"localhost\"\n").unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.position),
            ("server.listen", Some((3, 1)))
        );

        let err = load("[rules]\nmax_operations = 0\n").unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.position),
            ("rules.max_operations", Some((2, 1)))
        );

        let err = load("[log]\nlevel = \"info,[\"\n").unwrap_err();
        assert_eq!(err.key, "log.level");

        let err = load("[store]\n\nballast_mb = 100000\n").unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.position),
            ("store.ballast_mb", Some((3, 1)))
        );
        let s = load("[store]\nballast_mb = 0\n").unwrap();
        assert_eq!(s.store.ballast_bytes, 0);
        assert_eq!(load("").unwrap().store.ballast_bytes, 32 << 20);
    }

    #[test]
    fn sinks_and_routes_are_read_and_checked() {
        std::env::set_var("TRIAGED_TEST_SINK_SECRET", "0123456789abcdef-secret");
        let s = load(
            "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/T1/secret-path\"\n\
             secret_env = \"TRIAGED_TEST_SINK_SECRET\"\nrate_per_sec = 2.5\n\
             [sinks.templates]\ntitle = \"{{ incident.id }}\"\n\
             [[routes]]\nservices = [\"db\"]\npriorities = [\"P1\"]\nevents = [\"opened\"]\n\
             matchers = [\"team=~db|data\"]\nsinks = [\"hook:#db\"]\ncontinue = true\n\
             [[routes]]\nsinks = [\"hook\"]\nquiet = true\n\
             [escalation]\nbreach_notify = [\"hook\"]\n",
        )
        .unwrap();
        assert_eq!(s.sinks.len(), 1);
        let hook = &s.sinks[0];
        assert_eq!((hook.rate_per_sec, hook.burst), (Some(2.5), 5));
        assert_eq!(hook.templates.title, "{{ incident.id }}");
        assert_eq!(hook.retry.max, std::time::Duration::from_secs(300));
        assert!(format!("{hook:?}").contains("[redacted]"));
        assert!(!format!("{hook:?}").contains("0123456789abcdef-secret"));
        assert_eq!(s.routes.routes.len(), 2);
        assert!(s.routes.routes[0].continue_matching && s.routes.routes[1].quiet);
        assert_eq!(s.routes.routes[0].sinks[0].to.as_deref(), Some("#db"));
        let view = s.view().to_string();
        assert!(
            !view.contains("secret-path") && !view.contains("0123456789abcdef"),
            "{view}"
        );
        assert!(view.contains("https://hooks.example.com/…"), "{view}");

        let sink =
            "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n";
        for (src, key) in [
            (
                "[[sinks]]\nname = \"Hook\"\ntype = \"webhook\"\nurl = \"http://x/\"\n".to_string(),
                "sinks[0].name",
            ),
            (
                "[[sinks]]\nname = \"a\"\ntype = \"pager\"\n".to_string(),
                "sinks[0].type",
            ),
            (
                "[[sinks]]\nname = \"a\"\ntype = \"webhook\"\n".to_string(),
                "sinks[0].url",
            ),
            (
                "[[sinks]]\nname = \"a\"\ntype = \"webhook\"\nurl = \"ftp://x/\"\n".to_string(),
                "sinks[0].url",
            ),
            (format!("{sink}{sink}"), "sinks[1].name"),
            (
                format!("{sink}secret_env = \"TRIAGED_TEST_UNSET_VAR\"\n"),
                "sinks[0].secret_env",
            ),
            (
                format!("{sink}retry_initial_secs = 600\n"),
                "sinks[0].retry_initial_secs",
            ),
            (
                format!("{sink}rate_per_sec = 0.0\n"),
                "sinks[0].rate_per_sec",
            ),
            (
                format!("{sink}[sinks.templates]\ntext = \"{{{{ x \"\n"),
                "sinks[0].templates.text",
            ),
            (
                format!("{sink}[[routes]]\nsinks = [\"nope\"]\n"),
                "routes[0].sinks[0]",
            ),
            (format!("{sink}[[routes]]\nsinks = []\n"), "routes[0].sinks"),
            (
                format!("{sink}[[routes]]\nevents = [\"created\"]\nsinks = [\"hook\"]\n"),
                "routes[0].events[0]",
            ),
            (
                format!("{sink}[[routes]]\nmatchers = [\"team\"]\nsinks = [\"hook\"]\n"),
                "routes[0].matchers[0]",
            ),
            (
                format!("{sink}[[routes]]\npriorities = [\"P0\"]\nsinks = [\"hook\"]\n"),
                "routes[0].priorities[0]",
            ),
            (
                format!("{sink}[escalation]\nbreach_notify = [\"pager\"]\n"),
                "escalation.breach_notify[0]",
            ),
            (format!("{sink}channel = \"C1\"\n"), "sinks[0].channel"),
            ("[[sinks]]\nname = \"s\"\ntype = \"slack\"\ntoken_env = \"TRIAGED_TEST_SINK_SECRET\"\n".to_string(), "sinks[0].channel"),
            ("[[sinks]]\nname = \"s\"\ntype = \"slack\"\nchannel = \"C1\"\n".to_string(), "sinks[0].token_env"),
            ("[[sinks]]\nname = \"s\"\ntype = \"slack\"\nchannel = \"C1\"\ntoken_env = \"TRIAGED_TEST_SINK_SECRET\"\nurl = \"http://x/\"\n".to_string(), "sinks[0].url"),
            ("[[sinks]]\nname = \"s\"\ntype = \"slack_webhook\"\n".to_string(), "sinks[0].url_env"),
            ("[[sinks]]\nname = \"m\"\ntype = \"matrix\"\nhomeserver = \"http://x\"\ntoken_env = \"TRIAGED_TEST_SINK_SECRET\"\n".to_string(), "sinks[0].room"),
            ("[[sinks]]\nname = \"m\"\ntype = \"matrix\"\nroom = \"!r\"\ntoken_env = \"TRIAGED_TEST_SINK_SECRET\"\n".to_string(), "sinks[0].homeserver"),
            ("[[sinks]]\nname = \"m\"\ntype = \"matrix\"\nhomeserver = \"http://x\"\nroom = \"!r\"\ntoken_env = \"TRIAGED_TEST_SINK_SECRET\"\nallowed_users = [\"alice\"]\n".to_string(), "sinks[0].allowed_users"),
            ("[[sinks]]\nname = \"m\"\ntype = \"matrix\"\nhomeserver = \"http://x\"\nroom = \"!r\"\ntoken_env = \"TRIAGED_TEST_SINK_SECRET\"\nchannel = \"C1\"\n".to_string(), "sinks[0].channel"),
            ("[[sinks]]\nname = \"s\"\ntype = \"slack_webhook\"\nurl_env = \"TRIAGED_TEST_SINK_SECRET\"\n".to_string(), "sinks[0].url"),
        ] {
            let err = load(&src).unwrap_err();
            assert_eq!(err.key, key, "{src}: {err}");
            assert!(err.position.is_some(), "{src}: {err}");
        }
    }

    #[test]
    fn priority_matrix_targets_and_escalation_are_read_and_checked() {
        use crate::incidents::{Level, Priority};
        let s = load(
            "[priority]\nhigh = [\"P1\", \"P1\", \"P2\"]\n\
             [sla.P1]\nrespond_secs = 60\n\
             [[escalation.levels]]\nafter_secs = 0\nnotify = [\"lead\"]\n\
             [[escalation.levels]]\nafter_secs = 600\nnotify = [\"manager:+4912345\"]\npriorities = [\"P1\"]\n\
             [[sinks]]\nname = \"lead\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/lead\"\n\
             [[sinks]]\nname = \"manager\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/m\"\n",
        )
        .unwrap();
        assert_eq!(
            s.incidents.matrix.priority(Level::High, Level::Low),
            Priority::P2
        );
        assert_eq!(
            s.incidents.matrix.priority(Level::Low, Level::Low),
            Priority::P5,
            "rows not given keep their defaults"
        );
        let p1 = s.incidents.targets.of(Priority::P1);
        assert_eq!((p1.respond_secs, p1.resolve_secs), (60, 4 * 3600));
        assert_eq!(s.escalation.levels.len(), 2);
        assert_eq!(s.escalation.levels[1].priorities, [Priority::P1]);

        for (src, key, line) in [
            (
                "[priority]\nlow = [\"P3\", \"P4\", \"P9\"]\n",
                "priority.low[2]",
                2,
            ),
            ("[sla.P7]\nrespond_secs = 5\n", "sla.P7", 1),
            ("[sla.P2]\nrespond_secs = 0\n", "sla.P2.respond_secs", 2),
            (
                "[sla.P2]\nrespond_secs = 90000\nresolve_secs = 60\n",
                "sla.P2.respond_secs",
                2,
            ),
            (
                "[[escalation.levels]]\nafter_secs = 10\nnotify = [\"a\"]\n\
                 [[escalation.levels]]\nafter_secs = 5\nnotify = [\"b\"]\n",
                "escalation.levels[1].after_secs",
                5,
            ),
            (
                "[[escalation.levels]]\nafter_secs = 10\nnotify = []\n",
                "escalation.levels[0].notify",
                3,
            ),
        ] {
            let err = load(src).unwrap_err();
            assert_eq!(err.key, key, "{src}");
            assert_eq!(err.position.map(|p| p.0), Some(line), "{src}: {err}");
        }
    }

    #[test]
    fn maintenance_windows_are_read_and_checked() {
        let s = load(
            "[[maintenance]]\nname = \"once\"\nservices = [\"db\"]\n\
             starts_at = \"2026-12-06T02:00:00Z\"\nends_at = \"2026-12-06T04:00:00Z\"\n\
             [[maintenance]]\nname = \"weekly\"\ndays = [\"sat\", \"sun\"]\nstart = \"23:30\"\nduration_mins = 90\n",
        )
        .unwrap();
        assert_eq!(s.maintenance.len(), 2);
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
        assert!(s.maintenance[0]
            .covers(Some("db"), at("2026-12-06T03:00:00Z"))
            .is_some());
        assert!(s.maintenance[1]
            .covers(None, at("2026-12-07T00:30:00Z"))
            .is_some());
        for (src, key) in [
            ("[[maintenance]]\nname = \"x\"\n", "maintenance[0].name"),
            (
                "[[maintenance]]\nname = \"x\"\nstarts_at = \"soon\"\nends_at = \"later\"\n",
                "maintenance[0].starts_at",
            ),
            (
                "[[maintenance]]\nname = \"x\"\nstarts_at = \"2026-12-06T04:00:00Z\"\nends_at = \"2026-12-06T02:00:00Z\"\n",
                "maintenance[0].ends_at",
            ),
            (
                "[[maintenance]]\nname = \"x\"\ndays = [\"sat\"]\nstart = \"25:00\"\nduration_mins = 5\n",
                "maintenance[0].start",
            ),
            (
                "[[maintenance]]\nname = \"x\"\ndays = [\"caturday\"]\nstart = \"01:00\"\nduration_mins = 5\n",
                "maintenance[0].days[0]",
            ),
        ] {
            let err = load(src).unwrap_err();
            assert_eq!(err.key, key, "{src}: {err}");
        }
    }

    #[test]
    fn log_watchers_are_read_and_checked() {
        let s = load(
            "[[log_watchers]]\nname = \"ssh\"\npaths = [\"/var/log/auth.log*\"]\nmatch = 'from (?P<ip>\\S+)'\n\
             alertname = \"SshFail\"\nthreshold = { count = 5, window_secs = 60 }\n",
        )
        .unwrap();
        let w = &s.log_watchers[0];
        assert_eq!(w.patterns[0].0, PathBuf::from("/var/log"));
        assert!(w.patterns[0].2.is_match("auth.log.1"));
        assert_eq!((w.threshold, w.start_at_end), (Some((5, 60)), true));
        for (src, key) in [
            ("[[log_watchers]]\nname = \"a\"\npaths = []\nmatch = \"x\"\nalertname = \"A\"\n", "log_watchers[0].paths"),
            ("[[log_watchers]]\nname = \"a\"\npaths = [\"/var/*/x.log\"]\nmatch = \"x\"\nalertname = \"A\"\n", "log_watchers[0].paths[0]"),
            ("[[log_watchers]]\nname = \"a\"\npaths = [\"/x.log\"]\nmatch = \"(\"\nalertname = \"A\"\n", "log_watchers[0].match"),
            ("[[log_watchers]]\nname = \"a\"\npaths = [\"/x.log\"]\nalertname = \"A\"\n", "log_watchers[0].match"),
            ("[[log_watchers]]\nname = \"a\"\npaths = [\"/x.log\"]\nmatch = \"x\"\nalertname = \"A\"\nstart = \"middle\"\n", "log_watchers[0].start"),
            ("[[log_watchers]]\nname = \"a\"\npaths = [\"/x.log\"]\nmatch = \"x\"\nalertname = \"A\"\nthreshold = { count = 0, window_secs = 5 }\n", "log_watchers[0].threshold"),
            ("[[log_watchers]]\nname = \"a\"\npaths = [\"/x.log\"]\nscript = \"../x.rhai\"\nalertname = \"A\"\n", "log_watchers[0].script"),
        ] {
            let err = load(src).unwrap_err();
            assert_eq!(err.key, key, "{src}: {err}");
        }
    }

    #[test]
    fn prometheus_pollers_are_read_and_checked() {
        let s = load(
            "[[prometheus]]\nname = \"main\"\nurl = \"http://127.0.0.1:9090/\"\n\
             [[prometheus.queries]]\nalertname = \"Up\"\nexpr = \"up == 0\"\nfor_secs = 60\n",
        )
        .unwrap();
        let p = &s.prometheus[0];
        assert_eq!(
            (p.url.as_str(), p.interval.as_secs(), p.alerts),
            ("http://127.0.0.1:9090", 30, true)
        );
        assert_eq!(p.queries[0].for_secs, 60);
        for (src, key) in [
            ("[[prometheus]]\nname = \"a\"\nurl = \"ftp://x\"\n", "prometheus[0].url"),
            ("[[prometheus]]\nname = \"a\"\nurl = \"http://x\"\ninterval_secs = 0\n", "prometheus[0].interval_secs"),
            ("[[prometheus]]\nname = \"a\"\nurl = \"http://x\"\nalerts = false\n", "prometheus[0].alerts"),
            (
                "[[prometheus]]\nname = \"a\"\nurl = \"http://x\"\n[[prometheus.queries]]\nalertname = \"\"\nexpr = \"up\"\n",
                "prometheus[0].queries[0].alertname",
            ),
            (
                "[[prometheus]]\nname = \"a\"\nurl = \"http://x\"\nbearer_token_env = \"TRIAGED_TEST_UNSET_VAR\"\n",
                "prometheus[0].bearer_token_env",
            ),
        ] {
            let err = load(src).unwrap_err();
            assert_eq!(err.key, key, "{src}: {err}");
        }
    }

    #[test]
    fn webhooks_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "0123456789abcdef\n").unwrap();
        let s = load(&format!(
            "[[webhooks]]\nname = \"grafana\"\nmapping = \"grafana.rhai\"\nhmac_secret_file = {:?}\n\
             [[webhooks]]\nname = \"pd\"\nmapping = \"pagerduty.rhai\"\nrole = \"ingest\"\n",
            secret.display().to_string()
        ))
        .unwrap();
        assert_eq!(
            s.webhooks[0].hmac_secret.as_deref(),
            Some(&b"0123456789abcdef"[..])
        );
        assert_eq!(s.webhooks[0].hmac_header, "x-hub-signature-256");
        assert!(!format!("{:?}", s.webhooks[0]).contains("0123456789abcdef"));
        assert_eq!(s.webhooks[1].role, Some(Role::Ingest));
        std::fs::write(&secret, "short").unwrap();
        let file = secret.display().to_string();
        for (src, key) in [
            ("[[webhooks]]\nname = \"Bad Name\"\nmapping = \"a.rhai\"\n".to_string(), "webhooks[0].name"),
            ("[[webhooks]]\nname = \"alertmanager\"\nmapping = \"a.rhai\"\n".to_string(), "webhooks[0].name"),
            ("[[webhooks]]\nname = \"a\"\nmapping = \"../x.rhai\"\n".to_string(), "webhooks[0].mapping"),
            ("[[webhooks]]\nname = \"a\"\nmapping = \"x.txt\"\n".to_string(), "webhooks[0].mapping"),
            (format!("[[webhooks]]\nname = \"a\"\nmapping = \"a.rhai\"\nhmac_secret_file = {file:?}\n"), "webhooks[0].hmac_secret_file"),
            ("[[webhooks]]\nname = \"a\"\nmapping = \"a.rhai\"\nhmac_secret_env = \"TRIAGED_TEST_UNSET_VAR\"\n".to_string(), "webhooks[0].hmac_secret_env"),
            ("[[webhooks]]\nname = \"a\"\nmapping = \"a.rhai\"\n[[webhooks]]\nname = \"a\"\nmapping = \"b.rhai\"\n".to_string(), "webhooks[1].name"),
        ] {
            let err = load(&src).unwrap_err();
            assert_eq!(err.key, key, "{src}: {err}");
        }
    }

    #[test]
    fn the_service_catalogue_is_read_and_checked() {
        let s = load(
            "[services.checkout]\nowner = \"team-shop\"\ntier = \"1\"\nimpact = \"high\"\n\
             [services.wiki]\n",
        )
        .unwrap();
        let env = s.rules.env();
        assert_eq!(
            env.services["checkout"],
            Service {
                owner: Some("team-shop".into()),
                tier: Some("1".into()),
                impact: Some(Level::High),
            }
        );
        assert_eq!(env.services["wiki"].impact, None);

        let err = load("[services.checkout]\nowner = \"x\"\nimpact = \"huge\"\n").unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.position),
            ("services.checkout.impact", Some((3, 1)))
        );
        assert!(
            err.message.contains("expected high, medium or low"),
            "{err}"
        );
        let err = load("[services.checkout]\nowners = \"x\"\n").unwrap_err();
        assert_eq!(err.key, "services.checkout.owners");
    }

    #[test]
    fn non_loopback_needs_tokens_or_explicit_opt_out() {
        let err = load("[server]\nlisten = \"0.0.0.0:9797\"\n").unwrap_err();
        assert_eq!(err.key, "server.listen");
        assert!(err.message.contains("allow_unauthenticated"));
        load("[server]\nlisten = \"0.0.0.0:9797\"\nallow_unauthenticated = true\n").unwrap();
        load("[server]\nlisten = \"0.0.0.0:9797\"\n[[server.tokens]]\nname = \"am\"\nrole = \"ingest\"\ntoken = \"0123456789abcdef\"\n").unwrap();

        let overrides = Overrides {
            listen: Some("0.0.0.0:1".into()),
            data_dir: None,
        };
        let err = Settings::from_toml(Path::new("t.toml"), "", &overrides).unwrap_err();
        assert_eq!((err.key.as_str(), err.position), ("--listen", None));
    }

    #[test]
    fn token_errors_point_into_the_array() {
        let src = "[[server.tokens]]\nname = \"a\"\nrole = \"ingest\"\ntoken = \"0123456789abcdef\"\n\
                   [[server.tokens]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"0123456789abcdef\"\n";
        let err = load(src).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.position),
            ("server.tokens[1].name", Some((6, 1)))
        );

        let err = load(
            "[[server.tokens]]\nname = \"a\"\nrole = \"root\"\ntoken = \"0123456789abcdef\"\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "server.tokens[0].role");
        assert_eq!(err.position.map(|p| p.0), Some(3));

        let err = load("[[server.tokens]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"short\"\n")
            .unwrap_err();
        assert!(err.message.contains("16"), "{err}");

        let err = load("[[server.tokens]]\nname = \"a\"\nrole = \"admin\"\ntoken_env = \"TRIAGED_TEST_UNSET_VAR\"\n").unwrap_err();
        assert_eq!(err.key, "server.tokens[0].token_env");
    }
}
