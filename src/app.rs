//! Wiring: opens the store, loads the rules, starts correlation, binds HTTP, serves
//! until the shutdown token fires, then drains in order.
//!
//! Knows nothing of signals or the command line: `main` turns those into a
//! [`CancellationToken`], so tests embed the whole daemon. Shutdown order: stop
//! accepting and finish in-flight requests, let the correlation task drain its queue
//! and checkpoint the store, return.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::correlation::{self, Correlator};
use crate::heartbeats::Heartbeats;
use crate::http::{self, Shared};
use crate::rules::{RuleSet, Rules, RulesWatcher, Trigger};
use crate::store::{self, Store};
use crate::telemetry::Metrics;

/// Requests that may wait for correlation before senders are held back.
const QUEUE_CAPACITY: usize = 1024;

/// A daemon with its store open, rules loaded and socket bound, not yet serving.
pub struct Daemon {
    listener: TcpListener,
    http_limits: http::serve::Limits,
    state: http::AppState,
    correlation_finished: oneshot::Receiver<()>,
    reloader: Reloader,
    heartbeats: Arc<Heartbeats>,
    /// Flap detection on: correlation needs ticks to settle flapping incidents.
    flap_detection: bool,
    /// Correlation's earliest SLA deadline (Unix ns): a tick is due then.
    next_due: Arc<AtomicI64>,
    /// `[[prometheus]]` pollers, each resumed from what the store has firing from it.
    pollers: Vec<(
        crate::sources::prometheus::Poller,
        crate::sources::prometheus::Tracker,
    )>,
    /// `[[log_watchers]]`, each resumed from its stored read positions.
    tailers: Vec<crate::sources::logs::Tailer>,
    /// Stops the outbox worker (after HTTP and the sources, before correlation).
    outbox_stop: CancellationToken,
    outbox_tasks: tokio_util::task::TaskTracker,
}

/// Applies a reloaded configuration to a running daemon (SIGHUP). Clone it freely.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<ReloaderInner>,
}

/// Only what a reload changes: holding the HTTP state here would keep the
/// correlation queue open after shutdown.
struct ReloaderInner {
    rules: Arc<RuleSet>,
    tokens: Arc<std::sync::RwLock<Vec<crate::config::Token>>>,
    metrics: Arc<Metrics>,
    /// What the daemon started with, to name the settings a reload cannot change.
    started: Settings,
    /// The named webhooks the HTTP side serves.
    webhooks: Arc<std::sync::RwLock<Arc<crate::sources::webhooks::WebhookSet>>>,
    /// The routes correlation reads.
    routes: Arc<crate::outbox::routing::LiveRoutes>,
    /// The view `GET /api/v1/config` shows: the started settings with what reloads
    /// changed (rules, tokens).
    config: Arc<std::sync::RwLock<serde_json::Value>>,
    watcher: Mutex<Option<RulesWatcher>>,
}

impl Reloader {
    /// Applies what can change while running: the rules (directory, limits, service
    /// catalogue, watching)
    /// and the API tokens. The rules are swapped only if all of them compile; the
    /// tokens only then too, so a reload is all or nothing. Settings that need a
    /// restart (listen address, store, log, incident policy, heartbeats) are logged if
    /// changed.
    pub fn apply(&self, new: Settings) -> anyhow::Result<()> {
        let inner = &*self.inner;
        let rules = &inner.rules;
        let old_dir = rules.dir();
        // Mappings compile before anything is swapped: a broken one changes nothing.
        let webhooks = crate::sources::webhooks::WebhookSet::load(&new)?;
        rules.reconfigure(&new.rules.dir, new.rules.env(), Trigger::Sighup)?;
        *inner.webhooks.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(webhooks);
        *inner.tokens.write().unwrap_or_else(|p| p.into_inner()) = new.server.tokens.clone();
        inner.routes.set(new.routes.clone());
        {
            let mut view = inner.config.write().unwrap_or_else(|p| p.into_inner());
            view["rules"] = crate::config::rules_view(&new.rules);
            view["tokens"] = crate::config::tokens_view(&new.server.tokens);
            view["routes"] = new.view()["routes"].clone();
        }
        let mut watcher = inner.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if !new.rules.watch {
            *watcher = None;
        } else if watcher.is_none() || old_dir != new.rules.dir {
            *watcher = None;
            *watcher = Some(RulesWatcher::start(rules.clone())?);
        }
        let s = &inner.started;
        let mut restart = Vec::new();
        if s.server.listen != new.server.listen {
            restart.push("server.listen");
        }
        if s.server.max_body_bytes != new.server.max_body_bytes {
            restart.push("server.max_body_bytes");
        }
        if (
            s.server.header_timeout,
            s.server.body_timeout,
            s.server.drain,
        ) != (
            new.server.header_timeout,
            new.server.body_timeout,
            new.server.drain,
        ) {
            restart.push("server timeouts");
        }
        if s.store.data_dir != new.store.data_dir
            || s.store.cache_capacity_bytes != new.store.cache_capacity_bytes
            || s.store.checkpoint_interval_secs != new.store.checkpoint_interval_secs
            || s.store.checkpoint_max_records != new.store.checkpoint_max_records
        {
            restart.push("store");
        }
        if s.incidents != new.incidents {
            restart.push("incidents");
        }
        if s.heartbeats != new.heartbeats {
            restart.push("heartbeats");
        }
        if s.escalation != new.escalation {
            restart.push("escalation");
        }
        if s.maintenance != new.maintenance {
            restart.push("maintenance");
        }
        if s.prometheus != new.prometheus {
            restart.push("prometheus");
        }
        if s.log_watchers != new.log_watchers {
            restart.push("log_watchers");
        }
        if s.sinks != new.sinks {
            restart.push("sinks");
        }
        if format!("{:?}", s.log) != format!("{:?}", new.log) {
            restart.push("log");
        }
        if !restart.is_empty() {
            tracing::warn!(
                sections = ?restart,
                "configuration reloaded; these settings changed and take effect at the next restart"
            );
        }
        inner
            .metrics
            .config_reloads
            .with_label_values(&["success"])
            .inc();
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// Records a reload that failed before `apply` (an unreadable or invalid file).
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.inner
            .metrics
            .config_reloads
            .with_label_values(&["failure"])
            .inc();
        tracing::error!(error = %error, "configuration not reloaded; the running one stays in force");
    }
}

impl Daemon {
    /// Everything that can fail at start happens here, before the first request.
    pub async fn start(settings: Settings) -> anyhow::Result<Daemon> {
        // Rules and mappings first: a broken one stops the start before anything is
        // created.
        let rules = Rules::load(&settings.rules.dir, &settings.rules.env())?;
        let webhooks = Arc::new(std::sync::RwLock::new(Arc::new(
            crate::sources::webhooks::WebhookSet::load(&settings)?,
        )));
        let scripts = Arc::new(crate::sources::logs::LineScripts::load(&settings)?);
        let store_settings = settings.store.clone();
        let store: Arc<dyn Store> =
            tokio::task::spawn_blocking(move || store::open(&store_settings))
                .await
                .context("store open task failed")??;
        let counts = store.stats()?;
        tracing::info!(
            data_dir = %settings.store.data_dir.display(),
            incidents = counts.incidents,
            audit_entries = counts.audit_entries,
            rules = ?rules.script_names(),
            "store open, rules loaded"
        );
        let metrics = Arc::new(Metrics::new());
        let rules = Arc::new(RuleSet::new(
            rules,
            &settings.rules.dir,
            settings.rules.env(),
            metrics.rules_reloads.clone(),
        ));
        let watcher = if settings.rules.watch {
            Some(RulesWatcher::start(rules.clone()).with_context(|| {
                format!(
                    "cannot watch the rules directory {}",
                    settings.rules.dir.display()
                )
            })?)
        } else {
            None
        };
        let heartbeats = Arc::new(Heartbeats::new(
            settings.heartbeats.clone(),
            jiff::Timestamp::now(),
        ));
        {
            let (heartbeats, store) = (heartbeats.clone(), store.clone());
            tokio::task::spawn_blocking(move || heartbeats.restore(&*store))
                .await
                .context("heartbeat restore task failed")??;
        }
        let silences = {
            let store = store.clone();
            let all = tokio::task::spawn_blocking(move || store.silences())
                .await
                .context("silence load task failed")??;
            let now = jiff::Timestamp::now();
            Arc::new(crate::silences::SilenceSet::new(
                all.into_iter()
                    .filter(|s| s.state(now) != crate::silences::SilenceState::Expired)
                    .collect(),
            ))
        };
        let mut pollers = Vec::new();
        for p in &settings.prometheus {
            let (store, name) = (store.clone(), p.name.clone());
            let active = tokio::task::spawn_blocking(move || {
                crate::sources::prometheus::stored_active(&*store, &name)
            })
            .await
            .context("poller resume task failed")??;
            pollers.push((
                p.clone(),
                crate::sources::prometheus::Tracker::resume(active, p.resolve_grace_secs),
            ));
        }
        let mut tailers = Vec::new();
        for w in &settings.log_watchers {
            let (store, name) = (store.clone(), w.name.clone());
            let offsets = tokio::task::spawn_blocking(move || store.log_offsets(&name))
                .await
                .context("log watcher resume task failed")??;
            tailers.push(crate::sources::logs::Tailer::new(
                w.clone(),
                offsets,
                Some(scripts.clone()),
            ));
        }
        let next_due = Arc::new(AtomicI64::new(i64::MAX));
        let routes = Arc::new(crate::outbox::routing::LiveRoutes::new(
            settings.routes.clone(),
        ));
        let outbox_wake = Arc::new(tokio::sync::Notify::new());
        let correlator = Correlator {
            store: store.clone(),
            rules: rules.clone(),
            policy: settings.incidents,
            metrics: metrics.clone(),
            heartbeats: heartbeats.clone(),
            escalation: settings.escalation.clone(),
            next_due: next_due.clone(),
            silences: silences.clone(),
            maintenance: settings.maintenance.clone(),
            routes: routes.clone(),
            outbox_wake: outbox_wake.clone(),
        };
        let (queue, correlation_finished) = correlation::start(correlator, QUEUE_CAPACITY)
            .context("cannot start the correlation thread")?;
        let tokens = Arc::new(std::sync::RwLock::new(settings.server.tokens.clone()));
        let config = Arc::new(std::sync::RwLock::new(settings.view()));
        let http_limits = http::serve::Limits {
            header_timeout: settings.server.header_timeout,
            drain: settings.server.drain,
        };
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        // After the socket is bound, so that a failed start leaves nothing running.
        let outbox_stop = CancellationToken::new();
        let outbox_tasks = tokio_util::task::TaskTracker::new();
        let outbox = crate::outbox::worker::start(
            store.clone(),
            queue.clone(),
            &settings.sinks,
            metrics.clone(),
            outbox_wake,
            outbox_stop.clone(),
            &outbox_tasks,
        )
        .map_err(anyhow::Error::msg)?;
        for s in &settings.sinks {
            if let crate::sinks::Kind::Redmine(r) = &s.kind {
                outbox_tasks.spawn(crate::sinks::redmine::poll(
                    s.name.clone(),
                    r.clone(),
                    store.clone(),
                    queue.clone(),
                    outbox_stop.clone(),
                ));
            }
            if let crate::sinks::Kind::Matrix(m) = &s.kind {
                if !m.allowed_users.is_empty() {
                    outbox_tasks.spawn(crate::sinks::matrix::listen(
                        s.name.clone(),
                        m.clone(),
                        queue.clone(),
                        outbox_stop.clone(),
                    ));
                }
            }
        }
        let state = Arc::new(Shared {
            store,
            queue,
            outbox,
            slack_apps: http::SlackApps::new(&settings.sinks),
            tickets: http::TicketSinks::new(&settings.sinks),
            metrics,
            tokens: tokens.clone(),
            rules: rules.clone(),
            changes_lock: Arc::default(),
            silences,
            silences_lock: Arc::default(),
            config: config.clone(),
            webhooks: webhooks.clone(),
            stale_sources: Arc::default(),
            max_body_bytes: settings.server.max_body_bytes,
            body_timeout: settings.server.body_timeout,
            ready: AtomicBool::new(false),
            backup_dir: settings.store.backup_dir.clone(),
        });
        let flap_detection = settings.incidents.flap_threshold > 0;
        let reloader = Reloader {
            inner: Arc::new(ReloaderInner {
                rules,
                tokens,
                metrics: state.metrics.clone(),
                started: settings,
                config,
                webhooks,
                routes,
                watcher: Mutex::new(watcher),
            }),
        };
        Ok(Daemon {
            listener,
            http_limits,
            state,
            correlation_finished,
            reloader,
            heartbeats,
            flap_detection,
            next_due,
            pollers,
            tailers,
            outbox_stop,
            outbox_tasks,
        })
    }

    /// The handle that applies a reloaded configuration (SIGHUP in `main`).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` fires, then drains and returns.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let router = http::router(self.state.clone());
        for (name, missing) in self.heartbeats.states() {
            self.state
                .metrics
                .heartbeats_missing
                .with_label_values(&[&name])
                .set(i64::from(missing));
        }
        let beating = tokio::spawn(timers(
            self.heartbeats.clone(),
            self.state.metrics.clone(),
            self.flap_detection,
            self.next_due.clone(),
            self.state.queue.clone(),
            shutdown.clone(),
        ));
        let mut polling = Vec::new();
        for (poller, tracker) in self.pollers {
            let report = crate::sources::prometheus::Reporting {
                metrics: self.state.metrics.clone(),
                stale: self.state.stale_sources.clone(),
            };
            polling.push(tokio::spawn(crate::sources::prometheus::run(
                poller,
                tracker,
                self.state.queue.clone(),
                report,
                shutdown.clone(),
            )));
        }
        for tailer in self.tailers {
            polling.push(tokio::spawn(crate::sources::logs::run(
                tailer,
                self.state.queue.clone(),
                self.state.metrics.clone(),
                shutdown.clone(),
            )));
        }
        self.state.set_ready(true);
        tracing::info!(%addr, "listening");
        crate::systemd::ready(&format!("listening on {addr}"));
        let watchdog = crate::systemd::watchdog_interval().map(|interval| {
            let (queue, store) = (self.state.queue.clone(), self.state.store.clone());
            tokio::spawn(crate::systemd::watchdog(
                interval,
                move || {
                    let (queue, store) = (queue.clone(), store.clone());
                    async move {
                        // Through correlation (an empty submission), then the store.
                        queue.submit(Vec::new()).await.map_err(|e| e.0)?;
                        let stats = tokio::task::spawn_blocking(move || store.stats())
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| e.to_string())?;
                        match stats.failed {
                            Some(why) => Err(format!("the store failed: {why}")),
                            None => Ok(()),
                        }
                    }
                },
                shutdown.clone(),
            ))
        });
        let state = self.state.clone();
        let stopping = shutdown.clone();
        http::serve::serve(self.listener, router, self.http_limits, async move {
            stopping.cancelled().await;
            state.set_ready(false);
            crate::systemd::stopping();
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await;
        if let Some(w) = watchdog {
            let _ = w.await;
        }
        let _ = beating.await;
        for p in polling {
            let _ = p.await;
        }
        // The outbox worker records its last attempts through correlation, so it
        // stops first (attempts in flight get a deadline; the rest stays pending).
        self.outbox_stop.cancel();
        self.outbox_tasks.close();
        self.outbox_tasks.wait().await;
        // Dropping the last queue handle lets correlation drain, checkpoint and stop.
        *self
            .reloader
            .inner
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        drop(self.reloader);
        drop(self.state);
        let _ = self.correlation_finished.await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Seconds between the empty submissions that let correlation settle flapping
/// incidents when no alert arrives.
const SETTLE_TICK_SECS: u64 = 5;

/// The daemon's clock, until `shutdown` fires: every second, submits what the
/// heartbeats have due (a silent one's alert, or its resolution; a refused submission
/// is retried next time), and an empty submission (a tick) when an SLA clock has
/// something to record; every few seconds, while an incident flaps, a tick so that
/// correlation settles it.
async fn timers(
    heartbeats: Arc<Heartbeats>,
    metrics: Arc<Metrics>,
    flap_detection: bool,
    next_due: Arc<AtomicI64>,
    queue: correlation::Queue,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seconds: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        seconds += 1;
        // Only while something flaps (correlation keeps the gauge current), or when a
        // deadline has passed.
        let settle = flap_detection
            && seconds % SETTLE_TICK_SECS == 0
            && metrics.incidents_flapping.get() > 0;
        let now_ns = i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX);
        if settle || now_ns > next_due.load(Ordering::SeqCst) {
            if let Err(e) = queue.submit(Vec::new()).await {
                tracing::debug!(error = %e.0, "settle tick not processed");
            }
        }
        let due = heartbeats.due(jiff::Timestamp::now());
        if due.is_empty() {
            continue;
        }
        for d in &due {
            tracing::warn!(
                heartbeat = d.alert.label("heartbeat").unwrap_or(""),
                status = d.alert.status.as_str(),
                "heartbeat {}",
                if d.alert.status == crate::alerts::AlertStatus::Firing {
                    "missing"
                } else {
                    "back"
                }
            );
        }
        let alerts = due.iter().map(|d| d.alert.clone()).collect();
        match queue.submit(alerts).await {
            Ok(()) => {
                heartbeats.settle(&due);
                for (name, missing) in heartbeats.states() {
                    metrics
                        .heartbeats_missing
                        .with_label_values(&[&name])
                        .set(i64::from(missing));
                }
            }
            Err(e) => tracing::error!(error = %e.0, "heartbeat alert not stored; retrying"),
        }
    }
}

/// Starts the daemon and serves until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    Daemon::start(settings).await?.serve(shutdown).await
}
