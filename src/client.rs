//! The operator CLI: `triaged incidents|problems|silences|report …` talk to a running
//! daemon over its HTTP API, like amtool does to Alertmanager, with a token from
//! `--token` or `TRIAGED_TOKEN`. Output is a human table by default, the API's JSON
//! with `--output json` (and CSV for reports).
//!
//! Owns request building and output formatting only; every rule (transitions, field
//! checks) is the daemon's, and its JSON errors are printed as they come.

use std::fmt::Write as _;

use serde_json::{json, Value};

/// How to reach the daemon.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub token: Option<String>,
}

/// What to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Csv,
}

/// A failed command: what to print on standard error.
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One HTTP call of a command.
pub struct Call {
    pub method: reqwest::Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// How long the whole call may take (30 s unless a command needs longer).
    pub timeout: std::time::Duration,
}

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Call {
    pub fn get(path: impl Into<String>) -> Call {
        Call {
            method: reqwest::Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
            timeout: TIMEOUT,
        }
    }

    pub fn post(path: impl Into<String>, body: Value) -> Call {
        Call {
            method: reqwest::Method::POST,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
            timeout: TIMEOUT,
        }
    }

    pub fn with(mut self, name: &str, value: Option<impl ToString>) -> Call {
        if let Some(v) = value {
            self.query.push((name.to_string(), v.to_string()));
        }
        self
    }
}

/// Sends the call; a non-2xx answer becomes a `Failure` with the daemon's error and
/// field.
pub async fn send(ep: &Endpoint, call: Call) -> Result<Value, Failure> {
    let base = ep.url.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .timeout(call.timeout)
        .build()
        .map_err(|e| Failure(format!("cannot build the HTTP client: {e}")))?;
    let mut req = client
        .request(call.method, format!("{base}{}", call.path))
        .query(&call.query);
    if let Some(token) = &ep.token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = &call.body {
        req = req.json(body);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| Failure(format!("cannot reach triaged at {base}: {e}")))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| Failure(format!("cannot read the answer from {base}: {e}")))?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(value);
    }
    let error = value["error"].as_str().unwrap_or("(no message)");
    let mut msg = format!("{} {error}", status.as_u16());
    if let Some(field) = value["field"].as_str() {
        let _ = write!(msg, " (field {field})");
    }
    if let Some(current) = value["current"].as_str() {
        let _ = write!(msg, " (current status {current})");
    }
    Err(Failure(msg))
}

/// The elements of a JSON array (none if it is not one).
fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A time as `2026-12-01 06:30:12Z` (seconds), `-` when absent.
fn when(v: &Value) -> String {
    match v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => t.round(jiff::Unit::Second).map_or_else(
            |_| t.to_string(),
            |r| r.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        ),
        None => s(v),
    }
}

/// Left-aligned columns, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                let _ = write!(out, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push('\n');
    };
    line(&mut out, header.to_vec());
    for r in rows {
        line(&mut out, r.iter().map(String::as_str).collect());
    }
    out
}

/// RFC 4180 CSV: fields with commas, quotes or line breaks are quoted.
pub fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let field = |f: &str| {
        if f.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_string()
        }
    };
    let mut out = String::new();
    for r in std::iter::once(header.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned())
    {
        out.push_str(&r.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

fn rows_or_json(output: Output, v: &Value, header: &[&str], rows: Vec<Vec<String>>) -> String {
    match output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(v).expect("JSON")),
        Output::Csv => csv(header, &rows),
        Output::Table => table(header, &rows),
    }
}

/// `triaged incidents list`.
pub fn incidents_table(v: &Value, output: Output) -> String {
    let rows = items(&v["incidents"])
        .iter()
        .map(|i| {
            vec![
                s(&i["id"]),
                s(&i["status"]),
                s(&i["priority"]),
                s(&i["service"]),
                format!("{}/{}", s(&i["alerts_firing"]), s(&i["alerts_total"])),
                when(&i["opened_at"]),
                s(&i["title"]),
            ]
        })
        .collect();
    rows_or_json(
        output,
        v,
        &[
            "ID",
            "STATUS",
            "PRIORITY",
            "SERVICE",
            "FIRING/ALERTS",
            "OPENED",
            "TITLE",
        ],
        rows,
    )
}

fn timeline(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(&v["timeline"])
        .iter()
        .map(|e| {
            let change = match (e["from"].as_str(), e["to"].as_str()) {
                (Some(f), Some(t)) => format!("{f} → {t}"),
                (None, Some(t)) => t.to_string(),
                _ => String::new(),
            };
            vec![
                when(&e["at"]),
                s(&e["actor"]),
                s(&e["action"]),
                change,
                e["detail"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(&["AT", "ACTOR", "ACTION", "CHANGE", "DETAIL"], &rows)
}

fn fields(v: &Value, names: &[(&str, &str)]) -> String {
    let width = names.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, path) in names {
        let mut cur = v;
        for part in path.split('.') {
            cur = &cur[part];
        }
        let text = if path.ends_with("_at") || path.ends_with("_by") || path.ends_with("since") {
            when(cur)
        } else {
            s(cur)
        };
        let _ = writeln!(out, "{label:<width$}  {text}");
    }
    out
}

/// `triaged incidents show`.
pub fn incident_detail(v: &Value, output: Output) -> String {
    if output == Output::Json {
        return format!("{}\n", serde_json::to_string_pretty(v).expect("JSON"));
    }
    let mut out = fields(
        v,
        &[
            ("id", "id"),
            ("title", "title"),
            ("status", "status"),
            ("priority", "priority"),
            ("impact", "impact"),
            ("urgency", "urgency"),
            ("service", "service"),
            ("key", "key"),
            ("major", "major"),
            ("owner", "owner"),
            ("assignee", "assignee"),
            ("alerts firing", "alerts_firing"),
            ("alerts", "alerts_total"),
            ("problem", "problem"),
            ("workaround", "workaround"),
            ("quiet", "quiet.by"),
            ("detected", "detected_at"),
            ("opened", "opened_at"),
            ("acknowledged", "acknowledged_at"),
            ("resolved", "resolved_at"),
            ("closed", "closed_at"),
            ("respond by", "sla.respond_by"),
            ("resolve by", "sla.resolve_by"),
            ("respond breached", "sla.respond_breached_at"),
            ("resolve breached", "sla.resolve_breached_at"),
            ("escalation level", "sla.escalation_level"),
            ("resolution", "resolution.code"),
            ("note", "resolution.note"),
            ("review", "review"),
        ],
    );
    // What sinks created for it: tickets, chat messages, mails.
    for r in items(&v["external"]) {
        let _ = writeln!(out, "{:<16}  {} {}", "external", s(&r["sink"]), s(&r["id"]));
    }
    out.push('\n');
    out.push_str(&timeline(v));
    out
}

/// One line for an action's result: the record and where it stands now.
pub fn acted(v: &Value, output: Output) -> String {
    match output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(v).expect("JSON")),
        _ => format!("{}: {}\n", s(&v["id"]), s(&v["status"])),
    }
}

/// `triaged problems list`.
pub fn problems_table(v: &Value, output: Output) -> String {
    let rows = items(&v["problems"])
        .iter()
        .map(|p| {
            vec![
                s(&p["id"]),
                s(&p["status"]),
                p["incidents"].as_array().map_or(0, Vec::len).to_string(),
                s(&p["key"]),
                s(&p["title"]),
            ]
        })
        .collect();
    rows_or_json(
        output,
        v,
        &["ID", "STATUS", "INCIDENTS", "KEY", "TITLE"],
        rows,
    )
}

/// `triaged problems show`.
pub fn problem_detail(v: &Value, output: Output) -> String {
    if output == Output::Json {
        return format!("{}\n", serde_json::to_string_pretty(v).expect("JSON"));
    }
    let mut out = fields(
        v,
        &[
            ("id", "id"),
            ("title", "title"),
            ("status", "status"),
            ("key", "key"),
            ("root cause", "root_cause"),
            ("workaround", "workaround"),
            ("opened", "opened_at"),
            ("resolved", "resolved_at"),
            ("closed", "closed_at"),
        ],
    );
    let incs: Vec<String> = items(&v["incidents"]).iter().map(s).collect();
    let _ = writeln!(out, "incidents   {}", incs.join(", "));
    out.push('\n');
    out.push_str(&timeline(v));
    out
}

fn matchers(v: &Value) -> String {
    items(&v["matchers"])
        .iter()
        .map(|m| format!("{}{}{:?}", s(&m["name"]), s(&m["op"]), s(&m["value"])))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `triaged silences list`.
pub fn silences_table(v: &Value, output: Output) -> String {
    let rows = items(&v["silences"])
        .iter()
        .map(|x| {
            vec![
                s(&x["id"]),
                s(&x["state"]),
                when(&x["starts_at"]),
                when(&x["ends_at"]),
                s(&x["created_by"]),
                matchers(x),
                s(&x["comment"]),
            ]
        })
        .collect();
    rows_or_json(
        output,
        v,
        &[
            "ID",
            "STATE",
            "STARTS",
            "ENDS",
            "CREATED BY",
            "MATCHERS",
            "COMMENT",
        ],
        rows,
    )
}

/// One silence: id, state and matchers.
pub fn silence_line(v: &Value, output: Output) -> String {
    match output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(v).expect("JSON")),
        _ => format!(
            "{}: {} until {} ({})\n",
            s(&v["id"]),
            s(&v["state"]),
            when(&v["ends_at"]),
            matchers(v)
        ),
    }
}

fn delivery_row(d: &Value, event: &Value) -> Vec<String> {
    vec![
        s(&d["seq"]),
        s(&d["sink"]),
        s(&d["state"]),
        s(&event["record"]),
        s(&event["kind"]),
        when(&event["at"]),
        s(&d["attempts"]),
        when(&d["next_attempt_at"]),
        s(&d["status"]),
        s(&d["error"]),
    ]
}

const DELIVERY_HEADER: [&str; 10] = [
    "SEQ", "SINK", "STATE", "RECORD", "EVENT", "AT", "ATTEMPTS", "NEXT", "STATUS", "ERROR",
];

/// `triaged outbox list`: deliveries waiting and dead letters.
pub fn outbox_table(v: &Value, output: Output) -> String {
    let rows = items(&v["deliveries"])
        .iter()
        .map(|d| delivery_row(d, &d["event"]))
        .collect();
    rows_or_json(output, v, &DELIVERY_HEADER, rows)
}

/// `triaged outbox show SEQ`: the event, then its deliveries (with a dead letter's
/// kept answer).
pub fn outbox_event(v: &Value, output: Output) -> String {
    let e = &v["event"];
    let rows: Vec<Vec<String>> = items(&v["deliveries"])
        .iter()
        .map(|d| delivery_row(d, e))
        .collect();
    match output {
        Output::Table => {
            let mut out = format!(
                "{} {} {} at {} by {}: {}\n\n",
                s(&e["seq"]),
                s(&e["record"]),
                s(&e["kind"]),
                when(&e["at"]),
                s(&e["by"]),
                s(&e["detail"])
            );
            out.push_str(&table(&DELIVERY_HEADER, &rows));
            for d in items(&v["deliveries"]) {
                if let Some(body) = d["response"].as_str() {
                    out.push_str(&format!("\n{} answered: {body}\n", s(&d["sink"])));
                }
            }
            out
        }
        _ => rows_or_json(output, v, &DELIVERY_HEADER, rows),
    }
}

/// `triaged outbox retry`: what was made pending again.
pub fn outbox_retried(v: &Value, output: Output) -> String {
    match output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(v).expect("JSON")),
        _ => {
            let sinks: Vec<String> = items(&v["deliveries"])
                .iter()
                .map(|d| s(&d["sink"]))
                .collect();
            format!(
                "outbox event {}: retrying delivery to {}\n",
                s(&v["seq"]),
                sinks.join(", ")
            )
        }
    }
}

fn secs(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.0}"))
}

fn ratio(v: &Value) -> String {
    v.as_f64()
        .map_or("-".into(), |x| format!("{:.1}%", x * 100.0))
}

/// `triaged report KIND`: the report as a table or CSV (rows as the API gives them),
/// or its JSON.
pub fn report(kind: &str, v: &Value, output: Output) -> String {
    if output == Output::Json {
        return format!("{}\n", serde_json::to_string_pretty(v).expect("JSON"));
    }
    let (header, rows): (Vec<&str>, Vec<Vec<String>>) = match kind {
        "sla" => {
            let row = |name: &str, r: &Value| {
                vec![
                    name.to_string(),
                    s(&r["incidents"]),
                    s(&r["respond"]["met"]),
                    s(&r["respond"]["breached"]),
                    ratio(&r["respond"]["met_ratio"]),
                    s(&r["resolve"]["met"]),
                    s(&r["resolve"]["breached"]),
                    s(&r["resolve"]["running"]),
                    ratio(&r["resolve"]["met_ratio"]),
                    secs(&r["mtta"]["mean_secs"]),
                    secs(&r["mttr"]["mean_secs"]),
                ]
            };
            let mut rows: Vec<Vec<String>> = v["priorities"]
                .as_object()
                .map(|m| m.iter().map(|(p, r)| row(p, r)).collect())
                .unwrap_or_default();
            rows.push(row("total", &v["total"]));
            (
                vec![
                    "PRIORITY",
                    "INCIDENTS",
                    "RESPOND MET",
                    "RESPOND BREACHED",
                    "RESPOND MET %",
                    "RESOLVE MET",
                    "RESOLVE BREACHED",
                    "RESOLVE RUNNING",
                    "RESOLVE MET %",
                    "MTTA S",
                    "MTTR S",
                ],
                rows,
            )
        }
        "incidents" => {
            let mut rows = vec![vec!["total".into(), "all".into(), s(&v["total"])]];
            for (dim, key) in [
                ("service", "by_service"),
                ("priority", "by_priority"),
                ("status", "by_status"),
                ("day", "by_day"),
            ] {
                if let Some(m) = v[key].as_object() {
                    rows.extend(
                        m.iter()
                            .map(|(k, n)| vec![dim.to_string(), k.clone(), s(n)]),
                    );
                }
            }
            for key in ["major", "reopened", "quiet"] {
                rows.push(vec![key.to_string(), "all".into(), s(&v[key])]);
            }
            (vec!["DIMENSION", "VALUE", "INCIDENTS"], rows)
        }
        "problems" => {
            let mut rows = Vec::new();
            if let Some(m) = v["backlog"].as_object() {
                rows.extend(
                    m.iter()
                        .map(|(k, n)| vec!["backlog".into(), k.clone(), s(n), String::new()]),
                );
            }
            rows.push(vec![
                "opened".into(),
                "in range".into(),
                s(&v["opened"]),
                String::new(),
            ]);
            rows.push(vec![
                "resolved".into(),
                "in range".into(),
                s(&v["resolved"]),
                String::new(),
            ]);
            for k in v["known_errors"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                rows.push(vec![
                    "known_error".into(),
                    s(&k["id"]),
                    s(&k["incidents"]),
                    format!("{}: {}", s(&k["title"]), s(&k["workaround"])),
                ]);
            }
            for k in v["recurring_keys"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                rows.push(vec![
                    "recurring_key".into(),
                    s(&k[0]),
                    s(&k[1]),
                    String::new(),
                ]);
            }
            (vec!["KIND", "ITEM", "COUNT", "DETAIL"], rows)
        }
        _ => {
            let rows = items(&v["changes"])
                .iter()
                .map(|c| {
                    let incs: Vec<String> = items(&c["incidents"]).iter().map(s).collect();
                    vec![
                        s(&c["id"]),
                        s(&c["service"]),
                        s(&c["status"]),
                        incs.len().to_string(),
                        incs.join(" "),
                        s(&c["summary"]),
                    ]
                })
                .collect();
            (
                vec![
                    "CHANGE",
                    "SERVICE",
                    "STATUS",
                    "INCIDENTS",
                    "INCIDENT IDS",
                    "SUMMARY",
                ],
                rows,
            )
        }
    };
    match output {
        Output::Csv => csv(&header, &rows),
        _ => table(&header, &rows),
    }
}

/// The body of an incident action's request from the CLI's options.
pub fn note_body(note: Option<String>) -> Value {
    match note {
        Some(n) => json!({ "note": n }),
        None => json!({}),
    }
}

/// A silence's end from `--until` (RFC 3339) or `--duration` (`2h`, `90m`, `1d`).
pub fn silence_end(
    until: Option<jiff::Timestamp>,
    duration: Option<&str>,
    from: jiff::Timestamp,
) -> Result<jiff::Timestamp, Failure> {
    match (until, duration) {
        (Some(t), None) => Ok(t),
        (None, Some(d)) => {
            let span: jiff::SignedDuration = d.parse().map_err(|e| {
                Failure(format!(
                    "--duration: expected a duration like 2h or 90m, got {d:?}: {e}"
                ))
            })?;
            from.checked_add(span)
                .map_err(|e| Failure(format!("--duration: {e}")))
        }
        _ => Err(Failure("give either --duration or --until".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_csv_quotes() {
        let rows = vec![
            vec!["INC-1".to_string(), "a, \"b\"".to_string()],
            vec!["INC-10".to_string(), "c".to_string()],
        ];
        assert_eq!(
            table(&["ID", "TITLE"], &rows),
            "ID      TITLE\nINC-1   a, \"b\"\nINC-10  c\n"
        );
        assert_eq!(
            csv(&["ID", "TITLE"], &rows),
            "ID,TITLE\r\nINC-1,\"a, \"\"b\"\"\"\r\nINC-10,c\r\n"
        );
    }

    #[test]
    fn silence_ends_come_from_a_duration_or_a_time() {
        let from: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            silence_end(None, Some("2h"), from).unwrap().to_string(),
            "2026-12-01T02:00:00Z"
        );
        assert_eq!(
            silence_end(None, Some("90m"), from).unwrap().to_string(),
            "2026-12-01T01:30:00Z"
        );
        assert!(silence_end(None, Some("soon"), from).is_err());
        assert!(silence_end(None, None, from).is_err());
    }
}
