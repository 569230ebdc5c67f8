//! Wiring: opens the store, loads the rules, starts correlation, binds HTTP, serves
//! until the shutdown token fires, then drains in order.
//!
//! Knows nothing of signals or the command line: `main` turns those into a
//! [`CancellationToken`], so tests embed the whole daemon. Shutdown order: stop
//! accepting and finish in-flight requests, let the correlation task drain its queue
//! and checkpoint the store, return.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::correlation::{self, Correlator};
use crate::http::{self, Shared};
use crate::rules::Rules;
use crate::store::{self, Store};
use crate::telemetry::Metrics;

/// Requests that may wait for correlation before senders are held back.
const QUEUE_CAPACITY: usize = 1024;

/// A daemon with its store open, rules loaded and socket bound, not yet serving.
pub struct Daemon {
    listener: TcpListener,
    state: http::AppState,
    correlation_finished: oneshot::Receiver<()>,
}

impl Daemon {
    /// Everything that can fail at start happens here, before the first request.
    pub async fn start(settings: Settings) -> anyhow::Result<Daemon> {
        // Rules first: a broken rule stops the start before anything is created.
        let rules = Rules::load(&settings.rules.dir, &settings.rules.limits)?;
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
        let correlator = Correlator {
            store: store.clone(),
            rules: Arc::new(rules),
            policy: settings.incidents,
            metrics: metrics.clone(),
        };
        let (queue, correlation_finished) = correlation::start(correlator, QUEUE_CAPACITY)
            .context("cannot start the correlation thread")?;
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        let state = Arc::new(Shared {
            store,
            queue,
            metrics,
            tokens: settings.server.tokens.clone(),
            max_body_bytes: settings.server.max_body_bytes,
            ready: AtomicBool::new(false),
        });
        Ok(Daemon {
            listener,
            state,
            correlation_finished,
        })
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
        self.state.set_ready(true);
        tracing::info!(%addr, "listening");
        let state = self.state.clone();
        let stopping = shutdown.clone();
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                stopping.cancelled().await;
                state.set_ready(false);
                tracing::info!("shutting down: finishing in-flight requests");
            })
            .await;
        // Dropping the last queue handle lets correlation drain, checkpoint and stop.
        drop(self.state);
        let _ = self.correlation_finished.await;
        tracing::info!("stopped");
        served.context("HTTP server failed")
    }
}

/// Starts the daemon and serves until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    Daemon::start(settings).await?.serve(shutdown).await
}
