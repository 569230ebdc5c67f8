//! The email sink against a real SMTP server (aiosmtpd from the test venv, keeping
//! mail in a Maildir): an incident's mails thread by Message-ID / In-Reply-To /
//! References, a policy's recipient replaces the sink's, a 550 is a dead letter, and
//! STARTTLS works with the relay's CA given (and not without it).

mod common;

use std::path::{Path, PathBuf};

use common::synapse::venv;
use common::{am_alert, am_payload, free_port, settled, wait_for, Daemon, Peer, AM_PATH};
use serde_json::{json, Value};

const PICKY: &str = r#"from aiosmtpd.handlers import Mailbox


class Picky(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith('nobody@'):
            return '550 5.1.1 no such user'
        envelope.rcpt_tos.append(address)
        return '250 OK'
"#;

struct Smtp {
    port: u16,
    maildir: PathBuf,
    _peer: Peer,
}

async fn smtp(dir: &Path, tls: Option<(&Path, &Path)>) -> Smtp {
    std::fs::write(dir.join("picky.py"), PICKY).unwrap();
    let port = free_port();
    let maildir = dir.join("maildir");
    let mut args: Vec<String> = vec![
        "-m".into(),
        "aiosmtpd".into(),
        "-n".into(),
        "-l".into(),
        format!("127.0.0.1:{port}"),
        "-c".into(),
        "picky.Picky".into(),
    ];
    if let Some((cert, key)) = tls {
        args.extend([
            "--tlscert".into(),
            cert.display().to_string(),
            "--tlskey".into(),
            key.display().to_string(),
        ]);
    }
    args.push(maildir.display().to_string());
    let peer = Peer::start(
        "aiosmtpd",
        &venv().join("bin/python").display().to_string(),
        &args,
        dir,
    );
    wait_for(20, "the SMTP server to listen", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    Smtp {
        port,
        maildir,
        _peer: peer,
    }
}

/// The mails in the Maildir, oldest first, as (headers by lower-case name, body).
fn mails(maildir: &Path) -> Vec<(std::collections::HashMap<String, String>, String)> {
    let mut files: Vec<_> = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap().replace("\r\n", "\n");
            let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
            let mut headers = std::collections::HashMap::new();
            let mut last = String::new();
            for line in head.lines() {
                if line.starts_with([' ', '\t']) {
                    headers
                        .entry(last.clone())
                        .and_modify(|v: &mut String| v.push_str(line.trim_start()));
                } else if let Some((k, v)) = line.split_once(':') {
                    last = k.to_lowercase();
                    headers.insert(last.clone(), v.trim().to_string());
                }
            }
            (headers, body.to_string())
        })
        .collect()
}

fn sink(port: u16, extra: &str) -> String {
    format!(
        "[[sinks]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\n\
         from = \"triaged <triaged@example.com>\"\nto = [\"oncall@example.com\", \"ops@example.com\"]\n\
         retry_initial_secs = 1\nretry_max_secs = 2\n{extra}\n[[routes]]\nsinks = [\"mail\"]\n"
    )
}

async fn fire(d: &Daemon, alertname: &str) {
    let labels = json!({"alertname": alertname, "service": "db", "severity": "critical"});
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-30T00:00:00Z")]);
    assert_eq!(d.post_json(AM_PATH, &body).await.0, 200);
}

#[tokio::test]
async fn an_incidents_mails_thread_and_a_550_is_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let server = smtp(dir.path(), None).await;
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        data.path(),
        &format!(
            "[[sinks]]\nname = \"void\"\ntype = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
             tls = \"none\"\nfrom = \"triaged@example.com\"\nto = [\"nobody@example.com\"]\n\
             [[routes]]\nservices = [\"db\"]\nevents = [\"opened\"]\nsinks = [\"void\"]\ncontinue = true\n\
             [[escalation.levels]]\nafter_secs = 0\nnotify = [\"mail:lead@example.com\"]\n\
             [sla.P1]\nrespond_secs = 2\n{}",
            server.port,
            sink(server.port, "tls = \"none\""),
        ),
    )
    .await;
    fire(&d, "DiskFull").await;
    let v = settled(&d, 1).await;
    let by = |v: &Value, sink: &str| {
        v["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["sink"] == sink)
            .cloned()
            .unwrap()
    };
    assert_eq!(by(&v, "mail")["state"], "delivered", "{v}");
    let dead = by(&v, "void");
    assert_eq!(
        (dead["state"].as_str(), dead["status"].as_u64()),
        (Some("dead"), Some(550)),
        "{v}"
    );
    assert!(
        dead["error"].as_str().unwrap().contains("no such user"),
        "{v}"
    );

    let (code, _) = d
        .post_json("/api/v1/incidents/INC-1/comment", &json!({"text": "on it"}))
        .await;
    assert_eq!(code, 200);
    // The escalation (respond-by 2 s) goes to the level's recipient only.
    // Opened, the comment, the respond breach and the escalation, in some order after
    // the first.
    let got = wait_for(20, "the escalation mail", || async {
        let m = mails(&server.maildir);
        m.iter()
            .any(|(h, _)| h["subject"].contains("escalated"))
            .then_some(m)
    })
    .await;
    let first_id = got[0].0["message-id"].clone();
    assert_eq!(first_id, "<triaged.INC-1.1.mail@example.com>");
    assert!(
        got[0].0["subject"].contains("INC-1 opened"),
        "{:?}",
        got[0].0
    );
    assert_eq!(got[0].0["to"], "oncall@example.com, ops@example.com");
    assert!(!got[0].0.contains_key("in-reply-to"));
    assert!(got[0].1.starts_with("Opened."), "{}", got[0].1);
    for (h, _) in &got[1..] {
        assert_eq!(h["in-reply-to"], first_id, "{h:?}");
        assert_eq!(h["references"], first_id, "{h:?}");
        assert_ne!(h["message-id"], first_id);
    }
    let escalated = got
        .iter()
        .find(|(h, _)| h["subject"].contains("escalated"))
        .unwrap_or_else(|| panic!("no escalation mail: {got:?}"));
    assert_eq!(escalated.0["to"], "lead@example.com");
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(inc["external"][0]["id"], first_id);
    d.stop().await;
}

#[tokio::test]
async fn starttls_needs_the_relays_ca() {
    let dir = tempfile::tempdir().unwrap();
    // A CA, and the relay's certificate signed by it (webpki refuses a self-signed
    // CA certificate as the server's own).
    let p = |name: &str| dir.path().join(name);
    let (cert, key, ca) = (p("cert.pem"), p("key.pem"), p("ca.pem"));
    std::fs::write(
        p("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let s = |x: &PathBuf| x.display().to_string();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            &s(&p("ca.key")),
            "-out",
            &s(&ca),
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &s(&key),
            "-out",
            &s(&p("leaf.csr")),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &s(&p("leaf.csr")),
            "-CA",
            &s(&ca),
            "-CAkey",
            &s(&p("ca.key")),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &s(&p("leaf.ext")),
            "-out",
            &s(&cert),
        ],
    ] {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = smtp(dir.path(), Some((&cert, &key))).await;

    // Without the CA: the certificate is not trusted; the mail waits.
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), &sink(server.port, "tls = \"starttls\"")).await;
    fire(&d, "DiskFull").await;
    let v = wait_for(20, "a failed TLS attempt", || async {
        let (_, v) = d.get("/api/v1/outbox/1").await;
        (v["deliveries"][0]["attempts"].as_u64() >= Some(1)).then_some(v)
    })
    .await;
    assert_eq!(v["deliveries"][0]["state"], "pending", "{v}");
    assert!(mails(&server.maildir).is_empty());
    d.stop().await;

    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        data.path(),
        &sink(
            server.port,
            &format!(
                "tls = \"starttls\"\nca_file = {:?}",
                ca.display().to_string()
            ),
        ),
    )
    .await;
    fire(&d, "DiskFull").await;
    let v = settled(&d, 1).await;
    assert_eq!(v["deliveries"][0]["state"], "delivered", "{v}");
    assert_eq!(mails(&server.maildir).len(), 1);
    d.stop().await;
}
