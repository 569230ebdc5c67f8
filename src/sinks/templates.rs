//! Message text: minijinja templates per sink (`title` and `text`), with defaults per
//! sink type that a `[sinks.templates]` table overrides, and the context every
//! template sees (`event`, `incident`, `problem`, `target`). Compiled once when the
//! worker starts and by `triaged check-config`; rendering never does IO.

use minijinja::Environment;
use serde_json::{json, Value};

use crate::incidents::Incident;
use crate::outbox::{Delivery, Event, EventKind};
use crate::problems::Problem;

/// Template sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    pub title: String,
    pub text: String,
}

/// The default title: priority, id, what happened, the incident's title.
pub const DEFAULT_TITLE: &str = "{% if incident %}[{{ incident.priority }}] {{ incident.id }} \
{{ event.what }}: {{ incident.title }}{% elif problem %}{{ problem.id }} {{ event.what }}: \
{{ problem.title }}{% else %}{{ event.record }} {{ event.what }}{% endif %}";

/// The default text: what happened and the incident's state.
pub const DEFAULT_TEXT: &str = "{{ event.what | upper_first }}{% if event.by != 'system' and event.by is not startingwith('rule:') %} by {{ event.by }}{% endif %}.\
{% if incident %}\nService: {{ incident.service or 'none' }} · Status: {{ incident.status }} · \
Alerts firing: {{ incident.alerts_firing }}{% if incident.assignee %} · Assignee: {{ incident.assignee }}{% endif %}\
{% if incident.workaround %}\nKnown error workaround: {{ incident.workaround }}{% endif %}{% endif %}\
{% if event.quiet %}\nQuiet: {{ event.quiet }}{% endif %}";

/// The default mail body: the incident's record in full, for a reader without the API.
pub const DEFAULT_EMAIL_TEXT: &str = "{{ event.what | upper_first }}{% if event.by != 'system' and event.by is not startingwith('rule:') %} by {{ event.by }}{% endif %}.
{% if incident %}
Incident:      {{ incident.id }}: {{ incident.title }}
Priority:      {{ incident.priority }} (impact {{ incident.impact }}, urgency {{ incident.urgency }}){% if incident.major %}, major incident{% endif %}
Status:        {{ incident.status }}
Service:       {{ incident.service or 'none' }}{% if incident.ci %} / {{ incident.ci }}{% endif %}
Opened:        {{ incident.opened_at }}
Respond by:    {{ incident.sla.respond_by }}
Resolve by:    {{ incident.sla.resolve_by }}
Alerts firing: {{ incident.alerts_firing }} of {{ incident.alerts_total }}{% if incident.assignee %}
Assignee:      {{ incident.assignee }}{% endif %}{% if incident.resolution %}
Resolution:    {{ incident.resolution.code }}: {{ incident.resolution.note }}{% endif %}{% if incident.workaround %}
Known error workaround: {{ incident.workaround }}{% endif %}
{% elif problem %}
Problem:       {{ problem.id }}: {{ problem.title }}
Status:        {{ problem.status }}
{% endif %}{% if event.quiet %}
Quiet: {{ event.quiet }}
{% endif %}
-- 
triaged, outbox event {{ event.seq }} ({{ event.kind }}, {{ event.at }})";

impl Templates {
    /// The defaults for a sink type: chat gets the short text, mail the full record.
    pub fn for_kind(kind: &str) -> Templates {
        match kind {
            "email" => Templates {
                title: DEFAULT_TITLE.to_string(),
                text: DEFAULT_EMAIL_TEXT.to_string(),
            },
            _ => Templates::default(),
        }
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            title: DEFAULT_TITLE.to_string(),
            text: DEFAULT_TEXT.to_string(),
        }
    }
}

/// Compiled templates.
pub struct Compiled {
    env: Environment<'static>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compiled")
    }
}

impl Compiled {
    /// Compiles both templates; an error names the template and says where.
    pub fn new(t: &Templates) -> Result<Compiled, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.set_keep_trailing_newline(false);
        // `capitalize` lowercases the rest, which garbles names and codes.
        env.add_filter("upper_first", |s: String| {
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        });
        for (name, src) in [("title", &t.title), ("text", &t.text)] {
            env.add_template_owned(name, src.clone())
                .map_err(|e| describe_error(name, &e))?;
        }
        Ok(Compiled { env })
    }

    /// Renders (title, text).
    pub fn render(&self, context: &Value) -> Result<(String, String), String> {
        let one = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(context))
                .map_err(|e| describe_error(name, &e))
        };
        Ok((
            one("title")?.trim().to_string(),
            one("text")?.trim().to_string(),
        ))
    }
}

fn describe_error(name: &str, e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "template {name}, line {line}: {}",
            e.detail().unwrap_or(&e.to_string())
        ),
        None => format!("template {name}: {e}"),
    }
}

/// What happened, in words (`acknowledged`, `escalated (level 2)`, …).
pub fn describe(e: &Event) -> String {
    let detail = e.detail.trim();
    match e.kind {
        EventKind::Opened => "opened".into(),
        EventKind::Reopened => "reopened".into(),
        EventKind::Acknowledged => "acknowledged".into(),
        EventKind::Resolved => match detail {
            "" => "resolved".into(),
            d => format!("resolved ({d})"),
        },
        EventKind::Closed => "closed".into(),
        EventKind::Cancelled => "cancelled".into(),
        EventKind::FlappingStarted => "started flapping".into(),
        EventKind::FlappingEnded => "stopped flapping".into(),
        EventKind::ProblemOpened => "problem opened".into(),
        EventKind::SlaBreached => format!("missed its {detail} target"),
        EventKind::Escalated => format!("escalated ({detail})"),
        EventKind::Updated => match detail {
            "" => "updated".into(),
            d => format!("updated: {d}"),
        },
    }
}

/// The context of one delivery's templates; the generic webhook's body carries the
/// same `event`, `incident` and `problem`.
pub fn context(
    event: &Event,
    delivery: &Delivery,
    incident: Option<&Incident>,
    problem: Option<&Problem>,
) -> Value {
    let mut ev = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut ev {
        m.insert("what".into(), Value::String(describe(event)));
    }
    json!({
        "event": ev,
        "incident": incident.map(|i| serde_json::to_value(i).unwrap_or(Value::Null)),
        "problem": problem.map(|p| serde_json::to_value(p).unwrap_or(Value::Null)),
        "target": { "sink": delivery.sink, "to": delivery.to },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, detail: &str, by: &str) -> Event {
        Event {
            seq: 3,
            at: "2026-01-01T00:00:00Z".parse().unwrap(),
            kind,
            record: "INC-7".into(),
            detail: detail.into(),
            by: by.into(),
            notify: vec![],
            quiet: None,
        }
    }

    #[test]
    fn defaults_render_for_a_problem_event_and_errors_name_the_template() {
        let c = Compiled::new(&Templates::default()).unwrap();
        let e = Event {
            record: "PRB-2".into(),
            ..event(EventKind::ProblemOpened, "", "rule:60-recurrence.rhai")
        };
        let d = Delivery::pending(3, "chat".parse().unwrap(), e.at);
        let (title, text) = c.render(&context(&e, &d, None, None)).unwrap();
        assert_eq!(title, "PRB-2 problem opened");
        assert_eq!(text, "Problem opened.");
        let (_, text) = c
            .render(&context(
                &event(EventKind::Acknowledged, "", "token:alice"),
                &d,
                None,
                None,
            ))
            .unwrap();
        assert_eq!(text, "Acknowledged by token:alice.");
        let err = Compiled::new(&Templates {
            title: "ok".into(),
            text: "line one\n{{ incident.title ".into(),
        })
        .unwrap_err();
        assert!(err.starts_with("template text, line 2"), "{err}");
    }

    #[test]
    fn the_mail_default_shows_the_incident_record() {
        let c = Compiled::new(&Templates::for_kind("email")).unwrap();
        let e = event(EventKind::Acknowledged, "", "token:alice");
        let d = Delivery::pending(3, "mail".parse().unwrap(), e.at);
        let (_, text) = c.render(&context(&e, &d, None, None)).unwrap();
        assert!(text.starts_with("Acknowledged by token:alice."), "{text}");
        assert!(
            text.ends_with("triaged, outbox event 3 (acknowledged, 2026-01-01T00:00:00Z)"),
            "{text}"
        );
    }

    #[test]
    fn what_happened_reads_well() {
        assert_eq!(
            describe(&event(EventKind::SlaBreached, "respond", "system")),
            "missed its respond target"
        );
        assert_eq!(
            describe(&event(EventKind::Escalated, "level 2", "system")),
            "escalated (level 2)"
        );
        assert_eq!(describe(&event(EventKind::Updated, "", "x")), "updated");
    }
}
