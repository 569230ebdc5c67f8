//! Rules that change while the daemon runs: the directory watcher, `GET /api/v1/rules`,
//! SIGHUP (config and rules) and the reload metrics, over HTTP and the real binary.

mod common;

use std::path::Path;

use common::{am_alert, am_payload, wait_for, Child, Daemon, AM_PATH};
use serde_json::{json, Value};

/// A rules directory holding copies of the shipped rules.
fn rules_copy(dir: &Path) -> std::path::PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for entry in std::fs::read_dir(common::shipped_rules()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
        }
    }
    rules
}

/// Writes a file the way editors do: a temporary file renamed over the target.
fn write_rule(dir: &Path, name: &str, src: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, src).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The shipped rule files, in the order they run.
fn shipped_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::shipped_rules())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    names.sort();
    names
}

/// `shipped_names()` with `extra` files, in the order they run.
fn shipped_and(extra: &[&str]) -> Vec<String> {
    let mut names = shipped_names();
    names.extend(extra.iter().map(|s| s.to_string()));
    names.sort();
    names
}

fn file_names(status: &Value) -> Vec<String> {
    status["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// Posts one firing alert and returns the key of the incident it went to.
async fn key_for(d: &Daemon, alertname: &str) -> String {
    let alert = am_alert(
        "firing",
        json!({"alertname": alertname, "service": "shop", "severity": "warning"}),
        "2026-11-29T10:00:00Z",
    );
    let (status, body) = d.post_json(AM_PATH, &am_payload(vec![alert])).await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = d.get("/api/v1/incidents?limit=1000").await;
    let incident = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"].as_str().unwrap().contains(alertname))
        .unwrap_or_else(|| panic!("no incident for {alertname}: {list}"))
        .clone();
    incident["key"].as_str().unwrap().to_string()
}

async fn metric(d: &Daemon, line_start: &str) -> f64 {
    d.metrics()
        .await
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

const ROUTE_RULE: &str = r#"
// Everything of service "shop" goes to the shop team's incident per alert name.
fn on_alert(alert) {
    if alert.labels.service == "shop" {
        return incident(#{ key: "shop-team/" + alert.labels.alertname });
    }
}
"#;

#[tokio::test]
async fn a_changed_rules_directory_is_reloaded_and_a_broken_file_keeps_the_old_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_copy(tmp.path());
    let d = Daemon::start_with_rules(&tmp.path().join("data"), &rules, "").await;

    let (status, before) = d.get("/api/v1/rules").await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(file_names(&before), shipped_names());
    assert_eq!(before["last_reload"]["result"], "ok");
    assert_eq!(before["last_reload"]["trigger"], "start");
    let file = |name: &str| {
        before["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {before}"))
            .clone()
    };
    let shipped = std::fs::read(rules.join("50-severity.rhai")).unwrap();
    use sha2::Digest;
    assert_eq!(
        file("50-severity.rhai")["sha256"],
        hex::encode(sha2::Sha256::digest(&shipped))
    );
    assert_eq!(file("50-severity.rhai")["hooks"], json!(["on_alert"]));
    assert_eq!(file("60-recurrence.rhai")["hooks"], json!(["on_incident"]));
    assert_eq!(key_for(&d, "DiskFull").await, "DiskFull/shop");

    // A new file: picked up without a restart, and decides from then on.
    write_rule(&rules, "20-route.rhai", ROUTE_RULE);
    let loaded = wait_for(10, "the new rule file to be loaded", || async {
        let (_, s) = d.get("/api/v1/rules").await;
        file_names(&s)
            .contains(&"20-route.rhai".to_string())
            .then_some(s)
    })
    .await;
    assert_eq!(loaded["last_reload"]["trigger"], "watch");
    assert_eq!(key_for(&d, "QueueStuck").await, "shop-team/QueueStuck");
    assert!(metric(&d, "triaged_rules_reloads_total{result=\"success\"}").await >= 1.0);

    // A file that does not compile: the error is shown with its place, the rules in
    // force stay as they were.
    write_rule(
        &rules,
        "30-broken.rhai",
        "fn on_alert(alert) {\n    let x = ;\n}\n",
    );
    let failed = wait_for(10, "the broken file to be reported", || async {
        let (_, s) = d.get("/api/v1/rules").await;
        (s["last_reload"]["result"] == "error").then_some(s)
    })
    .await;
    let error = &failed["last_reload"]["error"];
    assert!(
        error["file"].as_str().unwrap().ends_with("30-broken.rhai"),
        "{error}"
    );
    assert_eq!(error["line"], 2);
    assert_eq!(error["column"], 13);
    assert!(!error["message"].as_str().unwrap().is_empty());
    assert_eq!(
        file_names(&failed),
        shipped_and(&["20-route.rhai"]),
        "the set in force is unchanged"
    );
    assert_eq!(key_for(&d, "CpuHot").await, "shop-team/CpuHot");
    assert!(metric(&d, "triaged_rules_reloads_total{result=\"failure\"}").await >= 1.0);

    // Removing the broken file and the routing rule: the shipped set again.
    std::fs::remove_file(rules.join("30-broken.rhai")).unwrap();
    std::fs::remove_file(rules.join("20-route.rhai")).unwrap();
    wait_for(10, "the removals to be loaded", || async {
        let (_, s) = d.get("/api/v1/rules").await;
        (s["last_reload"]["result"] == "ok" && file_names(&s) == shipped_names()).then_some(())
    })
    .await;
    assert_eq!(key_for(&d, "MemLeak").await, "MemLeak/shop");
    d.stop().await;
}

#[tokio::test]
async fn the_rules_api_needs_an_operator_token() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &tmp.path().join("data"),
        "[[server.tokens]]\nname = \"am\"\nrole = \"ingest\"\ntoken = \"ingest-token-0123456789\"\n\
         [[server.tokens]]\nname = \"sre\"\nrole = \"operator\"\ntoken = \"operator-token-0123456789\"\n",
    )
    .await;
    let get = |token: Option<&'static str>| {
        let mut req = d.client.get(d.url("/api/v1/rules"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { common::status_json(req.send().await.unwrap()).await }
    };
    assert_eq!(get(None).await.0, 401);
    assert_eq!(get(Some("ingest-token-0123456789")).await.0, 403);
    let (status, body) = get(Some("operator-token-0123456789")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(file_names(&body), shipped_names());
    d.stop().await;
}

async fn get_child(client: &reqwest::Client, c: &Child, path: &str, token: &str) -> (u16, Value) {
    let resp = client
        .get(c.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    common::status_json(resp).await
}

#[tokio::test]
async fn sighup_reloads_the_config_and_rules_and_survives_a_broken_config() {
    let tmp = tempfile::tempdir().unwrap();
    let rules_a = rules_copy(tmp.path());
    let rules_b = tmp.path().join("rules-b");
    std::fs::create_dir_all(&rules_b).unwrap();
    write_rule(&rules_b, "20-route.rhai", ROUTE_RULE);
    let data = tmp.path().join("data");
    let token_a = "[[server.tokens]]\nname = \"sre\"\nrole = \"operator\"\ntoken = \"first-token-0123456789\"\n";
    let token_b = "[[server.tokens]]\nname = \"sre\"\nrole = \"operator\"\ntoken = \"second-token-0123456789\"\n";
    let config = |rules: &Path, tokens: &str| {
        format!(
            "{}\nwatch = false\n{tokens}",
            common::config_toml(&data, rules, "").trim_end()
        )
    };
    // `config_toml` ends with the [rules] table's `dir`; `watch` joins that table.
    let child = Child::start_with_config(tmp.path(), &config(&rules_a, token_a)).await;
    let client = reqwest::Client::new();
    let (status, s) = get_child(&client, &child, "/api/v1/rules", "first-token-0123456789").await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(file_names(&s), shipped_names());

    // With watching off, a new file waits for SIGHUP.
    write_rule(&rules_a, "20-route.rhai", ROUTE_RULE);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let (_, s) = get_child(&client, &child, "/api/v1/rules", "first-token-0123456789").await;
    assert_eq!(
        file_names(&s),
        shipped_names(),
        "not reloaded without SIGHUP: {s}"
    );
    std::fs::remove_file(rules_a.join("20-route.rhai")).unwrap();

    // A new config: another rules directory and another token.
    std::fs::write(tmp.path().join("triaged.toml"), config(&rules_b, token_b)).unwrap();
    child.signal("HUP");
    let s = wait_for(10, "SIGHUP to load the new config", || async {
        let (status, s) =
            get_child(&client, &child, "/api/v1/rules", "second-token-0123456789").await;
        (status == 200 && s["dir"] == rules_b.display().to_string()).then_some(s)
    })
    .await;
    assert_eq!(file_names(&s), ["20-route.rhai"]);
    assert_eq!(s["last_reload"]["trigger"], "sighup");
    let (status, _) = get_child(&client, &child, "/api/v1/rules", "first-token-0123456789").await;
    assert_eq!(status, 401, "the old token is gone");

    // A broken config: logged and counted; the daemon keeps its config and serves.
    std::fs::write(tmp.path().join("triaged.toml"), "[server\nlisten = 1\n").unwrap();
    child.signal("HUP");
    wait_for(10, "the failed reload to be counted", || async {
        let text = client
            .get(child.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("triaged_config_reloads_total{result=\"failure\"} 1")
            .then_some(())
    })
    .await;
    let alert = am_alert(
        "firing",
        json!({"alertname": "Lag", "service": "shop"}),
        "2026-11-29T10:00:00Z",
    );
    let resp = client
        .post(child.url(AM_PATH))
        .bearer_auth("second-token-0123456789")
        .json(&am_payload(vec![alert]))
        .send()
        .await
        .unwrap();
    // An operator token may not post alerts; the point is that the daemon answers
    // with its reloaded tokens after the broken reload.
    assert_eq!(resp.status(), 403);
    let (status, s) = get_child(&client, &child, "/api/v1/rules", "second-token-0123456789").await;
    assert_eq!(status, 200);
    assert_eq!(file_names(&s), ["20-route.rhai"]);
    assert!(
        child.log_text().contains("configuration not reloaded"),
        "{}",
        child.log_text()
    );
}

/// Hostile rule files, each set off by its own alert name: every one fails in its own
/// way, the daemon goes on answering, the alert gets the default decision and the
/// failure is counted by file and kind.
#[tokio::test]
async fn hostile_rules_never_stop_the_daemon() {
    let cases: &[(&str, &str, &str)] = &[
        ("10-loop.rhai", "Loop", "loop { }"),
        ("11-recursion.rhai", "Recurse", "return on_alert(alert);"),
        (
            "12-string.rhai",
            "BigString",
            "let s = \"xxxxxxxxxxxxxxxx\"; loop { s += s; }",
        ),
        ("13-array.rhai", "BigArray", "let a = [1]; loop { a += a; }"),
        ("14-throw.rhai", "Throw", "throw \"rule bug\";"),
        ("15-type.rhai", "WrongType", "return 42;"),
        (
            "16-missing.rhai",
            "MissingKey",
            "return incident(#{ title: \"no key\" });",
        ),
        (
            "17-regex.rhai",
            "BadRegex",
            "return regex_match(\"(unclosed\", alert.labels.alertname);",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for (file, name, body) in cases {
        std::fs::write(
            rules.join(file),
            format!("fn on_alert(alert) {{\n    if alert.labels.alertname == \"{name}\" {{\n        {body}\n    }}\n}}\n"),
        )
        .unwrap();
    }
    let d = Daemon::start_with_rules(&tmp.path().join("data"), &rules, "").await;
    let kinds = [
        "limit",
        "limit",
        "limit",
        "limit",
        "runtime",
        "malformed",
        "malformed",
        "runtime",
    ];
    for ((file, name, _), kind) in cases.iter().zip(kinds) {
        assert_eq!(key_for(&d, name).await, format!("{name}/shop"), "{file}");
        let counted = metric(
            &d,
            &format!("triaged_rule_errors_total{{kind=\"{kind}\",rule=\"{file}\"}}"),
        )
        .await;
        assert_eq!(counted, 1.0, "{file} counted as {kind}");
    }
    // Still healthy, and a plain alert still goes through every script.
    let (status, _) = d.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(key_for(&d, "Calm").await, "Calm/shop");
    d.stop().await;
}

/// A Kubernetes ConfigMap volume: the rule files are symlinks through `..data`, and an
/// update swaps `..data` to a new directory in one rename. No `*.rhai` name changes,
/// yet the new rules must be loaded; a change that leaves the files as they are
/// reloads nothing.
#[tokio::test]
async fn a_configmap_style_symlink_swap_is_reloaded() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(rules.join("..v1")).unwrap();
    std::fs::write(
        rules.join("..v1/20-route.rhai"),
        "fn on_alert(alert) { incident(#{ key: \"v1/\" + alert.labels.alertname }) }\n",
    )
    .unwrap();
    symlink("..v1", rules.join("..data")).unwrap();
    symlink("..data/20-route.rhai", rules.join("20-route.rhai")).unwrap();
    let d = Daemon::start_with_rules(&tmp.path().join("data"), &rules, "").await;
    assert_eq!(key_for(&d, "First").await, "v1/First");
    let (_, before) = d.get("/api/v1/rules").await;

    // Something that is not a rule changes: no reload.
    std::fs::write(rules.join("notes.txt"), "not a rule").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let (_, after) = d.get("/api/v1/rules").await;
    assert_eq!(after["loaded_at"], before["loaded_at"], "{after}");
    assert_eq!(after["last_reload"]["trigger"], "start");

    // The ConfigMap update.
    std::fs::create_dir_all(rules.join("..v2")).unwrap();
    std::fs::write(
        rules.join("..v2/20-route.rhai"),
        "fn on_alert(alert) { incident(#{ key: \"v2/\" + alert.labels.alertname }) }\n",
    )
    .unwrap();
    symlink("..v2", rules.join("..data_tmp")).unwrap();
    std::fs::rename(rules.join("..data_tmp"), rules.join("..data")).unwrap();
    wait_for(10, "the swapped rules to be loaded", || async {
        let (_, s) = d.get("/api/v1/rules").await;
        (s["loaded_at"] != before["loaded_at"]).then_some(())
    })
    .await;
    assert_eq!(key_for(&d, "Second").await, "v2/Second");
    d.stop().await;
}

/// The same reload in the real binary (`triaged serve`), with its own watcher thread.
#[tokio::test]
async fn the_running_binary_picks_up_a_new_rule_file() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_copy(tmp.path());
    let config = common::config_toml(&tmp.path().join("data"), &rules, "");
    let child = Child::start_with_config(tmp.path(), &config).await;
    let client = reqwest::Client::new();
    write_rule(&rules, "20-route.rhai", ROUTE_RULE);
    wait_for(10, "the binary to load the new rule", || async {
        let s: Value = client
            .get(child.url("/api/v1/rules"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        file_names(&s)
            .contains(&"20-route.rhai".to_string())
            .then_some(())
    })
    .await;
    let alert = am_alert(
        "firing",
        json!({"alertname": "Stuck", "service": "shop"}),
        "2026-11-29T10:00:00Z",
    );
    let resp = client
        .post(child.url(AM_PATH))
        .json(&am_payload(vec![alert]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let list: Value = client
        .get(child.url("/api/v1/incidents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["incidents"][0]["key"], "shop-team/Stuck", "{list}");
    assert!(
        child.log_text().contains("rules reloaded"),
        "{}",
        child.log_text()
    );
}
