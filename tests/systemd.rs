//! The systemd service: the shipped unit passes `systemd-analyze verify` and rates 2.0
//! or lower in `systemd-analyze security`, and the daemon speaks the notify protocol
//! over a real `NOTIFY_SOCKET` (a unix datagram socket this test binds): READY=1 once
//! it serves, WATCHDOG=1 pings, RELOADING=1 + MONOTONIC_USEC … READY=1 on SIGHUP (a
//! good and a broken config), STOPPING=1 on SIGTERM.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/triaged.service")
}

/// The shipped unit with ExecStart pointing at the binary under test (verify checks
/// that the executable exists).
fn unit_copy(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(unit_path()).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/triaged serve"));
    let copy = dir.join("triaged.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/triaged", env!("CARGO_BIN_EXE_triaged")),
    )
    .unwrap();
    copy
}

#[test]
fn the_unit_verifies_and_rates_2_or_lower() {
    let dir = tempfile::tempdir().unwrap();
    let copy = unit_copy(dir.path());
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs (tests/run.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {stderr}");
    assert!(
        !stderr.contains("triaged.service"),
        "verify warned about the unit: {stderr}"
    );

    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&copy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level for triaged.service"))
        .unwrap_or_else(|| panic!("no overall exposure level in: {text}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable level in {line:?}"));
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{text}");
    for needed in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "StateDirectory=triaged",
        "ConfigurationDirectory=triaged",
        "WatchdogSec=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
    ] {
        let unit = std::fs::read_to_string(unit_path()).unwrap();
        assert!(unit.contains(needed), "the unit lacks {needed:?}");
    }
}

/// The datagrams the daemon sent, one string each.
struct Notifications {
    socket: tokio::net::UnixDatagram,
    seen: Vec<String>,
}

impl Notifications {
    /// Waits for a datagram `wanted` accepts (others are kept in `seen`).
    async fn until(&mut self, secs: u64, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {what} within {secs} s; got {:?}", self.seen))
                .unwrap();
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(msg.clone());
            if wanted(&msg) {
                return msg;
            }
        }
    }
}

fn has(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

fn value<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec into the pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_watchdog_reload_and_stop_over_a_real_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let mut notes = Notifications {
        socket: tokio::net::UnixDatagram::bind(&sock_path).unwrap(),
        seen: Vec::new(),
    };
    let config = dir.path().join("triaged.toml");
    let toml = config_toml(&dir.path().join("data"), &shipped_rules(), "");
    std::fs::write(&config, &toml).unwrap();
    let port = free_port();
    let log = dir.path().join("triaged.log");
    let out = std::fs::File::create(&log).unwrap();
    let process = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("NOTIFY_SOCKET", &sock_path)
        // WatchdogSec=0.4s: a ping every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut child = Child {
        process,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        log,
    };
    let client = reqwest::Client::new();

    // READY=1 comes once the daemon serves: /readyz answers at once.
    let ready = notes.until(30, "READY=1", |m| has(m, "READY=1")).await;
    assert_eq!(
        value(&ready, "STATUS"),
        Some(format!("listening on 127.0.0.1:{port}").as_str())
    );
    let resp = client.get(child.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "READY=1 before the daemon served");
    assert!(
        notes.seen.len() == 1,
        "READY=1 was not the first notification: {:?}",
        notes.seen
    );

    // Watchdog pings keep coming (three in a row, nothing else in between).
    for _ in 0..3 {
        let ping = notes.until(5, "WATCHDOG=1", |_| true).await;
        assert_eq!(ping.trim_end(), "WATCHDOG=1");
    }

    // SIGHUP with a good config: RELOADING=1 with the monotonic clock, then READY=1.
    let before = monotonic_usec();
    child.signal("HUP");
    let reloading = notes
        .until(10, "RELOADING=1", |m| has(m, "RELOADING=1"))
        .await;
    let at: u64 = value(&reloading, "MONOTONIC_USEC")
        .expect("MONOTONIC_USEC with RELOADING=1")
        .parse()
        .unwrap();
    assert!(
        at >= before && at <= monotonic_usec(),
        "MONOTONIC_USEC {at} is not now"
    );
    let done = notes
        .until(10, "READY=1 after the reload", |m| has(m, "READY=1"))
        .await;
    assert_eq!(value(&done, "STATUS"), Some("configuration reloaded"));

    // A broken config: the reload fails, the daemon says so and stays ready.
    std::fs::write(&config, format!("{toml}\n[server\n")).unwrap();
    child.signal("HUP");
    notes
        .until(10, "RELOADING=1", |m| has(m, "RELOADING=1"))
        .await;
    let failed = notes
        .until(10, "READY=1 after the failed reload", |m| has(m, "READY=1"))
        .await;
    let status = value(&failed, "STATUS").unwrap();
    assert!(
        status.starts_with("reload failed, the running configuration stays:"),
        "{status}"
    );
    let resp = client.get(child.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    notes
        .until(5, "WATCHDOG=1 after the reloads", |m| has(m, "WATCHDOG=1"))
        .await;

    // SIGTERM: STOPPING=1, then a clean exit.
    child.signal("TERM");
    notes
        .until(10, "STOPPING=1", |m| has(m, "STOPPING=1"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.process.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "triaged did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit {status:?}: {}", child.log_text());
}
