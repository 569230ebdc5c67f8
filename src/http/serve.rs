//! The accept loop: HTTP/1.1 connections served by hyper with the limits a daemon on a
//! network needs, which `axum::serve` does not set (it gives hyper no timer, so
//! hyper's header read timeout never fires):
//! - a client has `header_timeout` to send a request's head (slow-loris clients are
//!   disconnected instead of holding a connection and its buffer forever);
//! - bodies are read under `body_timeout` by the handlers (`webhooks::read_body`);
//! - at shutdown, new connections stop, idle ones are closed, requests in flight
//!   finish, and after `drain` whatever is still open is dropped.
//!
//! Accept errors (out of file descriptors) are logged and retried after a pause, as
//! axum's loop does.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Connection limits (`[server]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub drain: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    // hyper's HTTP/1 builder, not hyper-util's auto one: the daemon speaks HTTP/1.1
    // only, and the auto builder links HTTP/2 (h2, ~0.4 MB of code mapped at start).
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => tracing::warn!(
            open,
            drain_secs = limits.drain.as_secs(),
            "connections still open after the drain deadline; closing them"
        ),
    }
}
