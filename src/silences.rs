//! Silences and maintenance windows: why an alert is recorded and attached but does
//! not page. A silence (`SIL-<n>`, `POST /api/v1/silences`) is a set of label matchers
//! (`=`, `!=`, `=~`, `!~`, regexes anchored as in Alertmanager) and a time range; a
//! maintenance window (`[[maintenance]]` in config) covers services at fixed or weekly
//! times. An approved change's window on a service does the same (see `changes`).
//!
//! Pure: matching takes the time as an argument, so expiry needs no restart: a silence
//! whose end has passed simply matches nothing.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::audit::Change;

crate::ids::record_id!(
    /// `SIL-<n>`.
    SilenceId,
    "SIL",
    "a silence id"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

/// One label matcher. A missing label matches as the empty string (as in Alertmanager).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    #[serde(skip)]
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.op, &self.value) == (&other.name, other.op, &other.value)
    }
}

/// Largest compiled matcher regex, in bytes (the regex crate's size limit).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Matcher {
    /// A matcher, its regex compiled (anchored at both ends).
    pub fn new(name: &str, op: Op, value: &str) -> Result<Matcher, String> {
        if !is_label_name(name) {
            return Err(format!(
                "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*), got {name:?}"
            ));
        }
        let regex = match op {
            Op::Regex | Op::NotRegex => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("not a valid regular expression: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Compiles the regex of a matcher read back from the store.
    pub fn compiled(self) -> Result<Matcher, String> {
        Matcher::new(&self.name, self.op, &self.value)
    }

    pub fn matches_value(&self, v: &str) -> bool {
        let re = || {
            self.regex
                .as_ref()
                .expect("regex matchers are built compiled")
                .is_match(v)
        };
        match self.op {
            Op::Equal => v == self.value,
            Op::NotEqual => v != self.value,
            Op::Regex => re(),
            Op::NotRegex => !re(),
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }

    /// `name=value`, `name=~regex`, … (amtool's form).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let at = text.find(['=', '!']).ok_or_else(|| {
            format!("expected name=value, name!=value, name=~regex or name!~regex, got {text:?}")
        })?;
        let (name, rest) = text.split_at(at);
        let (op, value) = [
            ("=~", Op::Regex),
            ("!~", Op::NotRegex),
            ("!=", Op::NotEqual),
            ("=", Op::Equal),
        ]
        .into_iter()
        .find_map(|(p, op)| rest.strip_prefix(p).map(|v| (op, v)))
        .ok_or_else(|| format!("expected =, !=, =~ or !~ after {name:?} in {text:?}"))?;
        let value = value.trim_matches('"');
        Matcher::new(name.trim(), op, value)
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: SilenceId,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    /// The API token that created it (`token:<name>`).
    pub created_by: String,
    pub comment: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Silence {
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now >= self.ends_at {
            SilenceState::Expired
        } else if now < self.starts_at {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Active at `now` and every matcher matches.
    pub fn silences(&self, labels: &BTreeMap<String, String>, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active && self.matchers.iter().all(|m| m.matches(labels))
    }

    /// Ends the silence now (it stays stored, expired, for the record).
    pub fn expire(&mut self, by: &str, now: Timestamp) -> Option<Change> {
        if self.state(now) == SilenceState::Expired {
            return None;
        }
        let from = self.state(now);
        self.ends_at = now.max(self.starts_at);
        self.updated_at = now;
        Some(
            Change::new(self.id.to_string(), "expired")
                .from_to(from.as_str(), SilenceState::Expired.as_str())
                .detail(format!("by {by}")),
        )
    }
}

/// The body of `POST /api/v1/silences`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    pub matchers: Vec<Matcher>,
    /// Default: now.
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    pub ends_at: Timestamp,
    pub comment: String,
}

/// A request field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Most matchers one silence may have.
const MAX_MATCHERS: usize = 64;

impl SilenceRequest {
    /// Checks the request and builds the silence (matchers compiled).
    pub fn into_silence(
        self,
        id: SilenceId,
        by: &str,
        now: Timestamp,
    ) -> Result<(Silence, Change), Invalid> {
        if self.matchers.is_empty() {
            return Err(invalid("matchers", "give at least one matcher"));
        }
        if self.matchers.len() > MAX_MATCHERS {
            return Err(invalid(
                "matchers",
                format!("at most {MAX_MATCHERS} matchers"),
            ));
        }
        let mut matchers = Vec::with_capacity(self.matchers.len());
        for (i, m) in self.matchers.into_iter().enumerate() {
            if m.value.len() > 4096 {
                return Err(invalid(
                    format!("matchers[{i}].value"),
                    "at most 4096 bytes",
                ));
            }
            let field = if is_label_name(&m.name) {
                "value"
            } else {
                "name"
            };
            matchers.push(
                m.compiled()
                    .map_err(|e| invalid(format!("matchers[{i}].{field}"), e))?,
            );
        }
        // As Alertmanager: a silence whose every matcher matches a missing label would
        // silence nearly everything.
        if matchers.iter().all(|m| m.matches_value("")) {
            return Err(invalid(
                "matchers",
                "at least one matcher must not match the empty string (it would silence every alert)",
            ));
        }
        if self.comment.trim().is_empty() {
            return Err(invalid("comment", "say why (must not be empty)"));
        }
        if self.comment.len() > 4096 {
            return Err(invalid("comment", "at most 4096 bytes"));
        }
        let starts_at = self.starts_at.unwrap_or(now).max(now);
        if self.ends_at <= starts_at {
            return Err(invalid(
                "ends_at",
                format!(
                    "must be after the start ({starts_at}) and in the future, got {}",
                    self.ends_at
                ),
            ));
        }
        let silence = Silence {
            id,
            matchers,
            starts_at,
            ends_at: self.ends_at,
            created_by: by.to_string(),
            comment: self.comment,
            created_at: now,
            updated_at: now,
        };
        let change = Change::new(id.to_string(), "created")
            .becomes(silence.state(now).as_str())
            .detail(format!(
                "{} from {} to {}: {}",
                silence
                    .matchers
                    .iter()
                    .map(Matcher::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                silence.starts_at,
                silence.ends_at,
                silence.comment
            ));
        Ok((silence, change))
    }
}

/// A weekday, as config writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn of(w: jiff::civil::Weekday) -> Day {
        use jiff::civil::Weekday::*;
        match w {
            Monday => Day::Mon,
            Tuesday => Day::Tue,
            Wednesday => Day::Wed,
            Thursday => Day::Thu,
            Friday => Day::Fri,
            Saturday => Day::Sat,
            Sunday => Day::Sun,
        }
    }
}

/// When a maintenance window is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Once {
        starts_at: Timestamp,
        ends_at: Timestamp,
    },
    /// Every `days` at `start` (UTC) for `duration`.
    Weekly {
        days: Vec<Day>,
        start: jiff::civil::Time,
        duration: SignedDuration,
    },
}

/// `[[maintenance]]`: services that are worked on at known times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub name: String,
    /// Empty: every service.
    pub services: Vec<String>,
    pub schedule: Schedule,
}

impl MaintenanceWindow {
    /// If the window covers `service` at `now`, when it ends.
    pub fn covers(&self, service: Option<&str>, now: Timestamp) -> Option<Timestamp> {
        if !self.services.is_empty()
            && !service.is_some_and(|s| self.services.iter().any(|w| w == s))
        {
            return None;
        }
        match &self.schedule {
            Schedule::Once { starts_at, ends_at } => {
                (*starts_at <= now && now < *ends_at).then_some(*ends_at)
            }
            Schedule::Weekly {
                days,
                start,
                duration,
            } => {
                // The occurrence that started most recently: today's or one of the
                // days before (a window may run past midnight).
                let utc = now.to_zoned(jiff::tz::TimeZone::UTC);
                let days_back = (duration.as_secs() / 86_400) + 1;
                (0..=days_back).find_map(|back| {
                    let date = utc.date().checked_sub(jiff::Span::new().days(back)).ok()?;
                    if !days.contains(&Day::of(date.weekday())) {
                        return None;
                    }
                    let begin = date
                        .to_datetime(*start)
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .ok()?
                        .timestamp();
                    let end = begin.checked_add(*duration).ok()?;
                    (begin <= now && now < end).then_some(end)
                })
            }
        }
    }
}

/// Why an incident does not page, and until when that holds at the latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quiet {
    pub reason: QuietReason,
    /// The silence (`SIL-3`), maintenance window (its name) or change (`CHG-2`).
    pub by: String,
    pub since: Timestamp,
    pub until: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuietReason {
    Silence,
    Maintenance,
    Change,
}

impl QuietReason {
    pub fn as_str(self) -> &'static str {
        match self {
            QuietReason::Silence => "silence",
            QuietReason::Maintenance => "maintenance",
            QuietReason::Change => "change",
        }
    }
}

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} until {}",
            self.reason.as_str(),
            self.by,
            self.until
        )
    }
}

/// The silences in force (and pending), shared by the HTTP writer and correlation.
#[derive(Debug, Default)]
pub struct SilenceSet {
    silences: std::sync::RwLock<Vec<Silence>>,
}

impl SilenceSet {
    pub fn new(silences: Vec<Silence>) -> SilenceSet {
        SilenceSet {
            silences: std::sync::RwLock::new(silences),
        }
    }

    /// Adds or replaces a silence (by id); expired ones are dropped from memory.
    pub fn put(&self, s: Silence, now: Timestamp) {
        let mut all = self.silences.write().unwrap_or_else(|p| p.into_inner());
        all.retain(|o| o.id != s.id && o.state(now) != SilenceState::Expired);
        if s.state(now) != SilenceState::Expired {
            all.push(s);
        }
    }

    /// The first silence that silences these labels at `now`.
    pub fn matching(
        &self,
        labels: &BTreeMap<String, String>,
        now: Timestamp,
    ) -> Option<(SilenceId, Timestamp)> {
        let all = self.silences.read().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .find(|s| s.silences(labels, now))
            .map(|s| (s.id, s.ends_at))
    }

    /// Whether a silence is still active at `now`.
    pub fn is_active(&self, id: SilenceId, now: Timestamp) -> bool {
        let all = self.silences.read().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .any(|s| s.id == id && s.state(now) == SilenceState::Active)
    }

    pub fn is_empty(&self) -> bool {
        self.silences
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matchers_match_as_alertmanagers_do() {
        let l = labels(&[("alertname", "DiskFull"), ("service", "db-main")]);
        let cases = [
            ("alertname=DiskFull", true),
            ("alertname=Disk", false),
            ("alertname!=DiskFull", false),
            ("service=~db-.*", true),
            ("service=~db", false), // anchored
            ("service!~web.*", true),
            ("team=", true), // a missing label is ""
            ("team!=", false),
            ("team=~.+", false),
            ("alertname=~\"Disk(Full|Slow)\"", true),
        ];
        for (text, want) in cases {
            let m = Matcher::parse(text).unwrap();
            assert_eq!(m.matches(&l), want, "{text}");
        }
        for bad in ["alertname", "1x=y", "a=~(", "=x"] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }

    fn request(matchers: &[&str], ends: i64) -> SilenceRequest {
        SilenceRequest {
            matchers: matchers
                .iter()
                .map(|m| Matcher::parse(m).unwrap())
                .collect(),
            starts_at: None,
            ends_at: t(ends),
            comment: "maintenance".into(),
        }
    }

    #[test]
    fn a_silence_is_active_in_its_range_and_expires_without_anything_else() {
        let (mut s, change) = request(&["service=db"], 100)
            .into_silence(SilenceId(1), "token:ops", t(0))
            .unwrap();
        assert_eq!(change.to.as_deref(), Some("active"));
        let db = labels(&[("alertname", "X"), ("service", "db")]);
        assert!(s.silences(&db, t(0)));
        assert!(s.silences(&db, t(99)));
        assert!(!s.silences(&db, t(100)), "ends_at is exclusive");
        assert!(!s.silences(&labels(&[("service", "web")]), t(5)));
        let change = s.expire("token:ops", t(10)).unwrap();
        assert_eq!(change.from.as_deref(), Some("active"));
        assert_eq!(s.state(t(10)), SilenceState::Expired);
        assert!(s.expire("token:ops", t(11)).is_none());
    }

    #[test]
    fn requests_are_checked_by_field() {
        let now = t(0);
        let err = |r: SilenceRequest| r.into_silence(SilenceId(1), "x", now).unwrap_err().field;
        assert_eq!(err(request(&[], 100)), "matchers");
        assert_eq!(err(request(&["team=~.*"], 100)), "matchers");
        assert_eq!(err(request(&["service=db"], 0)), "ends_at");
        let mut r = request(&["service=db"], 100);
        r.comment = " ".into();
        assert_eq!(err(r), "comment");
        let mut r = request(&["service=db"], 100);
        r.matchers.push(Matcher {
            name: "x".into(),
            op: Op::Regex,
            value: "(".into(),
            regex: None,
        });
        assert_eq!(err(r), "matchers[1].value");
        let mut r = request(&["service=db"], 100);
        r.starts_at = Some(t(50));
        let (s, change) = r.into_silence(SilenceId(2), "x", now).unwrap();
        assert_eq!(s.state(t(10)), SilenceState::Pending);
        assert_eq!(change.to.as_deref(), Some("pending"));
    }

    #[test]
    fn maintenance_windows_cover_their_services_once_or_weekly() {
        let once = MaintenanceWindow {
            name: "patch".into(),
            services: vec!["db".into()],
            schedule: Schedule::Once {
                starts_at: t(0),
                ends_at: t(100),
            },
        };
        assert_eq!(once.covers(Some("db"), t(50)), Some(t(100)));
        assert_eq!(once.covers(Some("web"), t(50)), None);
        assert_eq!(once.covers(None, t(50)), None);
        assert_eq!(once.covers(Some("db"), t(100)), None);

        // Saturdays 23:00 UTC for 3 hours: runs into Sunday.
        let weekly = MaintenanceWindow {
            name: "weekend".into(),
            services: vec![],
            schedule: Schedule::Weekly {
                days: vec![Day::Sat],
                start: jiff::civil::time(23, 0, 0, 0),
                duration: SignedDuration::from_hours(3),
            },
        };
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        // 2026-12-05 is a Saturday.
        assert_eq!(weekly.covers(None, at("2026-12-05T22:59:59Z")), None);
        assert_eq!(
            weekly.covers(Some("any"), at("2026-12-05T23:00:00Z")),
            Some(at("2026-12-06T02:00:00Z"))
        );
        assert_eq!(
            weekly.covers(None, at("2026-12-06T01:59:00Z")),
            Some(at("2026-12-06T02:00:00Z"))
        );
        assert_eq!(weekly.covers(None, at("2026-12-06T02:00:00Z")), None);
        assert!(weekly.covers(None, at("2026-12-12T23:30:00Z")).is_some());
    }

    #[test]
    fn the_set_answers_with_the_first_active_silence() {
        let now = t(0);
        let (a, _) = request(&["service=db"], 100)
            .into_silence(SilenceId(1), "x", now)
            .unwrap();
        let (b, _) = request(&["alertname=X"], 200)
            .into_silence(SilenceId(2), "x", now)
            .unwrap();
        let set = SilenceSet::new(vec![a.clone(), b]);
        let l = labels(&[("alertname", "X"), ("service", "db")]);
        assert_eq!(set.matching(&l, t(1)), Some((SilenceId(1), t(100))));
        assert_eq!(set.matching(&l, t(150)), Some((SilenceId(2), t(200))));
        let mut a = a;
        a.expire("x", t(2));
        set.put(a, t(2));
        assert_eq!(set.matching(&l, t(3)).map(|m| m.0), Some(SilenceId(2)));
        assert!(!set.is_active(SilenceId(1), t(3)));
        assert!(set.is_active(SilenceId(2), t(3)));
    }
}
