//! Changes (`CHG-<n>`, ISO/IEC 20000-1 clause 8.5.1): what CI/CD or a change tool
//! tells triaged it is doing to a service, and when. Rules read them
//! (`changes_for_service`) to tell an incident caused by a deploy from one that is not.
//!
//! `POST /api/v1/changes` records one; the sender's own id (`external_id`) makes the
//! post idempotent: the same id again updates that change (its status, window or
//! summary) instead of recording a second one. Pure: parsing and validation here, the
//! write in `http::changes`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::audit::Change;

crate::ids::record_id!(
    /// `CHG-<n>`.
    ChangeId,
    "CHG",
    "a change id"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    Planned,
    Approved,
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl ChangeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Planned => "planned",
            ChangeStatus::Approved => "approved",
            ChangeStatus::InProgress => "in_progress",
            ChangeStatus::Completed => "completed",
            ChangeStatus::Failed => "failed",
            ChangeStatus::Cancelled => "cancelled",
        }
    }
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub id: ChangeId,
    /// The sender's id for it (a pipeline run, a change ticket), unique.
    pub external_id: Option<String>,
    pub service: String,
    pub summary: String,
    pub status: ChangeStatus,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    /// The API token that recorded it.
    pub recorded_by: String,
    pub recorded_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The body of `POST /api/v1/changes`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub service: String,
    pub summary: String,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    #[serde(default = "planned")]
    pub status: ChangeStatus,
    #[serde(default)]
    pub external_id: Option<String>,
}

fn planned() -> ChangeStatus {
    ChangeStatus::Planned
}

/// A request that names a field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl ChangeRequest {
    /// Checks what serde cannot: non-empty texts, bounded sizes, a window that ends
    /// after it starts.
    pub fn validate(&self) -> Result<(), Invalid> {
        let text = |field: &'static str, v: &str, max: usize| {
            if v.trim().is_empty() {
                Err(Invalid {
                    field,
                    message: "must not be empty".into(),
                })
            } else if v.len() > max {
                Err(Invalid {
                    field,
                    message: format!("at most {max} bytes, got {}", v.len()),
                })
            } else {
                Ok(())
            }
        };
        text("service", &self.service, 256)?;
        text("summary", &self.summary, 4096)?;
        if let Some(id) = &self.external_id {
            text("external_id", id, 256)?;
        }
        if self.window_end <= self.window_start {
            return Err(Invalid {
                field: "window_end",
                message: format!(
                    "must be after window_start ({}), got {}",
                    self.window_start, self.window_end
                ),
            });
        }
        Ok(())
    }

    /// A new change record and its audit entry.
    pub fn record(&self, id: ChangeId, by: &str, now: Timestamp) -> (ChangeRecord, Change) {
        let record = ChangeRecord {
            id,
            external_id: self.external_id.clone(),
            service: self.service.clone(),
            summary: self.summary.clone(),
            status: self.status,
            window_start: self.window_start,
            window_end: self.window_end,
            recorded_by: by.to_string(),
            recorded_at: now,
            updated_at: now,
        };
        let change = Change::new(id.to_string(), "recorded")
            .becomes(self.status.as_str())
            .detail(format!(
                "service={} window={}..{} external_id={}",
                self.service,
                self.window_start,
                self.window_end,
                self.external_id.as_deref().unwrap_or("-")
            ));
        (record, change)
    }

    /// Applies this request to the change it repeats (same `external_id`): the new
    /// version and its audit entry, or `None` when nothing differs.
    pub fn update(&self, old: &ChangeRecord, now: Timestamp) -> Option<(ChangeRecord, Change)> {
        let mut new = old.clone();
        new.service.clone_from(&self.service);
        new.summary.clone_from(&self.summary);
        new.status = self.status;
        new.window_start = self.window_start;
        new.window_end = self.window_end;
        if new == *old {
            return None;
        }
        new.updated_at = now;
        let mut what = Vec::new();
        if new.service != old.service {
            what.push(format!("service={}", new.service));
        }
        if new.summary != old.summary {
            what.push("summary".to_string());
        }
        if (new.window_start, new.window_end) != (old.window_start, old.window_end) {
            what.push(format!("window={}..{}", new.window_start, new.window_end));
        }
        let change = Change::new(old.id.to_string(), "updated")
            .from_to(old.status.as_str(), new.status.as_str())
            .detail(what.join(" "));
        Some((new, change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn request() -> ChangeRequest {
        ChangeRequest {
            service: "checkout".into(),
            summary: "deploy v1.2.3".into(),
            window_start: t("2026-01-01T10:00:00Z"),
            window_end: t("2026-01-01T10:30:00Z"),
            status: ChangeStatus::Approved,
            external_id: Some("pipeline-42".into()),
        }
    }

    #[test]
    fn requests_are_validated_by_field() {
        assert_eq!(request().validate(), Ok(()));
        let mut r = request();
        r.window_end = r.window_start;
        assert_eq!(r.validate().unwrap_err().field, "window_end");
        let mut r = request();
        r.service = " ".into();
        assert_eq!(r.validate().unwrap_err().field, "service");
        let mut r = request();
        r.external_id = Some(String::new());
        assert_eq!(r.validate().unwrap_err().field, "external_id");
        let mut r = request();
        r.summary = "x".repeat(5000);
        assert_eq!(r.validate().unwrap_err().field, "summary");
    }

    #[test]
    fn a_repeated_request_updates_only_what_differs() {
        let now = t("2026-01-01T09:00:00Z");
        let (rec, change) = request().record(ChangeId(3), "ci", now);
        assert_eq!(change.record, "CHG-3");
        assert_eq!(change.to.as_deref(), Some("approved"));
        assert_eq!(
            request().update(&rec, now),
            None,
            "the same again changes nothing"
        );
        let mut done = request();
        done.status = ChangeStatus::Completed;
        let (new, change) = done.update(&rec, t("2026-01-01T10:31:00Z")).unwrap();
        assert_eq!(new.status, ChangeStatus::Completed);
        assert_eq!(new.recorded_at, now);
        assert_eq!(change.action, "updated");
        assert_eq!(
            (change.from.as_deref(), change.to.as_deref()),
            (Some("approved"), Some("completed"))
        );
    }
}
