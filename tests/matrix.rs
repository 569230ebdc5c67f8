//! The Matrix sink and chat commands against a real Synapse: an alert becomes a
//! message in the room, `!ack` from an allowed user in its thread acknowledges the
//! incident (audited as that user), the daemon answers in the thread, the message is
//! edited to the incident's state and later events are threaded; a user not allowed
//! is refused.

mod common;

use common::synapse::Synapse;
use common::{am_alert, am_payload, wait_for, Daemon, AM_PATH};
use reqwest::Method;
use serde_json::{json, Value};

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn thread(hs: &Synapse, token: &str, room: &str, root: &str) -> Vec<Value> {
    let v = hs
        .call(
            token,
            Method::GET,
            &format!(
                "/v1/rooms/{}/relations/{}/m.thread?limit=50",
                enc(room),
                enc(root)
            ),
            None,
        )
        .await;
    let mut events = v["chunk"].as_array().cloned().unwrap_or_default();
    events.reverse();
    events
}

fn bodies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["content"]["body"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn an_alert_reaches_the_room_and_an_ack_in_its_thread_acknowledges_the_incident() {
    let hs = Synapse::start().await;
    let bot = hs.user("triaged").await;
    let alice = hs.user("alice").await;
    let mallory = hs.user("mallory").await;
    let room = hs
        .call(
            &bot,
            Method::POST,
            "/v3/createRoom",
            Some(json!({"preset": "private_chat", "name": "incidents",
                        "invite": ["@alice:test", "@mallory:test"]})),
        )
        .await["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    for t in [&alice, &mallory] {
        hs.call(
            t,
            Method::POST,
            &format!("/v3/join/{}", enc(&room)),
            Some(json!({})),
        )
        .await;
    }
    std::env::set_var("TRIAGED_TEST_MATRIX_TOKEN", &bot);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "[[sinks]]\nname = \"matrix\"\ntype = \"matrix\"\nhomeserver = \"{}\"\n\
             token_env = \"TRIAGED_TEST_MATRIX_TOKEN\"\nroom = \"{room}\"\n\
             allowed_users = [\"@alice:test\"]\nretry_initial_secs = 1\n\
             [[routes]]\nsinks = [\"matrix\"]\n",
            hs.url
        ),
    )
    .await;
    let labels = json!({"alertname": "DiskFull", "service": "db", "severity": "critical"});
    let body = am_payload(vec![am_alert("firing", labels, "2026-11-30T00:00:00Z")]);
    assert_eq!(d.post_json(AM_PATH, &body).await.0, 200);

    // The incident's message, as Alice sees it in the room.
    let root = wait_for(20, "the incident's message in the room", || async {
        let v = hs
            .call(
                &alice,
                Method::GET,
                &format!("/v3/rooms/{}/messages?dir=b&limit=20", enc(&room)),
                None,
            )
            .await;
        v["chunk"].as_array()?.iter().find_map(|e| {
            (e["sender"] == "@triaged:test"
                && e["content"]["body"].as_str()?.contains("INC-1 opened"))
            .then(|| e.clone())
        })
    })
    .await;
    assert_eq!(root["content"]["format"], "org.matrix.custom.html");
    assert!(
        root["content"]["formatted_body"]
            .as_str()
            .unwrap()
            .starts_with("<b>[P1] INC-1"),
        "{root}"
    );
    let root_id = root["event_id"].as_str().unwrap().to_string();
    let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
    assert_eq!(inc["external"][0]["id"], format!("{room}|{root_id}"));

    let say = |token: String, txn: &'static str, text: &'static str| {
        let (hs, room, root_id) = (&hs, room.clone(), root_id.clone());
        async move {
            hs.call(
                &token,
                Method::PUT,
                &format!("/v3/rooms/{}/send/m.room.message/{txn}", enc(&room)),
                Some(json!({"msgtype": "m.text", "body": text,
                            "m.relates_to": {"rel_type": "m.thread", "event_id": root_id,
                                             "is_falling_back": true,
                                             "m.in_reply_to": {"event_id": root_id}}})),
            )
            .await;
        }
    };
    // Mallory may not act; Alice may.
    say(mallory.clone(), "m1", "!resolve INC-1 fixed it was me").await;
    wait_for(20, "the refusal in the thread", || async {
        bodies(&thread(&hs, &alice, &room, &root_id).await)
            .contains(&"@mallory:test may not act on incidents".to_string())
            .then_some(())
    })
    .await;
    say(alice.clone(), "a1", "!ack INC-1 looking").await;
    let inc = wait_for(20, "the incident acknowledged", || async {
        let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
        (inc["status"] == "acknowledged").then_some(inc)
    })
    .await;
    let ack = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "status" && e["to"] == "acknowledged")
        .cloned()
        .unwrap();
    assert_eq!(ack["actor"], "matrix:@alice:test");
    // The daemon answers in the thread, the outbox adds the event there, and the
    // incident's message is edited to its state now.
    let texts = wait_for(
        20,
        "the confirmation and the event in the thread",
        || async {
            let texts = bodies(&thread(&hs, &alice, &room, &root_id).await);
            (texts.contains(&"INC-1 acknowledged by @alice:test".to_string())
                && texts
                    .iter()
                    .any(|t| t.starts_with("Acknowledged by matrix:@alice:test")))
            .then_some(texts)
        },
    )
    .await;
    assert!(!texts.iter().any(|t| t.contains("resolved")), "{texts:?}");
    let edits = hs
        .call(
            &alice,
            Method::GET,
            &format!(
                "/v1/rooms/{}/relations/{}/m.replace",
                enc(&room),
                enc(&root_id)
            ),
            None,
        )
        .await;
    let latest = edits["chunk"][0]["content"]["m.new_content"]["body"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(latest.contains("Status: acknowledged"), "{edits}");

    say(alice.clone(), "a2", "!resolve INC-1 fixed grew the volume").await;
    wait_for(20, "the incident resolved", || async {
        let (_, inc) = d.get("/api/v1/incidents/INC-1").await;
        (inc["status"] == "resolved" && inc["resolution"]["note"] == "grew the volume")
            .then_some(())
    })
    .await;
    say(alice.clone(), "a3", "!ack INC-99").await;
    wait_for(20, "the answer to an unknown incident", || async {
        bodies(&thread(&hs, &alice, &room, &root_id).await)
            .contains(&"INC-99: no incident INC-99".to_string())
            .then_some(())
    })
    .await;
    d.stop().await;
}
