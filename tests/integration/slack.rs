//! `post_analysis_to_slack` against an in-process Slack Web API (wiremock): the messages
//! posted, the team channel and its fallback, Slack's `{"ok": false}` answers, and the mark
//! that makes a second run post nothing.

use conserver::links::LinkOutcome;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::{document, link_from_yaml, run_link};

const UUID: &str = "0191a3f4-5b6c-7d8e-9f00-00000000c001";
const FAST_RETRY: &str = "limits: {retry: {attempts: 3, initial_backoff: 0.01, max_backoff: 0.05}}";

fn slack(server: &MockServer) -> std::sync::Arc<dyn conserver::links::Link> {
    let yaml = format!(
        "{FAST_RETRY}\nlinks:\n  notify:\n    module: post_analysis_to_slack\n    options: {{token: xoxb-1, default_channel_name: alerts, url: 'https://portal.example/v/{{vcon_id}}', base_url: '{}/api', channel_name: unused}}\n",
        server.uri()
    );
    link_from_yaml(&yaml, "notify").0
}

fn vcon(team: Option<&str>) -> Value {
    let mut value = json!({
        "vcon": "0.3.0", "uuid": UUID, "created_at": "2024-05-01T10:00:00Z", "parties": [], "dialog": [],
        "analysis": [
            {"type": "customer_frustration", "dialog": 0, "body": "ok", "encoding": "none"},
            {"type": "customer_frustration", "dialog": 1, "body": "NEEDS REVIEW: angry", "encoding": "none"},
            {"type": "summary", "dialog": 1, "body": "The customer wants a refund.", "encoding": "none"}
        ]
    });
    if let Some(team) = team {
        value["attachments"] = json!([{"purpose": "strolid_dealer", "encoding": "json",
            "body": json!({"name": "Acme Motors", "team": {"name": team}}).to_string()}]);
    }
    value
}

fn posted(requests: &[Request]) -> Vec<Value> {
    requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn blocks(text: &str) -> Value {
    json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": "Check this out :neutral_face:"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "Please review the details here:"},
         "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Details", "emoji": true},
                       "value": "click_me_123", "url": format!("https://portal.example/v/{UUID}"), "action_id": "button-action"}}
    ])
}

#[tokio::test]
async fn flagged_analyses_are_posted_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", "Bearer xoxb-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "channel": "C1", "ts": "1.2"})),
        )
        .mount(&server)
        .await;
    let link = slack(&server);
    let mut doc = document(vcon(None));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        posted(&requests),
        [
            json!({"channel": "alerts", "text": "The customer wants a refund.", "blocks": blocks("The customer wants a refund.")})
        ]
    );
    assert_eq!(doc.value()["analysis"][1]["was_posted_to_slack"], true);
    assert!(doc.value()["analysis"][0]
        .get("was_posted_to_slack")
        .is_none());
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Skipped
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_missing_team_channel_is_reported_in_the_default_channel() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(|request: &Request| {
            let message: Value = serde_json::from_slice(&request.body).unwrap();
            if message["channel"] == "team-north-alerts" {
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": false, "error": "channel_not_found"}))
            } else {
                ResponseTemplate::new(200).set_body_json(json!({"ok": true}))
            }
        })
        .mount(&server)
        .await;
    let link = slack(&server);
    let mut doc = document(vcon(Some("North East")));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let text = "The customer wants a refund. #Acme Motors";
    assert_eq!(
        posted(&server.received_requests().await.unwrap()),
        [
            json!({"channel": "team-north-alerts", "text": text, "blocks": blocks(text)}),
            json!({"channel": "alerts", "text": "The channel name doesn't exist - team-north-alerts"}),
            json!({"channel": "alerts", "text": text, "blocks": blocks(text)}),
        ]
    );
}

#[tokio::test]
async fn ratelimited_is_retried_and_other_errors_fail() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let mut doc = document(vcon(None));
    assert_eq!(
        run_link(&slack(&server), &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    let refusing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"})),
        )
        .mount(&refusing)
        .await;
    let mut doc = document(vcon(None));
    let error = run_link(&slack(&refusing), &mut doc).await.unwrap_err();
    assert!(conserver::report(&error)
        .to_string()
        .contains("invalid_auth"));
    assert!(!error.is_retriable());
    assert_eq!(refusing.received_requests().await.unwrap().len(), 1);
    assert!(doc.value()["analysis"][1]
        .get("was_posted_to_slack")
        .is_none());
}
