//! Load generator for the ingest benchmark: posts prepared alert bodies over N
//! keep-alive HTTP/1.1 connections for a fixed time after a warm-up and prints one
//! JSON line with alerts/s, requests/s, latency percentiles (hdrhistogram) and the
//! count of non-2xx answers.
//!
//! Two body formats: `webhook` (Alertmanager's webhook payload, version 4, what
//! Alertmanager sends to triaged) and `alertmanager` (Alertmanager's own
//! `POST /api/v2/alerts` array). `--distinct N` cycles N distinct label sets (alertname
//! from 50 names, service from 20, a unique instance each). Every body is built before
//! the clock starts.
//!
//! ```sh
//! cargo run --release --example loadgen -- --url http://127.0.0.1:9797/api/v1/webhooks/alertmanager \
//!     --format webhook --connections 16 --alerts-per-request 1 --duration-secs 10
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::json;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// Alertmanager's webhook payload (version 4), as sent to triaged.
    Webhook,
    /// Alertmanager's `POST /api/v2/alerts` body.
    Alertmanager,
}

#[derive(Parser, Debug)]
struct Args {
    /// Full URL to post to.
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    format: Format,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, default_value_t = 1)]
    alerts_per_request: usize,
    /// Measured time, after the warm-up.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Distinct label sets to cycle through.
    #[arg(long, default_value_t = 10_000)]
    distinct: usize,
    /// Stop after this many requests in all (no warm-up; for filling a server).
    #[arg(long)]
    requests: Option<u64>,
    /// Bearer token to send.
    #[arg(long)]
    token: Option<String>,
}

const NAMES: usize = 50;
const SERVICES: usize = 20;

fn labels(i: usize) -> serde_json::Value {
    json!({
        "alertname": format!("LoadAlert{:02}", i % NAMES),
        "service": format!("svc{:02}", (i / NAMES) % SERVICES),
        "instance": format!("host-{i}.example.net:9100"),
        "job": "loadgen",
        "severity": "warning",
    })
}

fn bodies(args: &Args, starts_at: &str) -> Vec<Bytes> {
    let k = args.alerts_per_request.max(1);
    let count = args.distinct.div_ceil(k).max(1);
    (0..count)
        .map(|b| {
            let alerts: Vec<serde_json::Value> = (0..k)
                .map(|j| {
                    let i = (b * k + j) % args.distinct;
                    let annotations = json!({"summary": format!("load alert {i}"), "runbook": "https://runbooks.example.net/load"});
                    match args.format {
                        Format::Webhook => json!({
                            "status": "firing",
                            "labels": labels(i),
                            "annotations": annotations,
                            "startsAt": starts_at,
                            "endsAt": "0001-01-01T00:00:00Z",
                            "generatorURL": "http://prometheus.example.net:9090/graph?g0.expr=up",
                            "fingerprint": format!("{:016x}", (i as u64).wrapping_mul(0x9E3779B97F4A7C15)),
                        }),
                        Format::Alertmanager => json!({
                            "labels": labels(i),
                            "annotations": annotations,
                            "startsAt": starts_at,
                            "generatorURL": "http://prometheus.example.net:9090/graph?g0.expr=up",
                        }),
                    }
                })
                .collect();
            let body = match args.format {
                Format::Webhook => json!({
                    "version": "4",
                    "groupKey": "{}:{alertname=\"load\"}",
                    "truncatedAlerts": 0,
                    "status": "firing",
                    "receiver": "triaged",
                    "groupLabels": {"alertname": "load"},
                    "commonLabels": {"job": "loadgen"},
                    "commonAnnotations": {},
                    "externalURL": "http://alertmanager.example.net:9093",
                    "alerts": alerts,
                }),
                Format::Alertmanager => json!(alerts),
            };
            Bytes::from(serde_json::to_vec(&body).unwrap())
        })
        .collect()
}

struct Shared {
    bodies: Vec<Bytes>,
    next: AtomicU64,
    stop: AtomicBool,
    limit: Option<u64>,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    non_2xx: u64,
    errors: u64,
    hist: Option<Histogram<u64>>,
}

async fn connection(
    args: Arc<Args>,
    shared: Arc<Shared>,
    measure_from: Instant,
    measure_to: Instant,
) -> Tally {
    let uri: hyper::Uri = args.url.parse().expect("valid --url");
    let host = uri.host().expect("url has a host").to_string();
    let port = uri.port_u16().unwrap_or(80);
    let mut tally = Tally {
        hist: Some(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()),
        ..Tally::default()
    };
    'reconnect: while !shared.stop.load(Ordering::Relaxed) {
        let Ok(stream) = tokio::net::TcpStream::connect((host.as_str(), port)).await else {
            tally.errors += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        stream.set_nodelay(true).ok();
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            tally.errors += 1;
            continue;
        };
        tokio::spawn(conn);
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                break 'reconnect;
            }
            let n = shared.next.fetch_add(1, Ordering::Relaxed);
            if shared.limit.is_some_and(|l| n >= l) {
                shared.stop.store(true, Ordering::Relaxed);
                break 'reconnect;
            }
            let body = shared.bodies[(n % shared.bodies.len() as u64) as usize].clone();
            let mut req = Request::post(uri.clone())
                .header("host", &host)
                .header("content-type", "application/json");
            if let Some(t) = &args.token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let req = req.body(Full::new(body)).unwrap();
            let started = Instant::now();
            if sender.ready().await.is_err() {
                tally.errors += 1;
                continue 'reconnect;
            }
            let resp = match sender.send_request(req).await {
                Ok(r) => r,
                Err(_) => {
                    tally.errors += 1;
                    continue 'reconnect;
                }
            };
            let status = resp.status();
            if resp.into_body().collect().await.is_err() {
                tally.errors += 1;
                continue 'reconnect;
            }
            let done = Instant::now();
            if started >= measure_from && done <= measure_to {
                if status.is_success() {
                    tally.ok += 1;
                } else {
                    tally.non_2xx += 1;
                }
                let micros = done.duration_since(started).as_micros() as u64;
                tally.hist.as_mut().unwrap().record(micros.max(1)).ok();
            }
        }
    }
    tally
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let starts_at = jiff::Timestamp::now().to_string();
    let shared = Arc::new(Shared {
        bodies: bodies(&args, &starts_at),
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        limit: args.requests,
    });
    let begin = Instant::now();
    let (measure_from, measure_to) = match args.requests {
        Some(_) => (begin, begin + Duration::from_secs(24 * 3600)),
        None => {
            let from = begin + Duration::from_secs(args.warmup_secs);
            (from, from + Duration::from_secs(args.duration_secs))
        }
    };
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            tokio::spawn(connection(
                args.clone(),
                shared.clone(),
                measure_from,
                measure_to,
            ))
        })
        .collect();
    if args.requests.is_none() {
        tokio::time::sleep_until(measure_to.into()).await;
        shared.stop.store(true, Ordering::Relaxed);
    }
    let mut total = Tally {
        hist: Some(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()),
        ..Tally::default()
    };
    for t in tasks {
        let t = t.await.unwrap();
        total.ok += t.ok;
        total.non_2xx += t.non_2xx;
        total.errors += t.errors;
        total.hist.as_mut().unwrap().add(t.hist.unwrap()).unwrap();
    }
    let elapsed = match args.requests {
        Some(_) => begin.elapsed().as_secs_f64(),
        None => args.duration_secs as f64,
    };
    let hist = total.hist.unwrap();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let requests = total.ok + total.non_2xx;
    println!(
        "{}",
        json!({
            "format": format!("{:?}", args.format).to_lowercase(),
            "connections": args.connections,
            "alerts_per_request": args.alerts_per_request,
            "distinct": args.distinct,
            "seconds": (elapsed * 100.0).round() / 100.0,
            "requests": requests,
            "requests_per_sec": (requests as f64 / elapsed).round(),
            "alerts_per_sec": (total.ok as f64 * args.alerts_per_request as f64 / elapsed).round(),
            "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": hist.max() as f64 / 1000.0},
            "non_2xx": total.non_2xx,
            "errors": total.errors,
        })
    );
}
