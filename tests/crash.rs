//! Durability of the real binary: kill -9 under load loses nothing that was answered
//! 200, and SIGTERM drains and exits 0.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    status_json(client.get(url).send().await.unwrap()).await
}

/// Posts one firing alert (`alertname`, job `x`) and expects it stored.
async fn post_one_firing(client: &reqwest::Client, d: &Child, alertname: &str) {
    let alert = am_alert(
        "firing",
        json!({"alertname": alertname, "job": "x"}),
        "2026-11-29T01:00:00Z",
    );
    let resp = client
        .post(d.url(AM_PATH))
        .json(&am_payload(vec![alert]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

async fn incident_ids(client: &reqwest::Client, d: &Child) -> Vec<u64> {
    let (_, list) = get(client, d.url("/api/v1/incidents?limit=1000")).await;
    list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap()[4..].parse().unwrap())
        .collect()
}

/// A config with data in `dir`/data whose `opened` events go to a webhook sink at
/// `url`, retried every second.
fn opened_to_hook(dir: &std::path::Path, url: &str) -> String {
    config_toml(
        &dir.join("data"),
        &shipped_rules(),
        &format!(
            "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\n\
             retry_initial_secs = 1\nretry_max_secs = 1\n\
             [[routes]]\nevents = [\"opened\"]\nsinks = [\"hook\"]\n"
        ),
    )
}

/// Alerts answered 200 so far, by fingerprint.
type Acked = Arc<Mutex<Vec<String>>>;

/// `workers` tasks posting to `url` until the daemon is gone: request `n` of worker
/// `w` carries `per_request` alerts with the labels `labels(w, n, k)` gives. Every 200
/// adds the request's fingerprints to the list; any other answer fails the test.
fn start_load(
    client: &reqwest::Client,
    url: String,
    workers: usize,
    per_request: usize,
    labels: impl Fn(usize, usize, usize) -> Value + Send + Sync + 'static,
) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked: Acked = Arc::default();
    let labels = Arc::new(labels);
    let tasks = (0..workers)
        .map(|worker| {
            let (client, url, acked, labels) =
                (client.clone(), url.clone(), acked.clone(), labels.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let alerts: Vec<Value> = (0..per_request)
                        .map(|k| am_alert("firing", labels(worker, n, k), "2026-12-01T01:00:00Z"))
                        .collect();
                    let fps: Vec<String> = alerts
                        .iter()
                        .map(|a| a["fingerprint"].as_str().unwrap().to_string())
                        .collect();
                    match client.post(&url).json(&am_payload(alerts)).send().await {
                        Ok(r) if r.status().as_u16() == 200 => acked.lock().unwrap().extend(fps),
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(_) => return, // the daemon is gone
                    }
                }
            })
        })
        .collect();
    (acked, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_answered_alert_and_reuses_no_incident_number() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut answered: Vec<String> = Vec::new();
    for cycle in 0..3 {
        let mut d = Child::start(dir.path()).await;
        let (acked, load) = start_load(&client, d.url(AM_PATH), 8, 5, move |worker, n, k| {
            json!({"alertname": format!("Crash{k}"), "job": "load",
                   "instance": format!("c{cycle}-w{worker}-n{n}")})
        });
        wait_for(60, "alerts to be answered", || {
            let n = acked.lock().unwrap().len();
            async move { (n >= 400).then_some(()) }
        })
        .await;
        d.process.kill().unwrap(); // SIGKILL, mid-load
        d.process.wait().unwrap();
        for t in load {
            t.await.unwrap();
        }
        answered.extend(acked.lock().unwrap().iter().cloned());
        drop(d);

        let d = Child::start(dir.path()).await;
        for fp in &answered {
            let (status, alert) = get(&client, d.url(&format!("/api/v1/alerts/{fp}"))).await;
            assert_eq!(
                status,
                200,
                "cycle {cycle}: answered alert {fp} lost after kill -9\n{}",
                d.log_text()
            );
            assert_eq!(alert["disposition"]["kind"], "attached");
        }
        // Numbers go on from the highest stored one; none is reused or skipped.
        let mut ids = incident_ids(&client, &d).await;
        ids.sort();
        let expected: Vec<u64> = (1..=ids.len() as u64).collect();
        assert_eq!(ids, expected, "incident numbers are dense and unique");
        post_one_firing(&client, &d, &format!("Fresh{cycle}")).await;
        let mut after = incident_ids(&client, &d).await;
        after.sort();
        assert_eq!(after.last(), Some(&(ids.len() as u64 + 1)));
        drop(d);
    }
    assert!(answered.len() >= 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_and_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut d = Child::start(dir.path()).await;
    post_one_firing(&client, &d, "Term").await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &d.process.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_for(30, "triaged to exit", || {
        let done = d.process.try_wait().unwrap();
        async move { done }
    })
    .await;
    assert_eq!(exit.code(), Some(0), "{}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("graceful shutdown requested"), "{log}");
    // On the way out sled is opened once more to write its snapshot, so the next
    // start does not read back what this run wrote; before the daemon says it stopped.
    let snapshot = log.find("sled's snapshot written");
    assert!(
        snapshot.is_some() && snapshot < log.rfind("stopped"),
        "{log}"
    );
    drop(d);

    let d = Child::start(dir.path()).await;
    let (status, inc) = get(&client, d.url("/api/v1/incidents/INC-1")).await;
    assert_eq!((status, inc["key"].as_str()), (200, Some("Term/x")));
}

/// The soak: under continuous webhook load, kill -9 at a random point, restart, check,
/// `TRIAGED_SOAK_CYCLES` times (20 by default; `tests/soak.sh` runs 100). After each
/// restart every alert answered 200 in that cycle is stored and incident numbers are
/// dense; at the end `triaged export` holds every answered alert, and the webhook sink
/// got each incident's `opened` event under one idempotency key only, so a receiver
/// that honours the key creates nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_under_load_loses_and_repeats_nothing() {
    let cycles: u64 = std::env::var("TRIAGED_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = fastrand::u64(..);
    eprintln!("soak: {cycles} cycles, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let sink = receiver::Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = opened_to_hook(dir.path(), &sink.url("/events"));
    let client = reqwest::Client::new();
    let mut answered: Vec<String> = Vec::new();
    for cycle in 0..cycles {
        let mut d = Child::start_with_config(dir.path(), &toml).await;
        // New incidents keep opening: 8 names per cycle (800 incidents in 100 cycles,
        // under the API's list limit of 1000).
        let (acked, load) = start_load(&client, d.url(AM_PATH), 4, 2, move |worker, n, k| {
            json!({"alertname": format!("Soak{cycle}n{}", (n + k) % 8), "job": "soak",
                   "instance": format!("c{cycle}-w{worker}-n{n}-{k}")})
        });
        // A random point: after 0 to ~600 answered alerts, plus up to 30 ms.
        let target = rng.usize(0..600);
        wait_for(60, "alerts to be answered", || {
            let n = acked.lock().unwrap().len();
            async move { (n >= target).then_some(()) }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(rng.u64(0..30))).await;
        d.process.kill().unwrap();
        d.process.wait().unwrap();
        for t in load {
            t.await.unwrap();
        }
        let this_cycle: Vec<String> = acked.lock().unwrap().clone();
        drop(d);

        let d = Child::start_with_config(dir.path(), &toml).await;
        for fp in &this_cycle {
            let (status, _) = get(&client, d.url(&format!("/api/v1/alerts/{fp}"))).await;
            assert_eq!(
                status,
                200,
                "cycle {cycle} (seed {seed}): answered alert {fp} lost after kill -9\n{}",
                d.log_text()
            );
        }
        let mut ids = incident_ids(&client, &d).await;
        ids.sort();
        let expected: Vec<u64> = (1..=ids.len() as u64).collect();
        assert_eq!(
            ids, expected,
            "cycle {cycle} (seed {seed}): incident numbers"
        );
        answered.extend(this_cycle);
        drop(d);
    }

    // Let the outbox finish, then stop and read everything back with the CLI.
    let mut d = Child::start_with_config(dir.path(), &toml).await;
    wait_for(60, "the outbox to drain", || {
        let (client, url) = (client.clone(), d.url("/api/v1/outbox?state=pending"));
        async move {
            let (_, q) = get(&client, url).await;
            q["deliveries"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        }
    })
    .await;
    d.signal("TERM");
    d.process.wait().unwrap();
    let records = exported(&dir.path().join("triaged.toml"));
    let stored: std::collections::HashSet<String> = records
        .iter()
        .filter(|r| r["record"] == "alert")
        .map(|r| r["fingerprint"].as_str().unwrap().to_string())
        .collect();
    let incidents: Vec<String> = records
        .iter()
        .filter(|r| r["record"] == "incident")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!incidents.is_empty());
    for fp in &answered {
        assert!(
            stored.contains(fp),
            "seed {seed}: answered alert {fp} not in the export"
        );
    }

    // Each incident's opened event came under one key (retries after a crash reuse it).
    let mut keys: std::collections::HashMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for r in sink.requests() {
        let body = r.json();
        assert_eq!(body["event"]["kind"], "opened");
        let key = r.header("idempotency-key").unwrap().to_string();
        assert_eq!(body["idempotency_key"], key.as_str());
        keys.entry(body["event"]["record"].as_str().unwrap().to_string())
            .or_default()
            .insert(key);
    }
    for record in &incidents {
        let got = keys.get(record);
        assert_eq!(
            got.map(|k| k.len()),
            Some(1),
            "seed {seed}: {record} opened events came under {got:?}"
        );
    }
    assert_eq!(
        keys.len(),
        incidents.len(),
        "seed {seed}: events for unknown incidents"
    );
    assert!(
        answered.len() as u64 >= cycles * 50,
        "too little load: {}",
        answered.len()
    );
}

/// SIGTERM under load: requests in flight finish (every one is answered 200 or refused
/// at the connection, none 5xx), the daemon exits 0 within its drain deadline, every
/// answered alert is there after the restart, and outbox events a down sink did not
/// take stay queued and are delivered by the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_in_time_and_keeps_undelivered_events() {
    let dir = tempfile::tempdir().unwrap();
    // The sink answers 503 until `up`: nothing is delivered before the stop.
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sink = {
        let up = up.clone();
        receiver::Receiver::start_on(0, move |_| {
            if up.load(std::sync::atomic::Ordering::SeqCst) {
                receiver::Answer::json(200, json!({}))
            } else {
                receiver::Answer::status(503)
            }
        })
        .await
    };
    let toml = opened_to_hook(dir.path(), &sink.url("/events"))
        .replace("[server]\n", "[server]\ndrain_secs = 10\n");
    let client = reqwest::Client::new();
    let mut d = Child::start_with_config(dir.path(), &toml).await;
    let (acked, load) = start_load(&client, d.url(AM_PATH), 8, 1, |worker, n, _| {
        json!({"alertname": format!("Term{}", n % 5), "job": "term",
               "instance": format!("w{worker}-n{n}")})
    });
    wait_for(30, "load", || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 300).then_some(()) }
    })
    .await;
    let stopped_at = std::time::Instant::now();
    d.signal("TERM");
    let exit = wait_for(30, "triaged to exit", || {
        let done = d.process.try_wait().unwrap();
        async move { done }
    })
    .await;
    let took = stopped_at.elapsed();
    assert_eq!(exit.code(), Some(0), "{}", d.log_text());
    // The drain deadline (10 s) plus the outbox's 5 s and the checkpoint, generously.
    assert!(took < Duration::from_secs(25), "stopping took {took:?}");
    for t in load {
        t.await.unwrap();
    }
    let answered = acked.lock().unwrap().clone();
    assert!(sink.requests().iter().all(|r| r.path == "/events"));
    drop(d);

    // Still queued after the stop (read offline with the CLI), delivered once the sink
    // is up.
    let pending = exported(&dir.path().join("triaged.toml"))
        .into_iter()
        .filter(|r| r["record"] == "outbox" && r["kind"] == "opened")
        .filter(|r| {
            r["deliveries"]
                .as_array()
                .is_some_and(|ds| ds.iter().any(|d| d["state"] == "pending"))
        })
        .count();
    assert_eq!(pending, 5, "opened events still queued after the stop");
    let before = sink.requests().len();
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let d = Child::start_with_config(dir.path(), &toml).await;
    for fp in &answered {
        let (status, _) = get(&client, d.url(&format!("/api/v1/alerts/{fp}"))).await;
        assert_eq!(status, 200, "answered alert {fp} lost by the SIGTERM");
    }
    let ids = incident_ids(&client, &d).await;
    assert_eq!(ids.len(), 5, "{ids:?}");
    wait_for(30, "the held events to be delivered", || {
        let delivered: std::collections::BTreeSet<String> = sink.requests()[before..]
            .iter()
            .filter(|r| r.json()["event"]["kind"] == "opened")
            .map(|r| {
                r.json()["event"]["record"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        async move { (delivered.len() == 5).then_some(()) }
    })
    .await;
}

/// Every record `triaged export` writes for the (stopped) daemon of `config`.
fn exported(config: &std::path::Path) -> Vec<Value> {
    let out = triaged(&["export"], config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect()
}

fn triaged(args: &[&str], config: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// `triaged store verify` on a healthy store, on one a running daemon holds, and on a
/// log damaged under acknowledged records, which the daemon then refuses to start on,
/// naming the file and the byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_verify_and_a_damaged_log_refuse_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("triaged.toml");
    let client = reqwest::Client::new();
    let post = |d: &Child, name: &str| {
        let body = am_payload(vec![am_alert(
            "firing",
            json!({"alertname": name, "job": "verify"}),
            "2026-12-01T01:00:00Z",
        )]);
        client.post(d.url(AM_PATH)).json(&body).send()
    };
    let mut d = Child::start(dir.path()).await;
    assert_eq!(post(&d, "One").await.unwrap().status(), 200);
    let out = triaged(&["store", "verify"], &config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use (is triaged running?"), "{err}");
    d.signal("TERM");
    d.process.wait().unwrap();
    drop(d);

    let out = triaged(&["store", "verify"], &config);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("store intact"), "{text}");
    assert!(text.contains("incidents 1"), "{text}");
    assert!(text.contains("audit log intact"), "{text}");

    // Acknowledged records in the log (kill -9: no checkpoint), then one byte of the
    // first record's payload changes.
    let mut d = Child::start(dir.path()).await;
    for name in ["Two", "Three", "Four"] {
        assert_eq!(post(&d, name).await.unwrap().status(), 200);
    }
    d.process.kill().unwrap();
    d.process.wait().unwrap();
    drop(d);
    let wal = dir.path().join("data/wal");
    let newest = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s.parse::<u64>().is_ok())
        })
        .max_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
        })
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[16 + 2] ^= 0xff;
    std::fs::write(&newest, &bytes).unwrap();

    let out = triaged(&["store", "verify"], &config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{} is damaged at byte 0: checksum mismatch",
        newest.display()
    );
    assert!(err.contains(&expected), "{err}");

    let port = free_port();
    let serve = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!serve.status.success(), "started on a damaged log");
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(err.contains(&expected), "{err}");
    // Nothing was cut off to get past it.
    assert_eq!(std::fs::read(&newest).unwrap().len(), bytes.len());
}

/// A tmpfs of `mib` MiB mounted on `path` (root only), unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096] {
        let zeros = vec![0u8; chunk];
        while f.write_all(&zeros).is_ok() {}
    }
}

/// The data dir on a small filesystem that fills up under load: requests the log
/// cannot hold get 503 with Retry-After and are not stored, readiness says why, the
/// daemon keeps running; once space returns writes succeed again and the checkpoint
/// runs without a restart; after a restart every alert answered 200 is there and no
/// refused one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_loses_nothing_answered_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_tmpfs) = Tmpfs::mount(&data, 160) else {
        assert!(!running_as_root(), "root cannot mount a tmpfs");
        eprintln!("skipped: mounting the small filesystem this test fills needs root");
        return;
    };
    // A checkpoint every second, so that one is due whenever the disk fills.
    let config = config_toml(&data.join("store"), &shipped_rules(), "").replacen(
        "[store]\n",
        "[store]\ncheckpoint_interval_secs = 1\n",
        1,
    );
    let mut d = Child::start_with_config(dir.path(), &config).await;
    let client = reqwest::Client::new();
    // Request `n`: ten alerts with 4 KB annotations, fingerprints of their own.
    let body = |n: usize| {
        let alerts = (0..10)
            .map(|k| {
                let mut a = am_alert(
                    "firing",
                    json!({"alertname": "Fill", "job": "disk", "instance": format!("r{n}-{k}")}),
                    "2026-12-01T01:00:00Z",
                );
                a["annotations"] = json!({"description": "x".repeat(4096)});
                a
            })
            .collect();
        am_payload(alerts)
    };
    let fingerprints = |b: &Value| -> Vec<String> {
        b["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["fingerprint"].as_str().unwrap().to_string())
            .collect()
    };
    let (mut answered, mut refused) = (Vec::new(), Vec::new());
    let mut n = 0;
    for _ in 0..20 {
        let b = body(n);
        n += 1;
        let r = client.post(d.url(AM_PATH)).json(&b).send().await.unwrap();
        assert_eq!(r.status(), 200);
        answered.extend(fingerprints(&b));
    }

    fill(&data.join("filler"));
    // The log's preallocated segment still takes writes; past it, a write needs new
    // space and is refused.
    let mut first_refusal = None;
    while n < 2000 && refused.len() < 50 {
        let b = body(n);
        n += 1;
        let r = client.post(d.url(AM_PATH)).json(&b).send().await.unwrap();
        match r.status().as_u16() {
            200 => answered.extend(fingerprints(&b)),
            503 => {
                let retry = r.headers().get("retry-after").cloned();
                let (_, err) = status_json(r).await;
                first_refusal.get_or_insert((retry, err));
                refused.extend(fingerprints(&b));
            }
            other => panic!("unexpected status {other}\n{}", d.log_text()),
        }
    }
    let (retry, err) = first_refusal.expect("a write is refused on the full disk");
    assert_eq!(retry.unwrap(), "5");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{err}"
    );
    let (status, ready) = get(&client, d.url("/readyz")).await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (503, Some("store refusing writes"))
    );
    let metrics = d.metrics().await;
    for line in [
        "triaged_store_refusing_writes 1",
        "triaged_store_checkpoints_blocked 1",
        "triaged_store_healthy 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    assert!(d.process.try_wait().unwrap().is_none(), "the daemon exited");

    // Space returns: the next write succeeds, and the put-off checkpoint runs.
    std::fs::remove_file(data.join("filler")).unwrap();
    for _ in 0..5 {
        let b = body(n);
        n += 1;
        let r = client.post(d.url(AM_PATH)).json(&b).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", d.log_text());
        answered.extend(fingerprints(&b));
    }
    wait_for(30, "the put-off checkpoint to run", || {
        let req = client.get(d.url("/readyz")).send();
        async move {
            let (status, v) = status_json(req.await.ok()?).await;
            (status == 200 && v["checkpoints_blocked"].is_null()).then_some(())
        }
    })
    .await;

    // Full again, and the daemon restarts on it: sled cannot open without room, so
    // the store gives up its ballast file, starts and serves; once there is room the
    // ballast is made again.
    let ballast = data.join("store/ballast");
    assert!(ballast.exists(), "the store keeps a ballast file");
    fill(&data.join("filler"));
    d.signal("TERM");
    assert!(d.process.wait().unwrap().success());
    drop(d);
    let mut d = Child::start_with_config(dir.path(), &config).await;
    assert!(
        d.log_text().contains("giving up the ballast file"),
        "{}",
        d.log_text()
    );
    assert!(!ballast.exists());
    let (status, _) = get(&client, d.url(&format!("/api/v1/alerts/{}", answered[0]))).await;
    assert_eq!(status, 200);
    std::fs::remove_file(data.join("filler")).unwrap();
    for _ in 0..300 {
        if ballast.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ballast.exists(), "no ballast again:\n{}", d.log_text());

    d.signal("TERM");
    assert!(d.process.wait().unwrap().success());
    drop(d);
    let d = Child::start_with_config(dir.path(), &config).await;
    for fp in &answered {
        let (status, _) = get(&client, d.url(&format!("/api/v1/alerts/{fp}"))).await;
        assert_eq!(status, 200, "answered alert {fp} lost\n{}", d.log_text());
    }
    for fp in &refused {
        let (status, _) = get(&client, d.url(&format!("/api/v1/alerts/{fp}"))).await;
        assert_eq!(status, 404, "refused alert {fp} was stored");
    }
    drop(d);
    let out = triaged(&["store", "verify"], &dir.path().join("triaged.toml"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `BIN ARGS --config CONFIG` as an unprivileged user (root reads any file, so under
/// root the command runs as `nobody` through `setpriv`).
fn triaged_unprivileged(
    bin: &std::path::Path,
    args: &[&str],
    config: &std::path::Path,
) -> std::process::Output {
    let mut cmd = if running_as_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        std::process::Command::new(bin)
    };
    cmd.args(args).arg("--config").arg(config).output().unwrap()
}

/// A data dir the daemon's user cannot read, and a damaged sled file: `serve` and
/// `store verify` refuse both, naming the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_or_damaged_data_dir_is_refused_naming_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("triaged.toml");
    // The binary, the rules and the config where the unprivileged user reaches them
    // (wherever the checkout is).
    let bin = dir.path().join("triaged");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_triaged"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_triaged"), &bin).unwrap();
    }
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for entry in std::fs::read_dir(shipped_rules()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
        }
    }
    let toml = config_toml(&dir.path().join("data"), &rules, "");
    let mut d = Child::start_with_config(dir.path(), &toml).await;
    let body = am_payload(vec![am_alert(
        "firing",
        json!({"alertname": "Kept", "job": "perm"}),
        "2026-12-01T01:00:00Z",
    )]);
    let r = reqwest::Client::new()
        .post(d.url(AM_PATH))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    d.signal("TERM");
    assert!(d.process.wait().unwrap().success());
    drop(d);

    // The data dir belongs to the unprivileged user, but it cannot read the database
    // file.
    let data = dir.path().join("data");
    if running_as_root() {
        let ok = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&data)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = data.join("sled/db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
    let expected = format!(
        "{} is not readable and writable: Permission denied",
        db.display()
    );
    for args in [&["serve"][..], &["store", "verify"]] {
        let out = triaged_unprivileged(&bin, args, &config);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&expected), "{args:?}: {err}");
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = triaged_unprivileged(&bin, &["store", "verify"], &config);
    assert!(
        out.status.success(),
        "readable again: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bytes of the database file overwritten.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[100..2100].fill(0xab);
    std::fs::write(&db, &bytes).unwrap();
    let expected = format!(
        "store damaged: the database in {} cannot be read back",
        data.join("sled").display()
    );
    // Each refusal leaves the damage for the next to find (sled rewrites parts of its
    // file while it tries to open it, but no attempt passes over the damage).
    for args in [&["serve"][..], &["store", "verify"], &["serve"]] {
        let out = triaged(args, &config);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&expected), "{args:?}: {err}");
    }
}

/// `triaged store backup --online` under load writes a data dir that starts with every
/// alert answered before it began and passes `store verify`; offline (the daemon
/// stopped) it copies the store exactly (the same export); refusals name the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_backup_online_under_load_and_offline_gives_a_data_dir_that_starts() {
    const ADMIN: &str = "admin-token-for-the-backup-test-0001";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("triaged.toml");
    let tokens = format!(
        "[[server.tokens]]\nname = \"am\"\nrole = \"ingest\"\ntoken = \"{ADMIN}-ingest\"\n\
         [[server.tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n"
    );
    let toml = config_toml(&dir.path().join("data"), &shipped_rules(), &tokens);
    let d = Child::start_with_config(dir.path(), &toml).await;
    let client = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {ADMIN}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let (acked, load) = start_load(&client, d.url(AM_PATH), 4, 5, |worker, n, k| {
        json!({"alertname": format!("Backup{k}"), "job": "backup",
               "instance": format!("w{worker}-n{n}")})
    });
    wait_for(60, "alerts to be answered", || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 200).then_some(()) }
    })
    .await;
    let before: Vec<String> = acked.lock().unwrap().clone();
    let base = d.url("");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
            .args(args)
            .args(["--url", &base, "--config"])
            .arg(&config)
            .env("TRIAGED_TOKEN", ADMIN)
            .output()
            .unwrap()
    };
    let out = cli(&["store", "backup", "--online", "nightly"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup = dir.path().join("backups/nightly");
    assert!(
        text.contains(&format!("backup written to {}", backup.display())),
        "{text}"
    );

    // Refusals: a name in use, a path for a name, no admin token, offline while running.
    let out = cli(&["store", "backup", "--online", "nightly"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("exists already"),
        "{err}"
    );
    let out = cli(&["store", "backup", "--online", "../elsewhere"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("name"), "{err}");
    assert!(err.contains("not a path"), "{err}");
    assert!(!dir.path().join("elsewhere").exists());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["store", "backup", "--online", "x", "--url", &base])
        .args(["--token", &format!("{ADMIN}-ingest")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dir.path().join("backups/x").exists());
    let offline = dir.path().join("offline");
    let out = cli(&["store", "backup", offline.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use (is triaged running? back it up through the daemon"),
        "{err}"
    );

    d.signal("TERM");
    let mut d = d;
    assert!(d.process.wait().unwrap().success());
    // Load went on while the backup was written.
    assert!(acked.lock().unwrap().len() > before.len());
    drop(d);
    for t in load {
        t.await.unwrap();
    }

    // The backup is a data dir: it verifies, and a daemon starts on it with every
    // alert answered before the backup began.
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(backup.join("backup.json")).unwrap())
            .unwrap();
    assert!(manifest["incidents"].as_u64().unwrap() >= 1, "{manifest}");
    assert!(manifest["records"]["alerts"].as_u64().unwrap() as usize >= before.len());
    let verify = triaged(
        &["store", "verify", "--data-dir", backup.to_str().unwrap()],
        &config,
    );
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let restored_dir = tempfile::tempdir().unwrap();
    let restored = Child::start_with_config(
        restored_dir.path(),
        &config_toml(&backup, &shipped_rules(), &tokens),
    )
    .await;
    for fp in &before {
        let (status, _) = get(&client, restored.url(&format!("/api/v1/alerts/{fp}"))).await;
        assert_eq!(
            status, 200,
            "alert {fp} answered before the backup is not in it"
        );
    }
    let (_, list) = get(&client, restored.url("/api/v1/incidents?limit=1000")).await;
    assert_eq!(
        list["incidents"].as_array().unwrap().len() as u64,
        manifest["incidents"].as_u64().unwrap()
    );
    drop(restored);

    // Offline: an exact copy (the same export, record for record).
    let out = cli(&["store", "backup", offline.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let original = exported(&config);
    let copy = triaged(
        &["export", "--data-dir", offline.to_str().unwrap()],
        &config,
    );
    assert!(copy.status.success());
    let copy: Vec<Value> = String::from_utf8_lossy(&copy.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(copy.len(), original.len());
    assert!(
        copy == original,
        "the offline backup differs from the store"
    );
    let out = cli(&["store", "backup", offline.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("File exists"),
        "{err}"
    );
}

/// The daemon's threads and their nice values (`/proc/<pid>/task/*`: `comm`, and
/// field 19 of `stat`).
/// Each thread's name, nice value and scheduling policy (0 SCHED_OTHER, 5 SCHED_IDLE).
/// `SCHED_IDLE` in /proc/<pid>/task/<tid>/stat's `policy` field (field 41).
const SCHED_IDLE: u32 = 5;

fn thread_nices(pid: u32) -> Vec<(String, i32, u32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // The name (field 2) is in parentheses and may hold spaces: count after it.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let nice: i32 = fields[16].parse().unwrap();
        let policy: u32 = fields[38].parse().unwrap();
        out.push((comm.trim_end().to_string(), nice, policy));
    }
    out
}

/// The store's background work (checkpoint thread, sled's IO threads and flusher) runs
/// under SCHED_IDLE at nice 19 once the first checkpoint has run; the threads a
/// request waits for (HTTP workers, correlation, the log's sync) keep the daemon's own
/// priority and policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_and_sleds_threads_run_at_low_priority_and_ingest_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\ndata_dir = {:?}\ncheckpoint_interval_secs = 1\n[rules]\ndir = {:?}\n",
        dir.path().join("data").display().to_string(),
        shipped_rules().display().to_string()
    );
    let d = Child::start_with_config(dir.path(), &toml).await;
    let client = reqwest::Client::new();
    post_one_firing(&client, &d, "Nice").await;
    let pid = d.process.id();
    // sled's threads are lowered before each checkpoint: wait for one that wrote.
    let threads = wait_for(20, "a checkpoint with sled's threads lowered", || {
        let threads = thread_nices(pid);
        let lowered = threads
            .iter()
            .filter(|(name, _, _)| name.starts_with("sled-io-") || name == "log flusher")
            .all(|(_, nice, policy)| *nice == 19 && *policy == SCHED_IDLE);
        let metrics = d.metrics();
        async move {
            let checkpoints = metrics
                .await
                .lines()
                .filter(|l| l.starts_with("triaged_store_checkpoints_total{result=\"ok\"}"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
            (checkpoints >= 1.0 && lowered).then_some(threads)
        }
    })
    .await;
    let nice = |name: &str| -> Vec<i32> {
        threads
            .iter()
            .filter(|(n, _, _)| n.starts_with(name))
            .map(|(_, nice, _)| *nice)
            .collect()
    };
    let policy = |name: &str| -> Vec<u32> {
        threads
            .iter()
            .filter(|(n, _, _)| n.starts_with(name))
            .map(|(_, _, policy)| *policy)
            .collect()
    };
    assert_eq!(nice("store-checkpoin"), vec![19], "{threads:?}");
    assert_eq!(policy("store-checkpoin"), vec![SCHED_IDLE], "{threads:?}");
    assert!(!nice("sled-io-").is_empty(), "{threads:?}");
    assert!(nice("sled-io-").iter().all(|n| *n == 19), "{threads:?}");
    assert!(
        policy("sled-io-").iter().all(|p| *p == SCHED_IDLE),
        "{threads:?}"
    );
    assert_eq!(nice("log flusher"), vec![19], "{threads:?}");
    assert_eq!(policy("log flusher"), vec![SCHED_IDLE], "{threads:?}");
    // The daemon's own priority: its main thread's (0 unless the tests run niced).
    let base = nice("triaged");
    assert_eq!(base.len(), 1, "{threads:?}");
    assert!(
        base[0] < 19,
        "the tests run at nice 19 already: {threads:?}"
    );
    for busy in ["correlation", "tokio-rt-worker"] {
        let nices = nice(busy);
        assert!(!nices.is_empty(), "no {busy} thread: {threads:?}");
        assert!(nices.iter().all(|n| *n == base[0]), "{busy}: {threads:?}");
        assert!(
            policy(busy).iter().all(|p| *p == policy("triaged")[0]),
            "{busy}: {threads:?}"
        );
    }
}
