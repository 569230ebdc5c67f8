//! The Alertmanager webhook payload (version 4), parsed and turned into alerts.
//!
//! Pure: bytes and the receive time in, alerts or a [`PayloadError`] out. Every field
//! Alertmanager documents is parsed (see Alertmanager's `notify/webhook` package and
//! `docs/configuration.md`, "webhook_config"), so a type error anywhere is reported.

use jiff::Timestamp;
use serde::Deserialize;

use super::{parse_json, PayloadError};
use crate::alerts::{Alert, AlertStatus, LabelSet, Source};

/// The only payload version Alertmanager has sent since 0.x and the one we accept.
pub const VERSION: &str = "4";

/// Go's zero `time.Time`, which Alertmanager sends as `endsAt` of a firing alert
/// without a known end.
const GO_ZERO_YEAR: i16 = 1;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: AlertStatus,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: LabelSet,
    #[serde(default)]
    pub common_labels: LabelSet,
    #[serde(default)]
    pub common_annotations: LabelSet,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<PayloadAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadAlert {
    pub status: AlertStatus,
    pub labels: LabelSet,
    #[serde(default)]
    pub annotations: LabelSet,
    pub starts_at: Timestamp,
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Parses and validates a webhook body. Nothing is returned unless every alert is valid.
pub fn parse(body: &[u8], received_at: Timestamp) -> Result<(Payload, Vec<Alert>), PayloadError> {
    let payload: Payload = parse_json(body)?;
    if payload.version != VERSION {
        return Err(PayloadError::new(
            "version",
            "unsupported_version",
            format!(
                "expected webhook payload version \"{VERSION}\", got {:?}",
                payload.version
            ),
        ));
    }
    let mut alerts = Vec::with_capacity(payload.alerts.len());
    for (i, a) in payload.alerts.iter().enumerate() {
        match a.labels.get("alertname") {
            Some(name) if !name.trim().is_empty() => {}
            Some(_) => {
                return Err(PayloadError::new(
                    format!("alerts[{i}].labels.alertname"),
                    "missing_alertname",
                    "label alertname is empty",
                ))
            }
            None => {
                return Err(PayloadError::new(
                    format!("alerts[{i}].labels.alertname"),
                    "missing_alertname",
                    "missing label alertname",
                ))
            }
        }
        let fingerprint = match &a.fingerprint {
            Some(f) if !f.is_empty() => f.clone(),
            _ => crate::alerts::fingerprint(&a.labels),
        };
        let ends_at = a
            .ends_at
            .filter(|t| t.to_zoned(jiff::tz::TimeZone::UTC).year() > GO_ZERO_YEAR);
        alerts.push(Alert {
            source: Source::Alertmanager,
            fingerprint,
            status: a.status,
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.starts_at,
            ends_at,
            generator_url: a.generator_url.clone().filter(|u| !u.is_empty()),
            received_at,
        });
    }
    Ok((payload, alerts))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload as Alertmanager 0.25 sends it (captured from `prometheus-alertmanager`).
    const FIRING: &str = r#"{
      "receiver": "triaged",
      "status": "firing",
      "alerts": [{
        "status": "firing",
        "labels": {"alertname": "DiskFull", "instance": "db1:9100", "job": "node", "severity": "critical"},
        "annotations": {"summary": "Disk almost full"},
        "startsAt": "2026-11-29T01:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": "5f3a1b2c3d4e5f60"
      }],
      "groupLabels": {"alertname": "DiskFull"},
      "commonLabels": {"alertname": "DiskFull", "job": "node"},
      "commonAnnotations": {"summary": "Disk almost full"},
      "externalURL": "http://alertmanager:9093",
      "version": "4",
      "groupKey": "{}:{alertname=\"DiskFull\"}",
      "truncatedAlerts": 0
    }"#;

    fn now() -> Timestamp {
        "2026-11-29T01:00:05Z".parse().unwrap()
    }

    #[test]
    fn parses_every_field() {
        let (payload, alerts) = parse(FIRING.as_bytes(), now()).unwrap();
        assert_eq!(payload.receiver, "triaged");
        assert_eq!(payload.group_key, "{}:{alertname=\"DiskFull\"}");
        assert_eq!(payload.external_url, "http://alertmanager:9093");
        assert_eq!(
            payload.common_labels.get("job").map(String::as_str),
            Some("node")
        );
        let a = &alerts[0];
        assert_eq!(a.fingerprint, "5f3a1b2c3d4e5f60");
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.name(), "DiskFull");
        assert_eq!(a.ends_at, None, "Go's zero time means no end");
        assert_eq!(a.starts_at.to_string(), "2026-11-29T01:00:00.123456789Z");
        assert_eq!(a.annotations["summary"], "Disk almost full");
        assert_eq!(a.received_at, now());
    }

    #[test]
    fn resolved_alert_keeps_its_end() {
        let body = FIRING
            .replace(
                "\"status\": \"firing\",\n        \"labels\"",
                "\"status\": \"resolved\",\n        \"labels\"",
            )
            .replace("0001-01-01T00:00:00Z", "2026-11-29T01:05:00+01:00");
        let (_, alerts) = parse(body.as_bytes(), now()).unwrap();
        assert_eq!(alerts[0].status, AlertStatus::Resolved);
        assert_eq!(
            alerts[0].ends_at.unwrap().to_string(),
            "2026-11-29T00:05:00Z"
        );
    }

    #[test]
    fn missing_fingerprint_is_computed() {
        let body = FIRING.replace(
            "\"fingerprint\": \"5f3a1b2c3d4e5f60\"",
            "\"fingerprint\": \"\"",
        );
        let (_, alerts) = parse(body.as_bytes(), now()).unwrap();
        assert_eq!(
            alerts[0].fingerprint,
            crate::alerts::fingerprint(&alerts[0].labels)
        );
    }

    fn rejected(body: &str) -> PayloadError {
        parse(body.as_bytes(), now()).unwrap_err()
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let cases: Vec<(String, &str, &str)> = vec![
            ("not json".into(), "body", "invalid_json"),
            ("[]".into(), "body", "invalid_field"),
            (
                FIRING.replace("\"version\": \"4\"", "\"version\": \"3\""),
                "version",
                "unsupported_version",
            ),
            (
                FIRING.replace("\"version\": \"4\"", "\"version\": 4"),
                "version",
                "invalid_field",
            ),
            (
                FIRING.replace("\"alertname\": \"DiskFull\", \"instance\"", "\"instance\""),
                "alerts[0].labels.alertname",
                "missing_alertname",
            ),
            (
                FIRING.replace(
                    "\"alertname\": \"DiskFull\", \"instance\"",
                    "\"alertname\": \" \", \"instance\"",
                ),
                "alerts[0].labels.alertname",
                "missing_alertname",
            ),
            (
                FIRING.replace(
                    "\"startsAt\": \"2026-11-29T01:00:00.123456789Z\"",
                    "\"startsAt\": \"yesterday\"",
                ),
                "alerts[0].startsAt",
                "invalid_field",
            ),
            (
                FIRING.replace(
                    "\"status\": \"firing\",\n        \"labels\"",
                    "\"status\": \"burning\",\n        \"labels\"",
                ),
                "alerts[0].status",
                "invalid_field",
            ),
            (
                FIRING.replace("\"severity\": \"critical\"", "\"severity\": 3"),
                "alerts[0].labels.severity",
                "invalid_field",
            ),
            (
                FIRING.replace("\"truncatedAlerts\": 0", "\"truncatedAlerts\": \"none\""),
                "truncatedAlerts",
                "invalid_field",
            ),
        ];
        for (body, field, reason) in cases {
            let err = rejected(&body);
            assert_eq!((err.field.as_str(), err.reason), (field, reason), "{err}");
        }
        let err = rejected(r#"{"version":"4","status":"firing"}"#);
        assert_eq!(
            (err.field.as_str(), err.reason),
            ("alerts", "missing_field"),
            "{err}"
        );
        let err = rejected(
            r#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"x"}}]}"#,
        );
        assert_eq!(err.field, "alerts[0].startsAt", "{err}");
    }
}
