//! `triaged rules check` and `triaged rules eval`: what SREs run before committing a
//! rule. Both compile the directory exactly as the daemon does; `eval` runs the
//! alerts of a JSON file through it and reports each decision and what made it.

use std::fmt::Write as _;
use std::path::Path;

use super::{Outcome, Rules};
use crate::alerts::Alert;
use crate::config::RuleEnv;

/// Compiles every rule file; the report names them, or the error names file:line:col.
pub fn check(dir: &Path, env: &RuleEnv) -> Result<String, String> {
    let rules = Rules::load(dir, env).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for f in rules.files() {
        let hooks = if f.hooks.is_empty() {
            "no hooks".to_string()
        } else {
            f.hooks.join(", ")
        };
        let _ = writeln!(out, "{}: ok ({hooks})", dir.join(&f.name).display());
    }
    let _ = write!(
        out,
        "{} rule file(s) in {} compiled",
        rules.files().len(),
        dir.display()
    );
    Ok(out)
}

/// Reads alerts from `file`: an Alertmanager webhook payload (an object with
/// `alerts`) or one alert in its shape (`labels`, `startsAt`, optional `status`,
/// firing by default, …).
pub fn read_alerts(file: &Path) -> Result<Vec<Alert>, String> {
    let body = std::fs::read(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "{}:{}:{}: not JSON: {e}",
            file.display(),
            e.line(),
            e.column()
        )
    })?;
    let payload = match value {
        serde_json::Value::Object(ref m) if m.contains_key("alerts") => {
            return crate::sources::alertmanager::parse(&body, jiff::Timestamp::now())
                .map(|(_, alerts)| alerts)
                .map_err(|e| format!("{}: {}: {}", file.display(), e.field, e.message));
        }
        serde_json::Value::Object(mut m) => {
            // A hand-written alert may leave out its status: firing, as rules see it.
            let status = m.entry("status").or_insert_with(|| "firing".into()).clone();
            serde_json::json!({
                "version": crate::sources::alertmanager::VERSION,
                "status": status,
                "alerts": [m],
            })
        }
        _ => {
            return Err(format!(
                "{}: expected a JSON object (an Alertmanager payload or one alert)",
                file.display()
            ))
        }
    };
    // One alert, wrapped in a payload: name its fields as the file has them, without
    // the wrapper's path and positions.
    let bytes = serde_json::to_vec(&payload).expect("a JSON value serializes");
    crate::sources::alertmanager::parse(&bytes, jiff::Timestamp::now())
        .map(|(_, alerts)| alerts)
        .map_err(|e| {
            let field = e.field.strip_prefix("alerts[0].").unwrap_or(&e.field);
            let message = match e.message.rfind(" at line ") {
                Some(i) => &e.message[..i],
                None => &e.message,
            };
            format!("{}: {field}: {message}", file.display())
        })
}

/// Runs each alert of `file` through the rules; one block per alert.
pub fn eval(dir: &Path, env: &RuleEnv, file: &Path) -> Result<String, String> {
    let rules = Rules::load(dir, env).map_err(|e| e.to_string())?;
    let alerts = read_alerts(file)?;
    let mut out = String::new();
    for (i, alert) in alerts.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (verdict, failures) = rules.decide(alert);
        let made_by = if verdict.rule == super::DEFAULT_RULE {
            "the built-in default".to_string()
        } else {
            format!("{} (on_alert)", dir.join(&verdict.rule).display())
        };
        let _ = writeln!(
            out,
            "alert {} ({}, {})",
            alert.name(),
            alert.fingerprint,
            alert.status.as_str()
        );
        for f in &failures {
            let _ = writeln!(
                out,
                "  rule error: {} ({}, {}): {}",
                dir.join(&f.rule).display(),
                f.function,
                f.kind,
                f.message
            );
        }
        match verdict.outcome {
            Outcome::Drop(reason) => {
                let _ = writeln!(out, "  decision: drop, by {made_by}");
                let _ = writeln!(out, "  reason: {reason}");
            }
            Outcome::Incident(spec) => {
                let _ = writeln!(out, "  decision: incident, by {made_by}");
                let _ = writeln!(out, "  key: {}", spec.key);
                let _ = writeln!(out, "  title: {}", spec.title);
                let _ = writeln!(out, "  service: {}", spec.service.as_deref().unwrap_or("-"));
                let _ = writeln!(out, "  ci: {}", spec.ci.as_deref().unwrap_or("-"));
                let _ = writeln!(out, "  impact: {}", spec.impact.as_str());
                let _ = writeln!(out, "  urgency: {}", spec.urgency.as_str());
                let _ = writeln!(out, "  major: {}", spec.major);
            }
        }
    }
    Ok(out.trim_end().to_string())
}
