//! Hostile clients against the HTTP API: every endpoint refuses a missing or wrong
//! token (401) and the wrong role (403); bodies over the limit get 413 everywhere;
//! slow-loris clients are cut off (the head after `header_timeout_secs`, the body with
//! 408 after `body_timeout_secs`); deeply nested JSON, odd Unicode in labels and
//! path-like ids get 4xx or are stored as sent, and the daemon keeps serving; a
//! replayed signed webhook changes nothing; tokens never reach the log.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INGEST: &str = "ingest-token-sec-0123456789";
const OPERATOR: &str = "operator-token-sec-0123456789";
const ADMIN: &str = "admin-token-sec-0123456789";
const HOOK_SECRET: &str = "hook-hmac-secret-sec-0123";

fn config(dir: &std::path::Path) -> String {
    let secret = dir.join("hook.secret");
    std::fs::write(&secret, HOOK_SECRET).unwrap();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 4096\nheader_timeout_secs = 1\n\
         body_timeout_secs = 1\n\
         [[server.tokens]]\nname = \"am\"\nrole = \"ingest\"\ntoken = \"{INGEST}\"\n\
         [[server.tokens]]\nname = \"oncall\"\nrole = \"operator\"\ntoken = \"{OPERATOR}\"\n\
         [[server.tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n\
         [store]\ndata_dir = {:?}\n[rules]\ndir = {:?}\n\
         [[webhooks]]\nname = \"generic\"\nmapping = \"generic.rhai\"\n\
         [[webhooks]]\nname = \"signed\"\nmapping = \"generic.rhai\"\nhmac_secret_file = {:?}\n",
        dir.join("data").display().to_string(),
        shipped_rules().display().to_string(),
        secret.display().to_string(),
    )
}

/// Every endpoint with the role it needs (None: open to all).
fn endpoints() -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    vec![
        ("POST", "/api/v1/webhooks/alertmanager", Some("ingest")),
        ("POST", "/api/v1/webhooks/generic", Some("ingest")),
        ("GET", "/api/v1/incidents", Some("operator")),
        ("GET", "/api/v1/incidents/INC-1", Some("operator")),
        ("PATCH", "/api/v1/incidents/INC-1", Some("operator")),
        (
            "POST",
            "/api/v1/incidents/INC-1/acknowledge",
            Some("operator"),
        ),
        ("GET", "/api/v1/incidents/INC-1/timeline", Some("operator")),
        ("GET", "/api/v1/alerts", Some("operator")),
        ("GET", "/api/v1/alerts/0123456789abcdef", Some("operator")),
        ("GET", "/api/v1/rules", Some("operator")),
        ("GET", "/api/v1/config", Some("admin")),
        ("POST", "/api/v1/store/backups", Some("admin")),
        ("GET", "/api/v1/audit/verify", Some("operator")),
        ("GET", "/api/v1/changes", Some("operator")),
        ("POST", "/api/v1/changes", Some("ingest")),
        ("GET", "/api/v1/changes/CHG-1", Some("operator")),
        ("GET", "/api/v1/outbox", Some("operator")),
        ("GET", "/api/v1/outbox/events", Some("operator")),
        ("GET", "/api/v1/outbox/1", Some("operator")),
        ("POST", "/api/v1/outbox/1/retry", Some("operator")),
        ("GET", "/api/v1/reports/sla", Some("operator")),
        ("GET", "/api/v1/silences", Some("operator")),
        ("POST", "/api/v1/silences", Some("operator")),
        ("GET", "/api/v1/silences/SIL-1", Some("operator")),
        ("DELETE", "/api/v1/silences/SIL-1", Some("operator")),
        ("GET", "/api/v1/problems", Some("operator")),
        ("POST", "/api/v1/problems", Some("operator")),
        ("GET", "/api/v1/problems/PRB-1", Some("operator")),
        ("PATCH", "/api/v1/problems/PRB-1", Some("operator")),
        ("POST", "/api/v1/problems/PRB-1/close", Some("operator")),
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/metrics", None),
    ]
}

fn token_of(role: &str) -> &'static str {
    match role {
        "ingest" => INGEST,
        "operator" => OPERATOR,
        _ => ADMIN,
    }
}

async fn call(d: &Daemon, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = d
        .client
        .request(method.parse().unwrap(), d.url(path))
        .header("content-type", "application/json");
    if method != "GET" && method != "DELETE" {
        req = req.body("{}");
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    status_json(req.send().await.unwrap()).await
}

#[tokio::test]
async fn every_endpoint_wants_its_token_and_role() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_toml(&config(dir.path())).await;
    for (method, path, need) in endpoints() {
        let Some(need) = need else {
            assert_eq!(call(&d, method, path, None).await.0, 200, "{method} {path}");
            continue;
        };
        let (status, err) = call(&d, method, path, None).await;
        assert_eq!(status, 401, "{method} {path} without a token");
        assert_eq!(err["field"], "Authorization", "{method} {path}");
        let (status, _) = call(&d, method, path, Some("wrong-token-0000000000000")).await;
        assert_eq!(status, 401, "{method} {path} with a wrong token");
        // Roles that do not grant it: 403.
        for role in ["ingest", "operator"] {
            let grants = role == need;
            if !grants {
                let (status, err) = call(&d, method, path, Some(token_of(role))).await;
                assert_eq!(status, 403, "{method} {path} as {role}: {err}");
            }
        }
        // The right role (or admin) gets past authorisation: whatever the answer is,
        // it is not 401/403.
        for role in [need, "admin"] {
            let (status, err) = call(&d, method, path, Some(token_of(role))).await;
            assert!(
                status != 401 && status != 403 && status < 500,
                "{method} {path} as {role}: {status} {err}"
            );
        }
    }
    d.stop().await;
}

/// Sends `head` (request line and headers, without the blank line) and a chunked body
/// of `body` in 1 KiB chunks over a raw connection; returns the status and JSON body.
async fn chunked(addr: std::net::SocketAddr, head: &str, body: &str) -> (u16, Value) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{head}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for chunk in body.as_bytes().chunks(1024) {
        req.push_str(&format!("{:x}\r\n", chunk.len()));
        req.push_str(std::str::from_utf8(chunk).unwrap());
        req.push_str("\r\n");
    }
    req.push_str("0\r\n\r\n");
    // The server may answer (and close) before it has read everything.
    let _ = conn.write_all(req.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    parse_response(&answer)
}

fn parse_response(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    // A chunked answer: the JSON is the line that starts with '{'.
    let json = body
        .lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_on_every_endpoint_that_takes_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_toml(&config(dir.path())).await;
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(5000));
    for (method, path, need) in endpoints() {
        if method == "GET" || method == "DELETE" || need.is_none() {
            continue;
        }
        let (status, err) = status_json(
            d.client
                .request(method.parse().unwrap(), d.url(path))
                .header("content-type", "application/json")
                .bearer_auth(ADMIN)
                .body(big.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, &err["field"]),
            (413, &json!("body")),
            "{method} {path}: {err}"
        );
        // Without a Content-Length the limit applies as the body streams in.
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {ADMIN}"
        );
        let (status, err) = chunked(d.addr, &head, &big).await;
        assert_eq!(
            (status, &err["field"]),
            (413, &json!("body")),
            "{method} {path} chunked: {err}"
        );
    }
    assert_eq!(d.get("/healthz").await.0, 200);
    d.stop().await;
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_others_are_served_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_toml(&config(dir.path())).await;
    // A head that never ends: the connection is closed after header_timeout_secs (1).
    let mut slow_head = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    slow_head
        .write_all(b"POST /api/v1/webhooks/alertmanager HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A body that never ends: 408 naming the body after body_timeout_secs (1).
    let mut slow_body = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    slow_body
        .write_all(
            format!(
                "POST /api/v1/webhooks/alertmanager HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {INGEST}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{\"version\""
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Meanwhile others are served.
    assert_eq!(d.get("/healthz").await.0, 200);
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), slow_head.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the slow head was not cut off within 20 s");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed before the timeout: {:?}",
        String::from_utf8_lossy(&buf)
    );
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        // The answer comes, then the connection stays open or closes: read what is there.
        let mut chunk = [0u8; 4096];
        loop {
            let n = slow_body.read(&mut chunk).await.unwrap_or(0);
            buf.extend_from_slice(&chunk[..n]);
            if n == 0 || String::from_utf8_lossy(&buf).contains('}') {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to the slow body within 20 s");
    let (status, err) = parse_response(&buf);
    assert_eq!((status, &err["field"]), (408, &json!("body")), "{err}");
    // Nothing was stored, and the daemon serves. (A new connection: the head timeout
    // also closes kept-alive connections idle for a second, like the client's.)
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let resp = fresh
        .get(d.url("/api/v1/alerts"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    let (status, list) = status_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(list["alerts"].as_array().map(Vec::len), Some(0), "{list}");
    d.stop().await;
}

#[tokio::test]
async fn deep_nesting_odd_unicode_and_path_like_ids_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_toml(&config(dir.path())).await;
    let post = |path: &'static str, body: Vec<u8>| {
        d.client
            .post(d.url(path))
            .header("content-type", "application/json")
            .bearer_auth(INGEST)
            .body(body)
            .send()
    };
    // 3000 levels of arrays (under the 4 KiB limit with a larger limit it would be the
    // same): serde_json's recursion limit answers 400, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000)).into_bytes();
    for path in ["/api/v1/webhooks/alertmanager", "/api/v1/webhooks/generic"] {
        let (status, err) = status_json(post(path, deep.clone()).await.unwrap()).await;
        assert!(status == 400 || status == 413, "{path}: {status} {err}");
        assert!(err["error"].is_string(), "{path}: {err}");
    }
    let nested = format!(
        "{{\"version\":\"4\",\"status\":\"firing\",\"receiver\":\"r\",\"groupKey\":\"g\",\
         \"alerts\":[{{\"labels\":{}1{}}}]}}",
        "{\"a\":".repeat(200),
        "}".repeat(200)
    );
    let (status, err) = status_json(
        post("/api/v1/webhooks/alertmanager", nested.into_bytes())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    // Invalid UTF-8 is refused.
    let (status, _) = status_json(
        post(
            "/api/v1/webhooks/alertmanager",
            b"{\"version\":\"4\xff\"}".to_vec(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    // Labels with right-to-left overrides, zero-width joiners, combining marks, an
    // escaped NUL, astral characters: stored and read back exactly.
    let odd = "\u{202e}evil\u{200d}\u{0301}\u{0000}\u{1f525}\u{10ffff}";
    let body = am_payload(vec![am_alert(
        "firing",
        json!({"alertname": "Odd", "service": "db", "instance": odd, "note": odd}),
        "2026-12-01T00:00:00Z",
    )]);
    let (status, err) = status_json(
        post(
            "/api/v1/webhooks/alertmanager",
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{err}");
    let (_, alerts) = call(&d, "GET", "/api/v1/alerts", Some(OPERATOR)).await;
    let stored = &alerts["alerts"][0];
    assert_eq!(stored["labels"]["instance"], odd, "{alerts}");
    assert_eq!(stored["labels"]["note"], odd);

    // Ids that look like paths are plain strings: 400/404 JSON, never a file read.
    for path in [
        "/api/v1/incidents/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v1/incidents/INC-1%00",
        "/api/v1/alerts/..%2F..%2Fsled%2Fconf",
        "/api/v1/reports/..%2Fetc%2Fpasswd",
        "/api/v1/problems/%2E%2E",
        "/api/v1/incidents/../../../../etc/passwd",
    ] {
        let (status, err) = call(&d, "GET", path, Some(OPERATOR)).await;
        assert!(status == 400 || status == 404, "{path}: {status} {err}");
        assert!(err["error"].is_string(), "{path}: {err}");
        assert!(!err.to_string().contains("root:"), "{path}: {err}");
    }
    let (status, err) = call(&d, "POST", "/api/v1/webhooks/..%2Fgeneric", Some(INGEST)).await;
    assert_eq!((status, &err["field"]), (404, &json!("name")), "{err}");
    assert_eq!(d.get("/healthz").await.0, 200);
    d.stop().await;
}

fn sign(body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn signed_webhooks_check_the_signature_and_a_replay_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_toml(&config(dir.path())).await;
    let body = serde_json::to_vec(&json!({
        "alertname": "BackupFailed", "labels": {"service": "files"},
        "starts_at": "2026-12-01T02:00:00Z"
    }))
    .unwrap();
    let send = |sig: Option<String>, body: Vec<u8>| {
        let mut req = d
            .client
            .post(d.url("/api/v1/webhooks/signed"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = sig {
            req = req.header("x-hub-signature-256", s);
        }
        async move { status_json(req.send().await.unwrap()).await }
    };
    assert_eq!(send(None, body.clone()).await.0, 401);
    let mut other = body.clone();
    other.push(b' ');
    // A signature of another body, and one that differs in its last digit.
    assert_eq!(send(Some(sign(&other)), body.clone()).await.0, 401);
    let mut near = sign(&body);
    let last = near.pop().unwrap();
    near.push(if last == '0' { '1' } else { '0' });
    assert_eq!(send(Some(near), body.clone()).await.0, 401);
    let (status, err) = send(Some(sign(&body)), body.clone()).await;
    assert_eq!(status, 200, "{err}");
    let incidents = || async {
        let (_, list) = call(&d, "GET", "/api/v1/incidents", Some(OPERATOR)).await;
        list["incidents"].clone()
    };
    let before = incidents().await;
    assert_eq!(before.as_array().map(Vec::len), Some(1), "{before}");
    // The same signed request again (a replay): accepted as a repeat, no new record.
    for _ in 0..3 {
        assert_eq!(send(Some(sign(&body)), body.clone()).await.0, 200);
    }
    let after = incidents().await;
    assert_eq!(after.as_array().map(Vec::len), Some(1), "{after}");
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["alerts_total"], before[0]["alerts_total"]);
    d.stop().await;
}

#[tokio::test]
async fn tokens_and_secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path()).replace("[store]", "[log]\nlevel = \"trace\"\n[store]");
    let child = Child::start_with_config(dir.path(), &toml).await;
    let client = reqwest::Client::new();
    let body = am_payload(vec![am_alert(
        "firing",
        json!({"alertname": "A", "service": "db", "instance": "1"}),
        "2026-12-01T00:00:00Z",
    )]);
    for token in [INGEST, OPERATOR, ADMIN, "wrong-token-log-0000000000"] {
        client
            .post(child.url("/api/v1/webhooks/alertmanager"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        client
            .get(child.url("/api/v1/config"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    }
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("am:{INGEST}"));
    client
        .post(child.url("/api/v1/webhooks/alertmanager"))
        .header("authorization", format!("Basic {basic}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let signed = b"{\"alertname\":\"S\"}".to_vec();
    client
        .post(child.url("/api/v1/webhooks/signed"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(&signed))
        .body(signed)
        .send()
        .await
        .unwrap();
    child.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = child.log_text();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "no verbose log: {log}"
    );
    for secret in [
        INGEST,
        OPERATOR,
        ADMIN,
        HOOK_SECRET,
        &basic,
        "wrong-token-log-0000000000",
    ] {
        assert!(!log.contains(secret), "{secret:?} is in the log");
    }
}
