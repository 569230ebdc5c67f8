//! The floor a durable HTTP ingest can reach on this machine: a server with triaged's
//! stack (tokio's multi-threaded runtime, hyper's HTTP/1) that does nothing with a
//! request but append its body to a log and answer 200 once a group commit
//! (`fdatasync`, many requests per sync, on a sync thread; triaged syncs on its
//! correlation thread since session 12) has made it durable. No JSON, no rules, no store: what is left is the HTTP round trip, the hand
//! offs between threads and the disk's sync. `benches/floor.sh` runs it under
//! `examples/loadgen.rs` against Alertmanager and triaged (BENCHMARKS.md).
//!
//!   cargo run --release --example floor -- --listen 127.0.0.1:8080 --dir /tmp/floor \
//!       --mode durable
//!
//! Modes: `durable` (append, group commit, answer), `handoff` (the append handed to
//! one more thread first, as triaged hands a request to its correlation thread, and
//! then to the sync thread: one hand-over more than triaged has now),
//! `memory` (append to the page cache, answer without a sync: not durable, the HTTP
//! and hand-off floor only).

use std::convert::Infallible;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Durable,
    Handoff,
    Memory,
}

#[derive(Parser)]
struct Args {
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// Directory for the log file (created; the file is preallocated as triaged's
    /// segments are, so that a sync writes no file-size metadata).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, value_enum)]
    mode: Mode,
}

const PREALLOCATE: usize = 64 * 1024 * 1024;
/// Far above any load generator body, and far below the log (see `Log::append`).
const MAX_BODY: usize = 1024 * 1024;

struct Log {
    file: Arc<File>,
    end: AtomicU64,
    to_sync: std::sync::Mutex<mpsc::Sender<oneshot::Sender<()>>>,
}

impl Log {
    /// Appends one framed record (length, then the bytes) at the end of the log.
    fn append(&self, body: &[u8]) -> std::io::Result<()> {
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(body);
        // Past the preallocated part the log starts again at its beginning: the disk
        // sees the same writes (overwrites of allocated blocks, as triaged's reused
        // segments are), and a run of any length fits.
        let len = frame.len() as u64;
        let at = self.end.fetch_add(len, Ordering::SeqCst) % (PREALLOCATE as u64 - len);
        self.file.write_all_at(&frame, at)
    }
}

/// Group commit: one sync for every request that appended before it started.
fn sync_loop(file: Arc<File>, waiting: mpsc::Receiver<oneshot::Sender<()>>) {
    while let Ok(first) = waiting.recv() {
        let mut group = vec![first];
        group.extend(waiting.try_iter());
        if let Err(e) = file.sync_data() {
            eprintln!("sync failed: {e}");
            std::process::exit(1);
        }
        for done in group {
            let _ = done.send(());
        }
    }
}

type Work = (Bytes, oneshot::Sender<std::io::Result<()>>);

/// `handoff`: the thread a request's append is handed to.
fn append_loop(log: Arc<Log>, work: mpsc::Receiver<Work>) {
    while let Ok((body, done)) = work.recv() {
        let _ = done.send(log.append(&body));
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    log: Arc<Log>,
    mode: Mode,
    handoff: Option<Arc<std::sync::Mutex<mpsc::Sender<Work>>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        Ok(r)
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "bad body\n"),
    };
    if body.len() > MAX_BODY {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB\n");
    }
    let appended = match &handoff {
        Some(to) => {
            let (tx, rx) = oneshot::channel();
            let sent = to.lock().expect("not poisoned").send((body, tx));
            match sent {
                Ok(()) => rx
                    .await
                    .unwrap_or_else(|_| Err(std::io::Error::other("gone"))),
                Err(_) => Err(std::io::Error::other("append thread gone")),
            }
        }
        None => log.append(&body),
    };
    if appended.is_err() {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "not stored\n");
    }
    if mode != Mode::Memory {
        let (tx, rx) = oneshot::channel();
        let sent = log.to_sync.lock().expect("not poisoned").send(tx);
        if sent.is_err() || rx.await.is_err() {
            return reply(StatusCode::SERVICE_UNAVAILABLE, "not synced\n");
        }
    }
    reply(StatusCode::OK, "{\"status\":\"ok\"}")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let path = args.dir.join("floor.log");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    file.write_all(&vec![0u8; PREALLOCATE])?;
    file.sync_all()?;
    let file = Arc::new(file);
    let (to_sync, waiting) = mpsc::channel();
    let log = Arc::new(Log {
        file: file.clone(),
        end: AtomicU64::new(0),
        to_sync: std::sync::Mutex::new(to_sync),
    });
    std::thread::Builder::new()
        .name("floor-sync".into())
        .spawn(move || sync_loop(file, waiting))?;
    let handoff = match args.mode {
        Mode::Handoff => {
            let (tx, rx) = mpsc::channel();
            let log = log.clone();
            std::thread::Builder::new()
                .name("floor-append".into())
                .spawn(move || append_loop(log, rx))?;
            Some(Arc::new(std::sync::Mutex::new(tx)))
        }
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let (log, handoff, mode) = (log.clone(), handoff.clone(), args.mode);
            tokio::spawn(async move {
                let service =
                    service_fn(move |req| handle(req, log.clone(), mode, handoff.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
