//! Operator actions over HTTP: the incident lifecycle driven by people (acknowledge,
//! start, hold, resolve, close, cancel, reopen, comment, PATCH), each refused with the
//! status or field that stands in the way, audited under the token's name, and kept
//! across a restart.

mod common;

use common::{am_alert, am_payload, Daemon, AM_PATH};
use serde_json::{json, Value};

const INGEST: &str = "ingest-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";

fn tokens() -> String {
    format!(
        "[[server.tokens]]\nname = \"am\"\nrole = \"ingest\"\ntoken = \"{INGEST}\"\n\
         [[server.tokens]]\nname = \"oncall\"\nrole = \"operator\"\ntoken = \"{OPERATOR}\"\n"
    )
}

struct Api<'a> {
    d: &'a Daemon,
}

impl Api<'_> {
    async fn send(&self, req: reqwest::RequestBuilder, token: &str) -> (u16, Value) {
        common::status_json(req.bearer_auth(token).send().await.unwrap()).await
    }

    async fn fire(&self, alertname: &str, instance: &str) {
        let labels = json!({"alertname": alertname, "service": "db", "instance": instance, "severity": "warning"});
        let body = am_payload(vec![am_alert("firing", labels, "2026-11-29T00:00:00Z")]);
        let (code, v) = self
            .send(self.d.client.post(self.d.url(AM_PATH)).json(&body), INGEST)
            .await;
        assert_eq!(code, 200, "{v}");
    }

    async fn act(&self, id: &str, action: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .d
            .client
            .post(self.d.url(&format!("/api/v1/incidents/{id}/{action}")));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req, OPERATOR).await
    }

    async fn patch(&self, id: &str, body: Value) -> (u16, Value) {
        let req = self
            .d
            .client
            .patch(self.d.url(&format!("/api/v1/incidents/{id}")))
            .json(&body);
        self.send(req, OPERATOR).await
    }

    async fn incident(&self, id: &str) -> Value {
        let req = self
            .d
            .client
            .get(self.d.url(&format!("/api/v1/incidents/{id}")));
        let (code, v) = self.send(req, OPERATOR).await;
        assert_eq!(code, 200, "{v}");
        v
    }
}

fn timeline(v: &Value) -> Vec<(String, String)> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_incident_goes_through_its_whole_lifecycle_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = Daemon::start(&data, &tokens()).await;
    let api = Api { d: &d };
    api.fire("DiskFull", "a").await;

    // Acknowledge needs no body; the incident stays open and keeps taking alerts.
    let (code, inc) = api.act("INC-1", "acknowledge", None).await;
    assert_eq!(code, 200, "{inc}");
    assert_eq!(inc["status"], "acknowledged");
    assert!(inc["acknowledged_at"].is_string());
    api.fire("DiskFull", "b").await;
    let inc = api.incident("INC-1").await;
    assert_eq!(inc["alerts_firing"], 2, "ack is not silence: {inc}");

    // A second acknowledge is a conflict naming the current status.
    let (code, err) = api.act("INC-1", "acknowledge", None).await;
    assert_eq!(code, 409, "{err}");
    assert_eq!(err["field"], "status");
    assert_eq!(err["current"], "acknowledged");

    let (code, inc) = api
        .act(
            "INC-1",
            "hold",
            Some(json!({"reason": "awaiting_vendor", "note": "case 1234"})),
        )
        .await;
    assert_eq!(code, 200, "{inc}");
    assert_eq!(inc["status"], "on_hold");
    assert_eq!(inc["hold"]["reason"], "awaiting_vendor");
    let (code, err) = api
        .act("INC-1", "hold", Some(json!({"reason": "lunch"})))
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (400, Some("reason")),
        "{err}"
    );

    let (code, inc) = api.act("INC-1", "start", None).await;
    assert_eq!((code, inc["status"].as_str()), (200, Some("in_progress")));
    assert_eq!(inc["hold"], Value::Null);

    // Resolve needs a person's code and a note.
    let (code, err) = api
        .act("INC-1", "resolve", Some(json!({"code": "fixed"})))
        .await;
    assert_eq!((code, err["field"].as_str()), (400, Some("note")), "{err}");
    let (code, err) = api
        .act(
            "INC-1",
            "resolve",
            Some(json!({"code": "alerts_cleared", "note": "x"})),
        )
        .await;
    assert_eq!((code, err["field"].as_str()), (422, Some("code")), "{err}");
    let (code, err) = api
        .act(
            "INC-1",
            "resolve",
            Some(json!({"code": "fixed", "note": " "})),
        )
        .await;
    assert_eq!((code, err["field"].as_str()), (422, Some("note")), "{err}");
    let (code, inc) = api
        .act(
            "INC-1",
            "resolve",
            Some(json!({"code": "fixed", "note": "grew the volume"})),
        )
        .await;
    assert_eq!(code, 200, "{inc}");
    assert_eq!(inc["status"], "resolved");
    assert_eq!(inc["resolution"]["code"], "fixed");
    assert_eq!(inc["resolution"]["note"], "grew the volume");

    let (code, inc) = api.act("INC-1", "close", Some(json!({}))).await;
    assert_eq!((code, inc["status"].as_str()), (200, Some("closed")));
    assert!(inc["closed_at"].is_string());
    let (code, err) = api.act("INC-1", "reopen", None).await;
    assert_eq!((code, err["current"].as_str()), (409, Some("closed")));
    let (code, _) = api
        .act(
            "INC-1",
            "comment",
            Some(json!({"text": "post-mortem filed"})),
        )
        .await;
    assert_eq!(code, 200, "comments are kept in any status");

    let inc = api.incident("INC-1").await;
    let by_hand: Vec<(String, String)> = timeline(&inc)
        .into_iter()
        .filter(|(actor, _)| actor == "token:oncall")
        .collect();
    let actions: Vec<&str> = by_hand.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "status",
            "responded",
            "status",
            "status",
            "resolved",
            "status",
            "comment"
        ],
        "{inc}"
    );

    // The lifecycle's events are in the outbox, in order (hold, start and comments
    // are updates).
    let req = d.client.get(d.url("/api/v1/outbox/events"));
    let (_, out) = api.send(req, OPERATOR).await;
    let kinds: Vec<&str> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["record"] == "INC-1")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "acknowledged",
            "updated",
            "updated",
            "resolved",
            "closed",
            "updated"
        ],
        "{out}"
    );

    // Everything is kept across a restart.
    d.stop().await;
    let d = Daemon::start(&data, &tokens()).await;
    let api = Api { d: &d };
    let inc = api.incident("INC-1").await;
    assert_eq!(inc["status"], "closed");
    assert_eq!(inc["resolution"]["code"], "fixed");
    assert_eq!(timeline(&inc).last().unwrap().1, "comment");
}

#[tokio::test]
async fn patch_recomputes_priority_and_targets_and_major_incidents_need_a_review() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}[sla.P1]\nrespond_secs = 60\nresolve_secs = 600\n",
        tokens()
    );
    let d = Daemon::start(tmp.path(), &extra).await;
    let api = Api { d: &d };
    api.fire("Latency", "a").await;
    let before = api.incident("INC-1").await;
    assert_eq!(before["priority"], "P3", "{before}");

    let (code, inc) = api
        .patch(
            "INC-1",
            json!({"impact": "high", "urgency": "high", "assignee": "ana", "major": true, "owner": "mim"}),
        )
        .await;
    assert_eq!(code, 200, "{inc}");
    assert_eq!(inc["priority"], "P1");
    assert_eq!(
        (inc["assignee"].as_str(), inc["owner"].as_str()),
        (Some("ana"), Some("mim"))
    );
    // P1 targets: respond 60 s and resolve 600 s from opening.
    let opened: jiff::Timestamp = inc["opened_at"].as_str().unwrap().parse().unwrap();
    let respond_by: jiff::Timestamp = inc["sla"]["respond_by"].as_str().unwrap().parse().unwrap();
    let resolve_by: jiff::Timestamp = inc["sla"]["resolve_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(respond_by.duration_since(opened).as_secs(), 60);
    assert_eq!(resolve_by.duration_since(opened).as_secs(), 600);
    let actions: Vec<String> = timeline(&api.incident("INC-1").await)
        .into_iter()
        .filter(|(a, _)| a == "token:oncall")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        actions,
        [
            "impact",
            "urgency",
            "priority",
            "sla_targets",
            "assignee",
            "owner",
            "major"
        ]
    );

    // null clears; nothing to change, unknown fields and bad values are 400s.
    let (code, inc) = api.patch("INC-1", json!({"assignee": null})).await;
    assert_eq!((code, &inc["assignee"]), (200, &Value::Null), "{inc}");
    for (body, field) in [
        (json!({}), "body"),
        (json!({"colour": "red"}), "colour"),
        (json!({"impact": "huge"}), "impact"),
        (json!({"major": "yes"}), "major"),
    ] {
        let (code, err) = api.patch("INC-1", body.clone()).await;
        assert_eq!(code, 400, "{body}: {err}");
        assert!(
            err["field"].as_str().unwrap_or("").contains(field),
            "{body}: {err}"
        );
    }
    let (code, err) = api.patch("INC-1", json!({"owner": ""})).await;
    assert_eq!((code, err["field"].as_str()), (422, Some("owner")), "{err}");

    // A major incident closes only with a post-incident review.
    let (code, _) = api
        .act(
            "INC-1",
            "resolve",
            Some(json!({"code": "workaround", "note": "failover"})),
        )
        .await;
    assert_eq!(code, 200);
    let (code, err) = api.act("INC-1", "close", None).await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("review")),
        "{err}"
    );
    assert_eq!(api.incident("INC-1").await["status"], "resolved");
    let (code, inc) = api
        .act(
            "INC-1",
            "close",
            Some(json!({"review": "PIR-7: failover drill overdue"})),
        )
        .await;
    assert_eq!(code, 200, "{inc}");
    assert_eq!(inc["review"], "PIR-7: failover drill overdue");
    let (code, err) = api.patch("INC-1", json!({"major": false})).await;
    assert_eq!(
        (code, err["current"].as_str()),
        (409, Some("closed")),
        "{err}"
    );
}

#[tokio::test]
async fn cancel_reopen_and_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!("{}[incidents]\nreopen_window_secs = 3600\n", tokens());
    let d = Daemon::start(tmp.path(), &extra).await;
    let api = Api { d: &d };
    api.fire("Flood", "a").await;
    api.fire("Noise", "a").await;

    let (code, err) = api
        .act("INC-2", "cancel", Some(json!({"reason": "fixed"})))
        .await;
    assert_eq!(
        (code, err["field"].as_str()),
        (422, Some("reason")),
        "{err}"
    );
    let (code, inc) = api
        .act(
            "INC-2",
            "cancel",
            Some(json!({"reason": "false_positive", "note": "test host"})),
        )
        .await;
    assert_eq!(
        (code, inc["status"].as_str()),
        (200, Some("cancelled")),
        "{inc}"
    );
    assert_eq!(inc["resolution"]["code"], "false_positive");

    // Reopen within the window.
    let (code, _) = api
        .act(
            "INC-1",
            "resolve",
            Some(json!({"code": "no_fault_found", "note": "?"})),
        )
        .await;
    assert_eq!(code, 200);
    let (code, inc) = api
        .act("INC-1", "reopen", Some(json!({"note": "back"})))
        .await;
    assert_eq!((code, inc["status"].as_str()), (200, Some("new")), "{inc}");
    assert_eq!(inc["reopened"], 1);

    for (path, want, field) in [
        ("/api/v1/incidents/INC-99/acknowledge", 404, "id"),
        ("/api/v1/incidents/INC-x/acknowledge", 404, "id"),
        ("/api/v1/incidents/INC-1/snooze", 404, "action"),
    ] {
        let (code, err) = api.send(d.client.post(d.url(path)), OPERATOR).await;
        assert_eq!(
            (code, err["field"].as_str()),
            (want, Some(field)),
            "{path}: {err}"
        );
    }
    // A body without a JSON content type, broken JSON, unknown fields.
    let (code, err) = api
        .send(
            d.client
                .post(d.url("/api/v1/incidents/INC-1/comment"))
                .body("hello"),
            OPERATOR,
        )
        .await;
    assert_eq!(code, 415, "{err}");
    let (code, err) = api
        .send(
            d.client
                .post(d.url("/api/v1/incidents/INC-1/comment"))
                .header("content-type", "application/json")
                .body("{\"text\": "),
            OPERATOR,
        )
        .await;
    assert_eq!((code, err["field"].as_str()), (400, Some("body")), "{err}");
    let (code, err) = api
        .act(
            "INC-1",
            "acknowledge",
            Some(json!({"note": "x", "by": "me"})),
        )
        .await;
    assert_eq!(code, 400, "{err}");
    let (code, err) = api.act("INC-1", "comment", Some(json!({}))).await;
    assert_eq!((code, err["field"].as_str()), (400, Some("text")), "{err}");
    // Nothing of the refused requests was written.
    let inc = api.incident("INC-1").await;
    assert_eq!(inc["status"], "new");
    assert!(!timeline(&inc).iter().any(|(_, a)| a == "comment"));
}

#[tokio::test]
async fn actions_need_an_operator_token() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), &tokens()).await;
    let api = Api { d: &d };
    api.fire("DiskFull", "a").await;
    let url = d.url("/api/v1/incidents/INC-1/acknowledge");
    let (code, err) = common::status_json(d.client.post(&url).send().await.unwrap()).await;
    assert_eq!((code, err["field"].as_str()), (401, Some("Authorization")));
    let (code, _) = api.send(d.client.post(&url), INGEST).await;
    assert_eq!(code, 403);
    let (code, _) = api
        .send(
            d.client
                .patch(d.url("/api/v1/incidents/INC-1"))
                .json(&json!({"major": true})),
            INGEST,
        )
        .await;
    assert_eq!(code, 403);
    assert_eq!(api.incident("INC-1").await["status"], "new");
    let (code, _) = api.send(d.client.post(&url), OPERATOR).await;
    assert_eq!(code, 200);
}
