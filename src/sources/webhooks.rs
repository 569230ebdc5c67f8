//! Named webhooks (`[[webhooks]]`, `POST /api/v1/webhooks/{name}`): a Rhai mapping
//! script under `rules/mappings/` turns a sender's JSON body into alerts, so that any
//! tool that can call a webhook can send to triaged (Grafana, a generic JSON alert, and
//! anything that pages PagerDuty through its Events API v2 ship as mappings).
//!
//! A mapping defines `fn on_webhook(body)` (or `fn on_webhook(body, headers)`, header
//! names in lower case; not `map`, which would hide arrays' `map` method) and returns an alert map, an array of them, nothing (no alerts), or
//! `#{ alerts: [...], response: #{ status, body } }` to answer as the sender expects.
//! An alert map: `alertname` (or `labels.alertname`), `status` (`firing` by default or
//! `resolved`), `labels`, `annotations`, `starts_at`/`ends_at` (RFC 3339 text or Unix
//! seconds), `fingerprint` (default: from the labels), `generator_url`, and
//! `acknowledge: true` to acknowledge the incident the alert is attached to.
//!
//! Mappings run in the rules' sandbox with the rules' limits. Pure: bytes and time in,
//! alerts or a [`PayloadError`] naming the field out; the signature check is here too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rhai::{Dynamic, Engine, Map, AST};
use serde_json::Value;

use super::PayloadError;
use crate::alerts::{Alert, AlertStatus, LabelSet, Source};
use crate::config::RuleEnv;
use crate::rules::LoadError;

/// One compiled mapping script.
struct Mapping {
    ast: AST,
    /// `on_webhook` takes the headers too.
    with_headers: bool,
}

/// The mapping scripts the configured webhooks name, compiled.
pub struct Mappings {
    engine: Engine,
    by_file: BTreeMap<String, Mapping>,
}

impl std::fmt::Debug for Mappings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mappings")
            .field("files", &self.by_file.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The configured webhooks with their mappings compiled: what the HTTP side serves.
#[derive(Debug)]
pub struct WebhookSet {
    pub hooks: Vec<crate::config::Webhook>,
    pub mappings: Mappings,
}

impl WebhookSet {
    /// Compiles every mapping the settings' webhooks name.
    pub fn load(settings: &crate::config::Settings) -> Result<WebhookSet, LoadError> {
        let mut files: Vec<String> = settings
            .webhooks
            .iter()
            .map(|w| w.mapping.clone())
            .collect();
        files.sort();
        files.dedup();
        let mappings = Mappings::load(
            &settings.rules.mappings_dir(),
            &files,
            &settings.rules.env(),
        )?;
        Ok(WebhookSet {
            hooks: settings.webhooks.clone(),
            mappings,
        })
    }

    pub fn get(&self, name: &str) -> Option<&crate::config::Webhook> {
        self.hooks.iter().find(|w| w.name == name)
    }
}

/// What a mapping made of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub alerts: Vec<Alert>,
    /// Fingerprints of alerts whose incident is to be acknowledged.
    pub acknowledge: Vec<String>,
    /// The answer the mapping asked for: status and JSON body.
    pub response: Option<(u16, Value)>,
}

impl Mappings {
    /// Compiles `files` from `dir` (`rules/mappings`); a file that is missing or does not
    /// compile, or has no `map` function, is an error naming file, line and column.
    pub fn load(dir: &Path, files: &[String], env: &RuleEnv) -> Result<Mappings, LoadError> {
        let engine = crate::rules::engine(env);
        let mut by_file = BTreeMap::new();
        for name in files {
            let file: PathBuf = dir.join(name);
            let src = std::fs::read_to_string(&file).map_err(|e| LoadError::Compile {
                file: file.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the mapping: {e}"),
            })?;
            let ast = crate::rules::compile_script(&engine, &file, &src)?;
            let params = ast
                .iter_functions()
                .find(|f| f.name == "on_webhook")
                .map(|f| f.params.len());
            let with_headers =
                match params {
                    Some(1) => false,
                    Some(2) => true,
                    _ => return Err(LoadError::Compile {
                        file,
                        line: 1,
                        column: 1,
                        message:
                            "a mapping defines fn on_webhook(body) or fn on_webhook(body, headers)"
                                .into(),
                    }),
                };
            by_file.insert(name.clone(), Mapping { ast, with_headers });
        }
        Ok(Mappings { engine, by_file })
    }

    /// Runs mapping `file` over a parsed body; `now` is the receive time.
    pub fn map(
        &self,
        file: &str,
        body: &Value,
        headers: &BTreeMap<String, String>,
        now: Timestamp,
    ) -> Result<Mapped, PayloadError> {
        let mapping = self.by_file.get(file).ok_or_else(|| {
            PayloadError::new(
                "mapping",
                "mapping_error",
                format!("no mapping {file:?} loaded"),
            )
        })?;
        let input = to_dynamic(body);
        let result = if mapping.with_headers {
            let h: Map = headers
                .iter()
                .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
                .collect();
            crate::rules::call_under_deadline(
                &self.engine,
                &mapping.ast,
                "on_webhook",
                (input, Dynamic::from_map(h)),
            )
        } else {
            crate::rules::call_under_deadline(&self.engine, &mapping.ast, "on_webhook", (input,))
        }
        .map_err(|(kind, message)| {
            PayloadError::new(
                "body",
                if kind == "limit" {
                    "mapping_limit"
                } else {
                    "mapping_error"
                },
                format!("mapping {file} failed: {message}"),
            )
        })?;
        mapped(result, now)
    }
}

fn malformed(field: impl Into<String>, message: impl Into<String>) -> PayloadError {
    PayloadError::new(field, "mapping_malformed", message)
}

/// The mapping's result as alerts.
fn mapped(result: Dynamic, now: Timestamp) -> Result<Mapped, PayloadError> {
    let mut out = Mapped {
        alerts: Vec::new(),
        acknowledge: Vec::new(),
        response: None,
    };
    let list: Vec<Dynamic> = if result.is_unit() {
        Vec::new()
    } else if result.is_array() {
        result.cast::<rhai::Array>()
    } else if let Some(map) = result.clone().try_cast::<Map>() {
        if map.contains_key("alerts") {
            if let Some(resp) = map.get("response") {
                out.response = Some(response(resp)?);
            }
            for key in map.keys() {
                if !matches!(key.as_str(), "alerts" | "response") {
                    return Err(malformed(
                        key.as_str(),
                        format!("unknown field {key:?} beside alerts (expected alerts, response)"),
                    ));
                }
            }
            let alerts = map.get("alerts").cloned().unwrap_or(Dynamic::UNIT);
            if alerts.is_unit() {
                Vec::new()
            } else {
                alerts
                    .try_cast::<rhai::Array>()
                    .ok_or_else(|| malformed("alerts", "alerts must be an array of alert maps"))?
            }
        } else {
            vec![Dynamic::from_map(map)]
        }
    } else {
        return Err(malformed(
            "alerts",
            format!(
                "on_webhook must return an alert map, an array of them or nothing, got a {}",
                result.type_name()
            ),
        ));
    };
    for (i, item) in list.into_iter().enumerate() {
        let field = |f: &str| format!("alerts[{i}].{f}");
        let map = item
            .try_cast::<Map>()
            .ok_or_else(|| malformed(format!("alerts[{i}]"), "an alert must be a map"))?;
        let (alert, ack) = alert_from_map(&map, now, &field)?;
        if ack {
            out.acknowledge.push(alert.fingerprint.clone());
        }
        out.alerts.push(alert);
    }
    Ok(out)
}

fn response(v: &Dynamic) -> Result<(u16, Value), PayloadError> {
    let map = v
        .clone()
        .try_cast::<Map>()
        .ok_or_else(|| malformed("response", "response must be a map #{ status, body }"))?;
    let status = map
        .get("status")
        .and_then(|s| s.as_int().ok())
        .filter(|s| (200..300).contains(s))
        .ok_or_else(|| malformed("response.status", "a 2xx status (an integer) is required"))?;
    let body = map.get("body").map(to_json).unwrap_or(Value::Null);
    Ok((status as u16, body))
}

fn text_of(v: &Dynamic, field: &str) -> Result<String, PayloadError> {
    if let Some(s) = v.clone().try_cast::<rhai::ImmutableString>() {
        return Ok(s.to_string());
    }
    if v.is_int() || v.is_float() || v.is_bool() {
        return Ok(v.to_string());
    }
    Err(malformed(
        field,
        format!("expected text, got a {}", v.type_name()),
    ))
}

fn labels(map: &Map, key: &str, field: &dyn Fn(&str) -> String) -> Result<LabelSet, PayloadError> {
    let Some(v) = map.get(key).filter(|v| !v.is_unit()) else {
        return Ok(LabelSet::new());
    };
    let m = v
        .clone()
        .try_cast::<Map>()
        .ok_or_else(|| malformed(field(key), format!("{key} must be a map of texts")))?;
    let mut out = LabelSet::new();
    for (k, v) in m {
        if v.is_unit() {
            continue;
        }
        let f = field(&format!("{key}.{k}"));
        out.insert(k.to_string(), text_of(&v, &f)?);
    }
    Ok(out)
}

fn time(v: Option<&Dynamic>, field: &str) -> Result<Option<Timestamp>, PayloadError> {
    let Some(v) = v.filter(|v| !v.is_unit()) else {
        return Ok(None);
    };
    if let Ok(secs) = v.as_int() {
        return Timestamp::from_second(secs)
            .map(Some)
            .map_err(|e| malformed(field, format!("not a time: {e}")));
    }
    let text = text_of(v, field)?;
    // Zero times ("0001-01-01T00:00:00Z", Go's and Alertmanager's "unset") are unset.
    match text.parse::<Timestamp>() {
        Ok(t) if t.as_second() <= -62_135_596_800 + 86_400 => Ok(None),
        Ok(t) => Ok(Some(t)),
        Err(e) => Err(malformed(
            field,
            format!("expected an RFC 3339 time or Unix seconds, got {text:?}: {e}"),
        )),
    }
}

const ALERT_FIELDS: [&str; 9] = [
    "alertname",
    "status",
    "labels",
    "annotations",
    "starts_at",
    "ends_at",
    "fingerprint",
    "generator_url",
    "acknowledge",
];

pub(crate) fn alert_from_map(
    map: &Map,
    now: Timestamp,
    field: &dyn Fn(&str) -> String,
) -> Result<(Alert, bool), PayloadError> {
    for key in map.keys() {
        if !ALERT_FIELDS.contains(&key.as_str()) {
            return Err(malformed(
                field(key),
                format!(
                    "unknown alert field {key:?} (expected one of {})",
                    ALERT_FIELDS.join(", ")
                ),
            ));
        }
    }
    let mut labels = labels(map, "labels", field)?;
    if let Some(name) = map.get("alertname").filter(|v| !v.is_unit()) {
        labels.insert("alertname".into(), text_of(name, &field("alertname"))?);
    }
    match labels.get("alertname") {
        Some(n) if !n.trim().is_empty() => {}
        _ => {
            return Err(PayloadError::new(
                field("labels.alertname"),
                "missing_field",
                "every alert needs an alertname (alertname or labels.alertname)",
            ))
        }
    }
    let status = match map.get("status").filter(|v| !v.is_unit()) {
        None => AlertStatus::Firing,
        Some(v) => match text_of(v, &field("status"))?.as_str() {
            "firing" => AlertStatus::Firing,
            "resolved" => AlertStatus::Resolved,
            other => {
                return Err(malformed(
                    field("status"),
                    format!("expected firing or resolved, got {other:?}"),
                ))
            }
        },
    };
    let starts_at = time(map.get("starts_at"), &field("starts_at"))?.unwrap_or(now);
    let ends_at = time(map.get("ends_at"), &field("ends_at"))?;
    let ends_at = match status {
        AlertStatus::Resolved => Some(ends_at.unwrap_or(now)),
        AlertStatus::Firing => None,
    };
    let fingerprint = match map.get("fingerprint").filter(|v| !v.is_unit()) {
        Some(v) => {
            let f = text_of(v, &field("fingerprint"))?;
            if f.is_empty() || f.len() > 256 {
                return Err(malformed(field("fingerprint"), "1 to 256 characters"));
            }
            f
        }
        None => crate::alerts::fingerprint(&labels),
    };
    let generator_url = match map.get("generator_url").filter(|v| !v.is_unit()) {
        Some(v) => Some(text_of(v, &field("generator_url"))?),
        None => None,
    };
    let acknowledge = match map.get("acknowledge") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|_| malformed(field("acknowledge"), "expected true or false"))?,
    };
    let alert = Alert {
        source: Source::Webhook,
        fingerprint,
        status,
        labels,
        annotations: self::labels(map, "annotations", field)?,
        starts_at,
        ends_at,
        generator_url,
        received_at: now,
    };
    Ok((alert, acknowledge))
}

/// JSON as Rhai values: objects become maps, arrays arrays, numbers int or float.
fn to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => Dynamic::from_array(a.iter().map(to_dynamic).collect()),
        Value::Object(o) => Dynamic::from_map(
            o.iter()
                .map(|(k, v)| (k.as_str().into(), to_dynamic(v)))
                .collect(),
        ),
    }
}

/// Rhai values as JSON (for a mapping's response body).
fn to_json(v: &Dynamic) -> Value {
    if v.is_unit() {
        Value::Null
    } else if let Ok(b) = v.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = v.as_int() {
        Value::from(i)
    } else if let Ok(f) = v.as_float() {
        Value::from(f)
    } else if let Some(a) = v.clone().try_cast::<rhai::Array>() {
        Value::Array(a.iter().map(to_json).collect())
    } else if let Some(m) = v.clone().try_cast::<Map>() {
        Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
    } else {
        Value::String(v.to_string())
    }
}

/// Checks an HMAC-SHA256 signature of `body`: the header's value is the hex digest,
/// optionally prefixed `sha256=` (GitHub's form). Constant time.
pub fn signature_ok(secret: &[u8], body: &[u8], header: &str) -> bool {
    use hmac::Mac;
    let given = header.trim();
    let given = given.strip_prefix("sha256=").unwrap_or(given);
    let Ok(given) = hex::decode(given) else {
        return false;
    };
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn load(src: &str) -> Mappings {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.rhai"), src).unwrap();
        Mappings::load(dir.path(), &["m.rhai".into()], &RuleEnv::default()).unwrap()
    }

    fn run(m: &Mappings, body: Value) -> Result<Mapped, PayloadError> {
        m.map("m.rhai", &body, &BTreeMap::new(), t("2026-12-01T00:00:00Z"))
    }

    #[test]
    fn a_mapping_turns_a_body_into_alerts_with_defaults() {
        let m = load(
            r#"fn on_webhook(body) {
                body.items.map(|i| #{ alertname: i.name, labels: #{ host: i.host, n: i.n }, status: i.state })
            }"#,
        );
        let out = run(
            &m,
            serde_json::json!({"items": [
                {"name": "Up", "host": "a", "n": 3, "state": "firing"},
                {"name": "Up", "host": "b", "n": 4, "state": "resolved"},
            ]}),
        )
        .unwrap();
        assert_eq!(out.alerts.len(), 2);
        let a = &out.alerts[0];
        assert_eq!(a.labels["alertname"], "Up");
        assert_eq!(a.labels["n"], "3");
        assert_eq!(a.source, Source::Webhook);
        assert_eq!(a.fingerprint, crate::alerts::fingerprint(&a.labels));
        assert_eq!(a.starts_at, t("2026-12-01T00:00:00Z"));
        assert_eq!(out.alerts[1].status, AlertStatus::Resolved);
        assert_eq!(out.alerts[1].ends_at, Some(t("2026-12-01T00:00:00Z")));
    }

    #[test]
    fn malformed_results_name_the_field() {
        let cases = [
            (
                "fn on_webhook(b) { #{ labels: #{} } }",
                "alerts[0].labels.alertname",
            ),
            (
                "fn on_webhook(b) { #{ alertname: \"A\", status: \"bad\" } }",
                "alerts[0].status",
            ),
            (
                "fn on_webhook(b) { #{ alertname: \"A\", starts_at: \"soon\" } }",
                "alerts[0].starts_at",
            ),
            (
                "fn on_webhook(b) { #{ alertname: \"A\", colour: 1 } }",
                "alerts[0].colour",
            ),
            (
                "fn on_webhook(b) { [#{ alertname: \"A\" }, 5] }",
                "alerts[1]",
            ),
            (
                "fn on_webhook(b) { #{ alertname: \"A\", labels: #{ x: [1] } } }",
                "alerts[0].labels.x",
            ),
            ("fn on_webhook(b) { 42 }", "alerts"),
            ("fn on_webhook(b) { throw \"no\"; }", "body"),
            ("fn on_webhook(b) { loop {} }", "body"),
            (
                "fn on_webhook(b) { #{ alerts: [], response: #{ status: 500 } } }",
                "response.status",
            ),
        ];
        for (src, field) in cases {
            let err = run(&load(src), serde_json::json!({})).unwrap_err();
            assert_eq!(err.field, field, "{src}: {err}");
        }
    }

    #[test]
    fn an_envelope_carries_the_answer_and_acknowledgements() {
        let m = load(
            r#"fn on_webhook(body, headers) {
                #{ alerts: [#{ alertname: "A", fingerprint: body.key, acknowledge: true }],
                   response: #{ status: 202, body: #{ status: "success", dedup_key: body.key, seen: headers["x-test"] } } }
            }"#,
        );
        let mut h = BTreeMap::new();
        h.insert("x-test".to_string(), "yes".to_string());
        let out = m
            .map(
                "m.rhai",
                &serde_json::json!({"key": "k1"}),
                &h,
                t("2026-12-01T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(out.acknowledge, ["k1"]);
        assert_eq!(
            out.response,
            Some((
                202,
                serde_json::json!({"status": "success", "dedup_key": "k1", "seen": "yes"})
            ))
        );
        assert_eq!(out.alerts[0].fingerprint, "k1");
    }

    #[test]
    fn mappings_without_map_or_that_do_not_compile_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rhai"), "fn other(x) { x }").unwrap();
        std::fs::write(dir.path().join("b.rhai"), "fn on_webhook(x) {").unwrap();
        for f in ["a.rhai", "b.rhai", "missing.rhai"] {
            let err = Mappings::load(dir.path(), &[f.into()], &RuleEnv::default()).unwrap_err();
            assert!(err.to_string().contains(f), "{err}");
        }
    }

    #[test]
    fn signatures_are_hmac_sha256_in_hex_with_or_without_the_prefix() {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let hex = hex::encode(mac.finalize().into_bytes());
        assert!(signature_ok(b"s3cret", b"{}", &hex));
        assert!(signature_ok(b"s3cret", b"{}", &format!("sha256={hex}")));
        assert!(!signature_ok(b"s3cret", b"{ }", &hex));
        assert!(!signature_ok(b"other", b"{}", &hex));
        assert!(!signature_ok(b"s3cret", b"{}", "zz"));
        assert!(!signature_ok(b"s3cret", b"{}", ""));
    }
}
