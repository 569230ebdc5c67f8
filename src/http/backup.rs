//! `POST /api/v1/store/backups` (admin): a consistent copy of the store, taken while
//! the daemon runs, into a new directory below `[store] backup_dir`
//! (`Store::backup`). Only a name is accepted, never a path: the daemon writes
//! nowhere but its backup directory.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::{blocking, ApiError, AppState, Need};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    /// The new directory's name (default `triaged-YYYYMMDDTHHMMSSZ`).
    name: Option<String>,
}

/// A backup name: 1 to 100 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err(format!("expected 1 to 100 characters, got {}", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed (letters, digits, '.', '_' and '-' only: a name, not a path)"
        ));
    }
    if name.starts_with('.') {
        return Err("must not start with a dot".into());
    }
    Ok(())
}

/// The default name of a backup taken at `at`.
pub fn default_name(at: jiff::Timestamp) -> String {
    format!("triaged-{}", at.strftime("%Y%m%dT%H%M%SZ"))
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = state.authorize(&headers, Need::Admin)?;
    let bytes = super::actions::body_of(&state, &headers, body).await?;
    let body: BackupBody = super::actions::parse(&bytes)?;
    let name = body
        .name
        .unwrap_or_else(|| default_name(jiff::Timestamp::now()));
    valid_name(&name).map_err(|e| ApiError::bad_request("name", e))?;
    let dest = state.backup_dir.join(&name);
    if dest.exists() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "a backup named {name:?} exists already ({})",
                dest.display()
            ),
        )
        .field("name"));
    }
    std::fs::create_dir_all(&state.backup_dir).map_err(|e| {
        ApiError::unavailable(format!(
            "cannot create the backup directory {}: {e}",
            state.backup_dir.display()
        ))
    })?;
    let store = state.store.clone();
    let report = blocking(move || store.backup(&dest)).await?;
    tracing::info!(path = %report.path.display(), by = %caller.name,
        incidents = report.incidents, audit_entries = report.audit_entries, "store backed up");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(&report).unwrap_or(Value::Null)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_names_not_paths() {
        for ok in ["triaged-20261201T120000Z", "before-upgrade_1.2", "a"] {
            assert_eq!(valid_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "..",
            "a b",
            "x\0",
            &"n".repeat(101),
        ] {
            assert!(valid_name(bad).is_err(), "{bad:?} accepted");
        }
        let at: jiff::Timestamp = "2026-12-01T13:05:09Z".parse().unwrap();
        assert_eq!(default_name(at), "triaged-20261201T130509Z");
    }
}
