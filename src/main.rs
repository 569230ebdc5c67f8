//! The `triaged` binary: parses the command line, sets up logging, loads the config
//! and turns signals into a cancellation token. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

use triaged::config::{Overrides, Settings};

/// jemalloc instead of glibc's malloc: the ingest path allocates on the HTTP workers
/// and frees on the correlation thread; glibc spent ~40 % of the daemon's CPU in
/// malloc/free under load (perf) and kept freed memory. BENCHMARKS.md has the figures.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: a background thread (one is enough) returns
/// freed pages to the system within a quarter of a second, so RSS follows what is live
/// rather than the peak (after a storm's checkpoints free their overlays: 97 → 77 MB
/// one second after 100k alerts, throughput unchanged, BENCHMARKS.md session 15; at 0
/// every free would return its pages on the hot path, 17 % fewer alerts/s); one arena
/// per CPU instead of jemalloc's default of four per CPU, each thread using the arena
/// of the CPU it runs on (the daemon has ~20 threads, and each arena a thread touches
/// keeps its own partly used pages: idle anonymous RSS 3.4 → 2.8 MB on 2 cores,
/// throughput unchanged within this machine's noise).
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,max_background_threads:1,percpu_arena:percpu,dirty_decay_ms:250,muzzy_decay_ms:0".as_ptr());

#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);
// SAFETY: a pointer to an immutable, 'static, NUL-terminated string.
unsafe impl Sync for MallocConf {}
use triaged::rules::Rules;

#[derive(Parser)]
#[command(
    name = "triaged",
    version,
    about = "Monitoring-to-incident daemon for ISO/IEC 20000-1 service management"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Configuration file.
        #[arg(
            long,
            short,
            default_value = "config/triaged.toml",
            env = "TRIAGED_CONFIG"
        )]
        config: PathBuf,
        /// Listen address (overrides server.listen).
        #[arg(long)]
        listen: Option<String>,
        /// Data directory (overrides store.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Work with correlation rules: compile them, run alerts through them.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Write every record and audit entry as JSON lines, for archiving (with the
    /// daemon stopped).
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Only what happened at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<jiff::Timestamp>,
        /// Only what happened before this time (RFC 3339).
        #[arg(long)]
        to: Option<jiff::Timestamp>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Work with the data directory of a stopped daemon.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Incidents of a running daemon: list, show, and act on them.
    Incidents {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Problems of a running daemon.
    Problems {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ProblemsCommand,
    },
    /// Silences of a running daemon.
    Silences {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: SilencesCommand,
    },
    /// The outbox of a running daemon: deliveries waiting and dead letters.
    Outbox {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Service reports of a running daemon (ISO/IEC 20000-1 9.4).
    Report {
        #[command(flatten)]
        api: ApiArgs,
        /// sla, incidents, problems or changes.
        #[arg(value_parser = ["sla", "incidents", "problems", "changes"])]
        kind: String,
        /// From this time (RFC 3339; default: 30 days before --to).
        #[arg(long)]
        from: Option<jiff::Timestamp>,
        /// Until this time (RFC 3339; default: now).
        #[arg(long)]
        to: Option<jiff::Timestamp>,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
    },
    /// Check the configuration file and the rules it points to, then exit.
    CheckConfig {
        /// Configuration file.
        #[arg(
            long,
            short,
            default_value = "config/triaged.toml",
            env = "TRIAGED_CONFIG"
        )]
        config: PathBuf,
    },
}

/// How the operator commands reach the daemon, and what they print.
#[derive(clap::Args)]
struct ApiArgs {
    /// The daemon's address.
    #[arg(
        long,
        global = true,
        env = "TRIAGED_URL",
        default_value = "http://127.0.0.1:9797"
    )]
    url: String,
    /// An API token (operator or admin role).
    #[arg(long, global = true, env = "TRIAGED_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// table (for people), json (the API's answer) or csv (reports, lists).
    #[arg(long, short, global = true, value_enum, default_value = "table")]
    output: triaged::client::Output,
}

#[derive(Subcommand)]
enum IncidentsCommand {
    /// Incidents newest first.
    List {
        /// new, acknowledged, in_progress, on_hold, resolved, closed, cancelled, open
        /// (any of the first four) or any.
        #[arg(long)]
        status: Option<String>,
        /// P1 … P5.
        #[arg(long)]
        priority: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One incident with its SLA clock and timeline.
    Show { id: String },
    /// Acknowledge (stops escalation; the incident stays open).
    Ack {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Start work (in_progress; from on_hold it resumes the SLA clocks).
    Start {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Put on hold (SLA clocks pause).
    Hold {
        id: String,
        /// awaiting_vendor, awaiting_customer or awaiting_change.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Resolve with a resolution code and note.
    Resolve {
        id: String,
        /// fixed, workaround, no_fault_found, duplicate or false_positive.
        #[arg(long)]
        code: String,
        #[arg(long)]
        note: String,
    },
    /// Close a resolved incident (a major one needs --review).
    Close {
        id: String,
        #[arg(long)]
        note: Option<String>,
        /// The post-incident review.
        #[arg(long)]
        review: Option<String>,
    },
    /// Cancel (false_positive or duplicate).
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Reopen a resolved incident within the reopen window.
    Reopen {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Add a comment to the timeline.
    Comment { id: String, text: String },
    /// Change impact, urgency (priority and SLA targets follow), assignee, owner or
    /// the major flag.
    Update {
        id: String,
        #[arg(long)]
        impact: Option<String>,
        #[arg(long)]
        urgency: Option<String>,
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        major: Option<bool>,
    },
}

#[derive(Subcommand)]
enum ProblemsCommand {
    /// Problems newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One problem with its timeline.
    Show { id: String },
    /// Open a problem by hand.
    Open {
        #[arg(long)]
        title: String,
        /// Correlation key new incidents are matched by (default: the first incident's).
        #[arg(long)]
        key: Option<String>,
        /// Incidents to link (repeat the option).
        #[arg(long = "incident")]
        incidents: Vec<String>,
        #[arg(long)]
        root_cause: Option<String>,
        #[arg(long)]
        workaround: Option<String>,
    },
    /// Record it as a known error (root cause and workaround).
    KnownError {
        id: String,
        #[arg(long)]
        root_cause: Option<String>,
        #[arg(long)]
        workaround: Option<String>,
    },
    /// Resolve (needs a root cause, given now or before).
    Resolve {
        id: String,
        #[arg(long)]
        root_cause: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Close a resolved problem.
    Close {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Reopen a resolved problem.
    Reopen {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Add a comment to the timeline.
    Comment { id: String, text: String },
    /// Link an incident.
    Link { id: String, incident: String },
}

#[derive(Subcommand)]
enum SilencesCommand {
    /// Silence alerts matching every matcher (name=value, name!=value, name=~regex,
    /// name!~regex).
    Add {
        #[arg(required = true)]
        matchers: Vec<String>,
        /// Why.
        #[arg(long)]
        comment: String,
        /// How long, from the start: 2h, 90m, 1d.
        #[arg(long, conflicts_with = "until")]
        duration: Option<String>,
        /// Until this time (RFC 3339).
        #[arg(long)]
        until: Option<jiff::Timestamp>,
        /// Start later than now (RFC 3339).
        #[arg(long)]
        starts: Option<jiff::Timestamp>,
    },
    /// Silences newest first (default: active and pending).
    List {
        /// active, pending, expired or any.
        #[arg(long)]
        state: Option<String>,
    },
    /// Expire a silence now (its creator or an admin).
    Expire { id: String },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Deliveries not delivered yet, oldest first: pending and dead letters.
    List {
        /// pending or dead (default: both).
        #[arg(long, value_parser = ["pending", "dead"])]
        state: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// One event with every delivery of it.
    Show { seq: u64 },
    /// Deliver an event's dead letters again (every dead one, or one sink's).
    Retry {
        seq: u64,
        #[arg(long)]
        sink: Option<String>,
    },
}

/// `triaged store backup`: offline through the store, or `--online` through the daemon.
fn backup_command(
    args: StoreArgs,
    dest: Option<PathBuf>,
    online: bool,
    ep: triaged::client::Endpoint,
) -> ExitCode {
    use triaged::store::BackupReport;
    let report = if online {
        let mut body = serde_json::json!({});
        if let Some(name) = &dest {
            body["name"] = name.display().to_string().into();
        }
        let mut call = triaged::client::Call::post("/api/v1/store/backups", body);
        // A copy of a large store takes a while; the daemon answers when it is done.
        call.timeout = std::time::Duration::from_secs(3600);
        let mut answer = None;
        let code = api_command(async {
            answer = Some(triaged::client::send(&ep, call).await?);
            Ok(String::new())
        });
        match answer.map(serde_json::from_value::<BackupReport>) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                eprintln!("error: unexpected answer from the daemon: {e}");
                return ExitCode::FAILURE;
            }
            None => return code,
        }
    } else {
        let Some(dest) = dest else {
            eprintln!("error: name the directory to create (triaged store backup DEST)");
            return ExitCode::FAILURE;
        };
        let hint = "back it up through the daemon: triaged store backup --online";
        let (store, _) = match open_offline(args, hint) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        match store.backup(&dest) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let counts: Vec<String> = report
        .records
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(tree, n)| format!("{tree} {n}"))
        .collect();
    println!(
        "backup written to {}: {} incidents, {} audit entries (head {}); records: {}",
        report.path.display(),
        report.incidents,
        report.audit_entries,
        report.audit_head,
        counts.join(", ")
    );
    ExitCode::SUCCESS
}

/// Runs an operator command against the daemon.
fn api_command(
    run: impl std::future::Future<Output = Result<String, triaged::client::Failure>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn endpoint(api: &ApiArgs) -> triaged::client::Endpoint {
    triaged::client::Endpoint {
        url: api.url.clone(),
        token: api.token.clone(),
    }
}

async fn incidents(
    ep: triaged::client::Endpoint,
    out: triaged::client::Output,
    command: IncidentsCommand,
) -> Result<String, triaged::client::Failure> {
    use serde_json::json;
    use triaged::client::{self as c, Call};
    let act = |id: &str, action: &str, body: serde_json::Value| {
        Call::post(format!("/api/v1/incidents/{id}/{action}"), body)
    };
    let call = match command {
        IncidentsCommand::List {
            status,
            priority,
            service,
            limit,
        } => {
            let call = Call::get("/api/v1/incidents")
                .with("status", status)
                .with("priority", priority)
                .with("service", service)
                .with("limit", Some(limit));
            return Ok(c::incidents_table(&c::send(&ep, call).await?, out));
        }
        IncidentsCommand::Show { id } => {
            let v = c::send(&ep, Call::get(format!("/api/v1/incidents/{id}"))).await?;
            return Ok(c::incident_detail(&v, out));
        }
        IncidentsCommand::Ack { id, note } => act(&id, "acknowledge", c::note_body(note)),
        IncidentsCommand::Start { id, note } => act(&id, "start", c::note_body(note)),
        IncidentsCommand::Reopen { id, note } => act(&id, "reopen", c::note_body(note)),
        IncidentsCommand::Hold { id, reason, note } => {
            act(&id, "hold", json!({"reason": reason, "note": note}))
        }
        IncidentsCommand::Resolve { id, code, note } => {
            act(&id, "resolve", json!({"code": code, "note": note}))
        }
        IncidentsCommand::Close { id, note, review } => {
            act(&id, "close", json!({"note": note, "review": review}))
        }
        IncidentsCommand::Cancel { id, reason, note } => {
            act(&id, "cancel", json!({"reason": reason, "note": note}))
        }
        IncidentsCommand::Comment { id, text } => act(&id, "comment", json!({ "text": text })),
        IncidentsCommand::Update {
            id,
            impact,
            urgency,
            assignee,
            owner,
            major,
        } => {
            let mut body = serde_json::Map::new();
            for (k, v) in [
                ("impact", impact),
                ("urgency", urgency),
                ("assignee", assignee),
                ("owner", owner),
            ] {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            }
            if let Some(m) = major {
                body.insert("major".into(), json!(m));
            }
            Call {
                method: reqwest::Method::PATCH,
                ..Call::post(format!("/api/v1/incidents/{id}"), body.into())
            }
        }
    };
    Ok(c::acted(&c::send(&ep, call).await?, out))
}

async fn problems(
    ep: triaged::client::Endpoint,
    out: triaged::client::Output,
    command: ProblemsCommand,
) -> Result<String, triaged::client::Failure> {
    use serde_json::json;
    use triaged::client::{self as c, Call};
    let act = |id: &str, action: &str, body: serde_json::Value| {
        Call::post(format!("/api/v1/problems/{id}/{action}"), body)
    };
    let call = match command {
        ProblemsCommand::List { limit } => {
            let call = Call::get("/api/v1/problems").with("limit", Some(limit));
            return Ok(c::problems_table(&c::send(&ep, call).await?, out));
        }
        ProblemsCommand::Show { id } => {
            let v = c::send(&ep, Call::get(format!("/api/v1/problems/{id}"))).await?;
            return Ok(c::problem_detail(&v, out));
        }
        ProblemsCommand::Open {
            title,
            key,
            incidents,
            root_cause,
            workaround,
        } => Call::post(
            "/api/v1/problems",
            json!({"title": title, "key": key, "incidents": incidents,
                   "root_cause": root_cause, "workaround": workaround}),
        ),
        ProblemsCommand::KnownError {
            id,
            root_cause,
            workaround,
        } => act(
            &id,
            "known_error",
            json!({"root_cause": root_cause, "workaround": workaround}),
        ),
        ProblemsCommand::Resolve {
            id,
            root_cause,
            note,
        } => act(
            &id,
            "resolve",
            json!({"root_cause": root_cause, "note": note}),
        ),
        ProblemsCommand::Close { id, note } => act(&id, "close", c::note_body(note)),
        ProblemsCommand::Reopen { id, note } => act(&id, "reopen", c::note_body(note)),
        ProblemsCommand::Comment { id, text } => act(&id, "comment", json!({ "text": text })),
        ProblemsCommand::Link { id, incident } => act(&id, "link", json!({ "incident": incident })),
    };
    Ok(c::acted(&c::send(&ep, call).await?, out))
}

async fn silences(
    ep: triaged::client::Endpoint,
    out: triaged::client::Output,
    command: SilencesCommand,
) -> Result<String, triaged::client::Failure> {
    use serde_json::json;
    use triaged::client::{self as c, Call, Failure};
    match command {
        SilencesCommand::Add {
            matchers,
            comment,
            duration,
            until,
            starts,
        } => {
            let mut parsed = Vec::new();
            for m in &matchers {
                let m = triaged::silences::Matcher::parse(m)
                    .map_err(|e| Failure(format!("matcher {m:?}: {e}")))?;
                parsed.push(json!({"name": m.name, "op": m.op, "value": m.value}));
            }
            let from = starts.unwrap_or_else(jiff::Timestamp::now);
            let ends = c::silence_end(until, duration.as_deref(), from)?;
            let body = json!({"matchers": parsed, "starts_at": starts, "ends_at": ends, "comment": comment});
            let v = c::send(&ep, Call::post("/api/v1/silences", body)).await?;
            Ok(c::silence_line(&v, out))
        }
        SilencesCommand::List { state } => {
            let call = Call::get("/api/v1/silences").with("state", state);
            Ok(c::silences_table(&c::send(&ep, call).await?, out))
        }
        SilencesCommand::Expire { id } => {
            let call = Call {
                method: reqwest::Method::DELETE,
                ..Call::get(format!("/api/v1/silences/{id}"))
            };
            Ok(c::silence_line(&c::send(&ep, call).await?, out))
        }
    }
}

/// Where the rules come from: `--dir`, else the config file's `rules.dir`.
#[derive(clap::Args)]
struct RulesSource {
    /// Rules directory (default: rules.dir of the configuration file).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Configuration file, for rules.dir, the rule limits and the service catalogue.
    #[arg(
        long,
        short,
        default_value = "config/triaged.toml",
        env = "TRIAGED_CONFIG"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Check the data directory (with the daemon stopped): the write-ahead log replays,
    /// every record and index entry decodes and names what exists, the incident counter
    /// is ahead of every stored incident, and the audit chain is intact. Prints what
    /// it read and every problem; exit 1 if there is one.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a consistent copy of the store into a new directory, a data dir
    /// `triaged serve` starts on (with `backup.json` saying what it holds). With the
    /// daemon stopped, DEST is any new directory; with --online the running daemon
    /// writes it, and DEST is its name below the daemon's [store] backup_dir.
    Backup {
        #[command(flatten)]
        store: StoreArgs,
        /// The directory to create (offline), or with --online its name (default
        /// triaged-YYYYMMDDTHHMMSSZ).
        dest: Option<PathBuf>,
        /// Ask the running daemon (POST /api/v1/store/backups, admin token) instead of
        /// opening the store.
        #[arg(long)]
        online: bool,
        /// The daemon's address (with --online).
        #[arg(long, env = "TRIAGED_URL", default_value = "http://127.0.0.1:9797")]
        url: String,
        /// An API token with the admin role (with --online).
        #[arg(long, env = "TRIAGED_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain in the data directory (with the daemon
    /// stopped; while it runs, ask it: GET /api/v1/audit/verify). Names the first bad
    /// entry; exit 1 if there is one.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The store an offline command opens: the config's `store.data_dir`, or `--data-dir`.
#[derive(clap::Args)]
struct StoreArgs {
    /// Configuration file, for store.data_dir.
    #[arg(
        long,
        short,
        default_value = "config/triaged.toml",
        env = "TRIAGED_CONFIG"
    )]
    config: PathBuf,
    /// Data directory (overrides store.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Opens the store of a stopped daemon for an offline command; the error names the
/// data directory, and says so when a running daemon holds it (`online`: what to use
/// instead).
fn open_offline(
    args: StoreArgs,
    online: &str,
) -> Result<(std::sync::Arc<dyn triaged::store::Store>, String), String> {
    let overrides = Overrides {
        listen: None,
        data_dir: args.data_dir,
    };
    let settings = Settings::load(&args.config, &overrides).map_err(|e| e.to_string())?;
    let dir = settings.store.data_dir.display().to_string();
    match triaged::store::open_offline(&settings.store) {
        Ok(s) => Ok((s, dir)),
        Err(e) if e.to_string().contains("could not acquire lock") => Err(format!(
            "the store in {dir} is in use (is triaged running? {online})"
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn export_command(
    args: StoreArgs,
    from: Option<jiff::Timestamp>,
    to: Option<jiff::Timestamp>,
    output: Option<PathBuf>,
) -> ExitCode {
    let (store, dir) = match open_offline(args, "stop it to export") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &output {
        Some(path) => std::fs::File::create(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|f| {
                triaged::export::export(&*store, from, to, &mut std::io::BufWriter::new(f))
                    .map_err(|e| e.to_string())
            }),
        None => triaged::export::export(
            &*store,
            from,
            to,
            &mut std::io::BufWriter::new(std::io::stdout().lock()),
        )
        .map_err(|e| e.to_string()),
    };
    match result {
        Ok(c) => {
            eprintln!(
                "{dir}: exported {} incidents, {} problems, {} changes, {} alerts, {} silences, {} outbox events, {} audit entries",
                c.incidents, c.problems, c.changes, c.alerts, c.silences, c.outbox, c.audit
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn store_command(command: StoreCommand) -> ExitCode {
    let args = match command {
        StoreCommand::Verify { store } => store,
        StoreCommand::Backup {
            store,
            dest,
            online,
            url,
            token,
        } => {
            let ep = triaged::client::Endpoint { url, token };
            return backup_command(store, dest, online, ep);
        }
    };
    let (store, dir) = match open_offline(args, "stop it to verify its store") {
        Ok(s) => s,
        Err(e) => {
            // A log that does not replay or a database sled cannot open: the message
            // names the file (and the byte, for the log).
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scan = match store.scan() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {dir}: cannot read the store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut problems = scan.problems;
    match triaged::store::verify_audit(&*store) {
        Ok(v) => match v.first_bad {
            None => println!("{dir}: audit log intact: {} entries", v.checked),
            Some(bad) => problems.push(format!(
                "audit: damaged at entry {}: {} ({} entries before it are intact)",
                bad.seq, bad.reason, v.checked
            )),
        },
        Err(e) => problems.push(format!("audit: cannot be read: {e}")),
    }
    let counts: Vec<String> = scan
        .records
        .iter()
        .map(|(tree, n)| format!("{tree} {n}"))
        .collect();
    println!("{dir}: records read: {}", counts.join(", "));
    if problems.is_empty() {
        println!("{dir}: store intact");
        return ExitCode::SUCCESS;
    }
    for p in &problems {
        eprintln!("problem: {p}");
    }
    eprintln!("error: {dir}: {} problem(s) found", problems.len());
    ExitCode::FAILURE
}

fn audit_command(command: AuditCommand) -> ExitCode {
    let AuditCommand::Verify { store: args } = command;
    let (store, dir) = match open_offline(args, "ask it: GET /api/v1/audit/verify") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match triaged::store::verify_audit(&*store) {
        Ok(v) => match v.first_bad {
            None => {
                let head = store.audit_head().map(|h| h.1).unwrap_or_default();
                println!(
                    "{dir}: audit log intact: {} entries, head {head}",
                    v.checked
                );
                ExitCode::SUCCESS
            }
            Some(bad) => {
                eprintln!(
                    "error: {dir}: audit log damaged at entry {}: {} ({} entries before it are intact)",
                    bad.seq, bad.reason, v.checked
                );
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {dir}: cannot read the audit log: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Compile every rule file; exit 1 with file:line:column on the first error.
    Check {
        #[command(flatten)]
        source: RulesSource,
    },
    /// Run the fixtures in <dir>/tests/*.toml: expected decisions for single alerts and
    /// expected incidents after sequences of alerts; exit 1 on any failure.
    Test {
        #[command(flatten)]
        source: RulesSource,
    },
    /// Run the alerts of a JSON file (an Alertmanager payload or one alert) through
    /// the rules and print each decision and the file and hook that made it.
    Eval {
        /// JSON file with the alert(s).
        alert: PathBuf,
        #[command(flatten)]
        source: RulesSource,
    },
}

impl RulesSource {
    /// The directory and environment (limits, services) to use. Without `--dir` the
    /// config file must load; with it, a config file that does not exist is not
    /// needed (default limits, no services).
    fn resolve(&self) -> Result<(PathBuf, Settings), String> {
        let settings = match (&self.dir, self.config.exists()) {
            // Only --dir: the built-in defaults for everything else.
            (Some(_), false) => Settings::from_toml(
                std::path::Path::new("(defaults)"),
                "",
                &Overrides::default(),
            ),
            _ => Settings::load(&self.config, &Overrides::default()),
        }
        .map_err(|e| e.to_string())?;
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| settings.rules.dir.clone());
        Ok((dir, settings))
    }
}

fn rules_command(command: RulesCommand) -> ExitCode {
    let result = match &command {
        RulesCommand::Check { source } => source
            .resolve()
            .and_then(|(dir, s)| triaged::rules::tool::check(&dir, &s.rules.env())),
        RulesCommand::Eval { alert, source } => source
            .resolve()
            .and_then(|(dir, s)| triaged::rules::tool::eval(&dir, &s.rules.env(), alert)),
        RulesCommand::Test { source } => source.resolve().and_then(|(dir, s)| {
            let report = triaged::rules::fixtures::run(&dir, &s.rules.env(), s.incidents)?;
            println!("{}", report.text);
            match report.failed {
                0 => Ok(String::new()),
                n => Err(format!("{n} fixture(s) failed")),
            }
        }),
    };
    match result {
        Ok(report) => {
            if !report.is_empty() {
                println!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Incidents { api, command } => {
            let (ep, out) = (endpoint(&api), api.output);
            api_command(incidents(ep, out, command))
        }
        Command::Problems { api, command } => {
            let (ep, out) = (endpoint(&api), api.output);
            api_command(problems(ep, out, command))
        }
        Command::Silences { api, command } => {
            let (ep, out) = (endpoint(&api), api.output);
            api_command(silences(ep, out, command))
        }
        Command::Outbox { api, command } => {
            let (ep, out) = (endpoint(&api), api.output);
            api_command(async move {
                use triaged::client::{self as c, Call};
                match command {
                    OutboxCommand::List { state, limit } => {
                        let call = Call::get("/api/v1/outbox")
                            .with("state", state)
                            .with("limit", limit);
                        Ok(c::outbox_table(&c::send(&ep, call).await?, out))
                    }
                    OutboxCommand::Show { seq } => {
                        let call = Call::get(format!("/api/v1/outbox/{seq}"));
                        Ok(c::outbox_event(&c::send(&ep, call).await?, out))
                    }
                    OutboxCommand::Retry { seq, sink } => {
                        let body = match sink {
                            Some(s) => serde_json::json!({ "sink": s }),
                            None => serde_json::json!({}),
                        };
                        let call = Call::post(format!("/api/v1/outbox/{seq}/retry"), body);
                        Ok(c::outbox_retried(&c::send(&ep, call).await?, out))
                    }
                }
            })
        }
        Command::Report {
            api,
            kind,
            from,
            to,
            service,
        } => {
            let (ep, out) = (endpoint(&api), api.output);
            api_command(async move {
                use triaged::client::{self as c, Call};
                let call = Call::get(format!("/api/v1/reports/{kind}"))
                    .with("from", from)
                    .with("to", to)
                    .with("service", service);
                Ok(c::report(&kind, &c::send(&ep, call).await?, out))
            })
        }
        Command::Rules { command } => rules_command(command),
        Command::Audit { command } => audit_command(command),
        Command::Store { command } => store_command(command),
        Command::Export {
            store,
            from,
            to,
            output,
        } => export_command(store, from, to, output),
        Command::Serve {
            config,
            listen,
            data_dir,
        } => serve(config, Overrides { listen, data_dir }),
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let settings = match Settings::load(path, &Overrides::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checked = Rules::load(&settings.rules.dir, &settings.rules.env())
        .and_then(|rules| triaged::sources::webhooks::WebhookSet::load(&settings).map(|_| rules));
    match checked {
        Ok(rules) => {
            println!(
                "{}: ok ({} rule script(s) in {})",
                path.display(),
                rules.script_names().len(),
                settings.rules.dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: PathBuf, overrides: Overrides) -> ExitCode {
    let settings = match Settings::load(&path, &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    triaged::telemetry::init_logging(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Installed before anything starts, so no signal can arrive unhandled.
        let term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        let hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(term, int, shutdown.clone()));
        let daemon = triaged::app::Daemon::start(settings).await?;
        tokio::spawn(hangups(hup, path, overrides, daemon.reloader()));
        daemon.serve(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "triaged stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGHUP reloads the configuration file and the rules; a file that does not load
/// leaves the running configuration in force.
async fn hangups(
    mut hup: Signal,
    path: PathBuf,
    overrides: Overrides,
    reloader: triaged::app::Reloader,
) {
    while hup.recv().await.is_some() {
        tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration and rules");
        triaged::systemd::reloading();
        let (path, overrides, reloader) = (path.clone(), overrides.clone(), reloader.clone());
        let reloaded =
            tokio::task::spawn_blocking(move || match Settings::load(&path, &overrides) {
                Ok(settings) => match reloader.apply(settings) {
                    Ok(()) => "configuration reloaded".to_string(),
                    Err(e) => {
                        reloader.failed(&format!("{e:#}"));
                        format!("reload failed, the running configuration stays: {e:#}")
                    }
                },
                Err(e) => {
                    reloader.failed(&e);
                    format!("reload failed, the running configuration stays: {e}")
                }
            })
            .await;
        // Serving either way: the old configuration stays in force when the new one fails.
        match reloaded {
            Ok(status) => triaged::systemd::ready(&status),
            Err(e) => {
                tracing::error!(error = %e, "the configuration reload task failed");
                triaged::systemd::ready("reload failed");
            }
        }
    }
}

/// SIGINT or SIGTERM starts a graceful shutdown; a second one exits at once.
async fn signals(mut term: Signal, mut int: Signal, shutdown: CancellationToken) {
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "graceful shutdown requested");
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second signal: exiting without draining");
    std::process::exit(130);
}
