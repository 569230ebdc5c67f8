//! A real Matrix homeserver (Synapse, from the test venv `tests/run.sh` installs in
//! `target/test-venv`) on 127.0.0.1, with users registered by the shared secret and
//! the rate limits raised so that tests are not throttled. Stopped when dropped.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{free_port, wait_ready, Peer};

/// The Python venv with the test peers (matrix-synapse, aiosmtpd).
pub fn venv() -> PathBuf {
    let dir = std::env::var_os("TRIAGED_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    assert!(
        dir.join("bin/python").exists(),
        "no test venv in {} (tests/run.sh creates it with matrix-synapse and aiosmtpd)",
        dir.display()
    );
    dir
}

const SECRET: &str = "registration-shared-secret-for-tests";

pub struct Synapse {
    pub url: String,
    pub server_name: String,
    client: reqwest::Client,
    _peer: Peer,
    _dir: tempfile::TempDir,
}

impl Synapse {
    pub async fn start() -> Synapse {
        let venv = venv();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display().to_string();
        let limit = "{per_second: 1000, burst_count: 1000}";
        let config = format!(
            "server_name: test\npid_file: {d}/homeserver.pid\nreport_stats: false\n\
             listeners:\n  - port: {port}\n    bind_addresses: ['127.0.0.1']\n    type: http\n    tls: false\n\
             \x20   x_forwarded: false\n    resources:\n      - names: [client]\n        compress: false\n\
             database:\n  name: sqlite3\n  args:\n    database: {d}/homeserver.db\n\
             media_store_path: {d}/media\nsigning_key_path: {d}/signing.key\nlog_config: {d}/log.yaml\n\
             registration_shared_secret: {SECRET}\ntrusted_key_servers: []\nsuppress_key_server_warning: true\n\
             enable_registration: false\n\
             rc_message: {limit}\nrc_registration: {limit}\nrc_room_creation: {limit}\n\
             rc_login:\n  address: {limit}\n  account: {limit}\n  failed_attempts: {limit}\n\
             rc_joins:\n  local: {limit}\n  remote: {limit}\nrc_joins_per_room: {limit}\n\
             rc_invites:\n  per_room: {limit}\n  per_user: {limit}\n  per_issuer: {limit}\n"
        );
        std::fs::write(dir.path().join("homeserver.yaml"), config).unwrap();
        std::fs::write(
            dir.path().join("log.yaml"),
            "version: 1\nformatters:\n  f:\n    format: '%(asctime)s %(levelname)s %(name)s %(message)s'\n\
             handlers:\n  console:\n    class: logging.StreamHandler\n    formatter: f\n\
             root:\n  level: WARNING\n  handlers: [console]\ndisable_existing_loggers: false\n",
        )
        .unwrap();
        let peer = Peer::start(
            "synapse",
            &venv.join("bin/python").display().to_string(),
            &[
                "-m".into(),
                "synapse.app.homeserver".into(),
                "-c".into(),
                dir.path().join("homeserver.yaml").display().to_string(),
            ],
            dir.path(),
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        wait_ready(
            &client,
            &format!("{url}/_matrix/client/versions"),
            60,
            "synapse",
        )
        .await;
        Synapse {
            url,
            server_name: "test".into(),
            client,
            _peer: peer,
            _dir: dir,
        }
    }

    /// Registers `name` and logs in: its access token.
    pub async fn user(&self, name: &str) -> String {
        let status = tokio::process::Command::new(venv().join("bin/register_new_matrix_user"))
            .args([
                "-k",
                SECRET,
                "-u",
                name,
                "-p",
                "password-for-tests",
                "--no-admin",
                &self.url,
            ])
            .output()
            .await
            .unwrap();
        assert!(
            status.status.success(),
            "register {name}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let v: Value = self
            .client
            .post(format!("{}/_matrix/client/v3/login", self.url))
            .json(&json!({"type": "m.login.password",
                          "identifier": {"type": "m.id.user", "user": name},
                          "password": "password-for-tests"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("login {name}: {v}"))
            .to_string()
    }

    /// A client-server API call as the token's user.
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .client
            .request(method, format!("{}/_matrix/client{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }
}
