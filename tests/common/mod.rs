//! The one helper integration tests use to run the daemon: in-process on
//! 127.0.0.1:0 with a temporary data dir (or as a child process for crash tests),
//! plus payload builders. Every daemon a test starts is stopped when its handle drops.

#![allow(dead_code)]

pub mod receiver;
pub mod redmine;
pub mod synapse;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use triaged::config::{Overrides, Settings};

pub const AM_PATH: &str = "/api/v1/webhooks/alertmanager";

/// The shipped rules directory.
pub fn shipped_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// A config file body with the given data and rules dirs and extra TOML appended.
pub fn config_toml(data_dir: &Path, rules_dir: &Path, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\ndata_dir = {:?}\n[rules]\ndir = {:?}\n{extra}\n",
        data_dir.display().to_string(),
        rules_dir.display().to_string()
    )
}

pub struct Daemon {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Daemon {
    /// Starts a daemon on `data_dir` with the shipped rules; `extra` is TOML appended to
    /// the config (e.g. an `[incidents]` section or `[[server.tokens]]`).
    pub async fn start(data_dir: &Path, extra: &str) -> Daemon {
        Daemon::start_with_rules(data_dir, &shipped_rules(), extra).await
    }

    pub async fn start_with_rules(data_dir: &Path, rules_dir: &Path, extra: &str) -> Daemon {
        Daemon::start_toml(&config_toml(data_dir, rules_dir, extra)).await
    }

    /// Starts a daemon on a whole config file's text.
    pub async fn start_toml(src: &str) -> Daemon {
        let settings = Settings::from_toml(Path::new("test.toml"), src, &Overrides::default())
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{src}"));
        let daemon = triaged::app::Daemon::start(settings)
            .await
            .expect("daemon starts");
        let addr = daemon.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(daemon.serve(shutdown.clone()));
        Daemon {
            addr,
            client: reqwest::Client::new(),
            shutdown,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        status_json(resp).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(self.url(path)).send().await.unwrap();
        status_json(resp).await
    }

    /// Stops the daemon the way SIGTERM does and waits for it to drain.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("daemon drains within 30 s")
            .unwrap()
            .expect("daemon exits cleanly");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn status_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// One alert in Alertmanager's webhook form.
pub fn am_alert(status: &str, labels: Value, starts_at: &str) -> Value {
    let fingerprint = labels
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": "test alert"},
        "startsAt": starts_at,
        "endsAt": if status == "resolved" { "2026-11-29T02:00:00Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://prometheus.test/graph",
        "fingerprint": format!("{:016x}", fnv(&fingerprint)),
    })
}

/// A webhook payload (version 4) carrying `alerts`.
pub fn am_payload(alerts: Vec<Value>) -> Value {
    let status = if alerts.iter().any(|a| a["status"] == "firing") {
        "firing"
    } else {
        "resolved"
    };
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"test\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "triaged",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test",
        "alerts": alerts,
    })
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `secs` seconds.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon as a child with `extra` appended to its config: `start` is given its
/// Alertmanager webhook URL to send work; once `rx` got its first request the daemon is
/// killed with SIGKILL and started again on the same data (the restarted child).
pub async fn crash_at_first_request<F, Fut>(
    dir: &Path,
    extra: &str,
    rx: &receiver::Receiver,
    start: F,
) -> Child
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let config = config_toml(&dir.join("data"), &shipped_rules(), extra);
    let child = Child::start_with_config(dir, &config).await;
    start(child.url(AM_PATH)).await;
    rx.wait_requests(1, 20).await;
    child.signal("KILL");
    drop(child);
    Child::start_with_config(dir, &config).await
}

/// The child's incident `id` once `ok` holds for it (as `GET /api/v1/incidents/{id}`
/// shows it), for at most 30 s.
pub async fn incident_when(
    child: &Child,
    id: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let client = reqwest::Client::new();
    let url = child.url(&format!("/api/v1/incidents/{id}"));
    wait_for(30, what, || {
        let req = client.get(&url).send();
        let ok = &ok;
        async move {
            let v: Value = req.await.ok()?.json().await.ok()?;
            ok(&v).then_some(v)
        }
    })
    .await
}

/// Outbox event `seq` once every one of its deliveries left `pending` (as
/// `GET /api/v1/outbox/{seq}` shows it), for at most 30 s.
pub async fn settled(d: &Daemon, seq: u64) -> Value {
    wait_for(
        30,
        &format!("outbox event {seq} to settle"),
        || async move {
            let (_, v) = d.get(&format!("/api/v1/outbox/{seq}")).await;
            let ds = v["deliveries"].as_array()?.clone();
            (!ds.is_empty() && ds.iter().all(|x| x["state"] != "pending")).then_some(v)
        },
    )
    .await
}

/// Polls `url` until it answers 2xx, for at most `secs` seconds.
pub async fn wait_ready(client: &reqwest::Client, url: &str, secs: u64, what: &str) {
    wait_for(secs, what, || {
        let req = client.get(url).send();
        async move {
            req.await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        }
    })
    .await
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemon as a child process (`triaged serve`), for tests that kill it.
pub struct Child {
    pub process: std::process::Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Child {
    /// Starts `triaged serve --config <dir>/triaged.toml` with data in `<dir>/data`
    /// on a free port, and waits until `/readyz` answers.
    pub async fn start(dir: &Path) -> Child {
        Child::start_with_config(dir, &config_toml(&dir.join("data"), &shipped_rules(), "")).await
    }

    /// Like `start`, with `<dir>/triaged.toml` holding `toml`.
    pub async fn start_with_config(dir: &Path, toml: &str) -> Child {
        let config = dir.join("triaged.toml");
        std::fs::write(&config, toml).unwrap();
        let port = free_port();
        let log = dir.join(format!("triaged-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let process = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("triaged binary starts");
        let mut child = Child {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client.get(child.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return child;
            }
            if let Some(status) = child.process.try_wait().unwrap() {
                panic!(
                    "triaged exited ({status}) before it was ready:\n{}",
                    child.log_text()
                );
            }
            if tokio::time::Instant::now() > deadline {
                panic!("triaged not ready after 30 s:\n{}", child.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Child {
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.process.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A child process killed (and reaped) when dropped; its output goes to a log file
/// that is printed if the test fails.
pub struct Peer {
    name: &'static str,
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Peer {
    pub fn start(
        name: &'static str,
        program: &str,
        args: &[String],
        dir: &std::path::Path,
    ) -> Peer {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::from(out.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} (tests/run.sh installs it): {e}"));
        Peer { name, child, log }
    }
}

impl Peer {
    /// Like `start`, run in `cwd` with extra environment variables; the log in `log_dir`.
    pub fn start_in(
        name: &'static str,
        program: &str,
        args: &[String],
        cwd: &std::path::Path,
        log_dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Peer {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(cwd)
            .stdout(std::process::Stdio::from(out.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} (tests/run.sh installs it): {e}"));
        Peer { name, child, log }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} log ---", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

impl Peer {
    /// Sends a signal (`HUP`, `TERM`) to the peer.
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{name} {}", self.name);
    }
}
