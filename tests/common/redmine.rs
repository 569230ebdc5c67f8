//! A real Redmine (Debian's `redmine` + `redmine-sqlite`, run under thin) on
//! 127.0.0.1: a per-test instance (a temp dir linked as `/var/lib/redmine/<name>`)
//! with a copy of the package's ready database, the REST API enabled, an admin API
//! key and a project `ops`. Stopped, and the link removed, when dropped.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{free_port, synapse::venv, wait_for, Peer};

const PACKAGED_DB: &str =
    "/var/lib/dbconfig-common/sqlite3/redmine/instances/default/redmine_default";
pub const KEY: &str = "0123456789abcdef0123456789abcdef01234567";

pub struct Redmine {
    pub url: String,
    client: reqwest::Client,
    link: PathBuf,
    _peer: Peer,
    _dir: tempfile::TempDir,
}

impl Redmine {
    pub async fn start() -> Redmine {
        assert!(
            std::path::Path::new(PACKAGED_DB).exists()
                && std::path::Path::new("/usr/share/redmine").exists(),
            "Redmine is not installed (tests/run.sh installs redmine and redmine-sqlite)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["config", "log", "tmp/cache", "files", "public"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let db = d.join("redmine.db");
        std::fs::copy(PACKAGED_DB, &db).unwrap();
        std::fs::write(
            d.join("config/database.yml"),
            format!(
                "production:\n  adapter: sqlite3\n  database: {}\n  encoding: utf8\n",
                db.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("config/secret_key.txt"),
            format!("{:x}{:x}", fastrand::u128(..), fastrand::u128(..)),
        )
        .unwrap();
        let sql = format!(
            "import sqlite3\nc = sqlite3.connect({db:?})\n\
             c.execute(\"insert into settings (name, value, updated_on) values ('rest_api_enabled', '1', datetime('now'))\")\n\
             c.execute(\"update users set must_change_passwd = 0 where login = 'admin'\")\n\
             c.execute(\"insert into tokens (user_id, action, value, created_on, updated_on) values (1, 'api', '{KEY}', datetime('now'), datetime('now'))\")\n\
             c.commit()\n",
            db = db.display().to_string()
        );
        let out = std::process::Command::new(venv().join("bin/python"))
            .args(["-c", &sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let name = format!("triaged-test-{port}");
        let link = PathBuf::from("/var/lib/redmine").join(&name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(d, &link)
            .expect("link the instance into /var/lib/redmine (root)");
        let peer = Peer::start_in(
            "redmine",
            "bin/rails",
            &[
                "server".into(),
                "-b".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                // Its own pid file: rails refuses to start beside one that shares it.
                "-P".into(),
                d.join("server.pid").display().to_string(),
            ],
            std::path::Path::new("/usr/share/redmine"),
            d,
            &[
                ("REDMINE_INSTANCE", name.as_str()),
                ("RAILS_ENV", "production"),
            ],
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let r = Redmine {
            url,
            client,
            link,
            _peer: peer,
            _dir: dir,
        };
        wait_for(60, "redmine to answer", || async {
            let resp = r
                .client
                .get(format!("{}/issues.json", r.url))
                .header("X-Redmine-API-Key", KEY)
                .send()
                .await
                .ok()?;
            resp.status().is_success().then_some(())
        })
        .await;
        let (code, v) = r
            .api(
                reqwest::Method::POST,
                "/projects.json",
                Some(
                    json!({"project": {"name": "Ops", "identifier": "ops", "tracker_ids": [1, 2, 3],
                                        "enabled_module_names": ["issue_tracking"]}}),
                ),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        r
    }

    /// A REST call as the admin.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .header("X-Redmine-API-Key", KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        super::status_json(resp).await
    }
}

impl Drop for Redmine {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
    }
}
