//! systemd's notify protocol (`sd_notify(3)`) for `Type=notify` (systemd/triaged.service):
//! `READY=1` once the store is open, the rules loaded and the socket bound;
//! `RELOADING=1` with `MONOTONIC_USEC` before a SIGHUP reload and `READY=1` after it;
//! `STOPPING=1` when a graceful shutdown starts; `WATCHDOG=1` at half of `WatchdogSec`
//! for as long as correlation answers and the store has not failed, so a hung or broken
//! daemon is restarted. Without `NOTIFY_SOCKET` (not started by systemd) nothing is
//! sent. The datagrams are sent by the `sd-notify` crate.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// Serving: `READY=1` and a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload starts: `RELOADING=1` with the monotonic clock, as systemd ≥ 253 requires.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading the configuration"),
        ]),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the monotonic clock for systemd");
            send(&[NotifyState::Reloading]);
        }
    }
}

/// A graceful shutdown starts.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining: finishing requests, stopping the outbox"),
    ]);
}

/// The interval systemd asks for (`WATCHDOG_USEC`, for this process), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// Pings the watchdog at half of `interval` until `shutdown`, each time only after
/// `healthy` said yes within that half (a hung correlation thread or a failed store
/// stops the pings, and systemd restarts the daemon after `WatchdogSec`).
pub async fn watchdog<F, Fut>(interval: Duration, healthy: F, shutdown: CancellationToken)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    watchdog_with(interval, healthy, shutdown, || {
        send(&[NotifyState::Watchdog])
    })
    .await
}

async fn watchdog_with<F, Fut>(
    interval: Duration,
    healthy: F,
    shutdown: CancellationToken,
    ping: impl Fn(),
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let half = interval / 2;
    let mut tick = tokio::time::interval(half);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(half, healthy()).await {
            Ok(Ok(())) => ping(),
            Ok(Err(why)) => tracing::error!(%why, "unhealthy: not pinging systemd's watchdog"),
            Err(_) => tracing::error!(
                waited_ms = half.as_millis() as u64,
                "correlation did not answer: not pinging systemd's watchdog"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn pings_only_while_healthy_and_stops_at_shutdown() {
        let pings = Arc::new(AtomicU32::new(0));
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let hanging = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (pings, healthy, hanging, shutdown) = (
                pings.clone(),
                healthy.clone(),
                hanging.clone(),
                shutdown.clone(),
            );
            async move {
                watchdog_with(
                    Duration::from_secs(10),
                    move || {
                        let (healthy, hanging) = (healthy.clone(), hanging.clone());
                        async move {
                            if hanging.load(Ordering::SeqCst) {
                                std::future::pending::<()>().await;
                            }
                            match healthy.load(Ordering::SeqCst) {
                                true => Ok(()),
                                false => Err("store failed".to_string()),
                            }
                        }
                    },
                    shutdown,
                    move || {
                        pings.fetch_add(1, Ordering::SeqCst);
                    },
                )
                .await
            }
        });
        // Ticks at 0, 5, 10 s: three pings by 12 s.
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(pings.load(Ordering::SeqCst), 3);
        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(pings.load(Ordering::SeqCst), 3, "no ping while unhealthy");
        healthy.store(true, Ordering::SeqCst);
        hanging.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(
            pings.load(Ordering::SeqCst),
            3,
            "no ping while correlation hangs"
        );
        hanging.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(pings.load(Ordering::SeqCst) >= 4, "pings resume");
        shutdown.cancel();
        task.await.unwrap();
    }
}
