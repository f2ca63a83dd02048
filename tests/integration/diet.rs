//! `diet` against an in-process media service (wiremock): bodies posted and replaced by the
//! URL answered, failures that keep the bodies, and the removals. The S3 offload is covered
//! by the unit tests of `links::diet` (object_store's in-memory store and a real S3 signer).

use conserver::links::LinkOutcome;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{document, link_from_yaml, run_link};

const UUID: &str = "0191a3f4-5b6c-7d8e-9f00-00000000d001";
const FAST_RETRY: &str = "limits: {retry: {attempts: 3, initial_backoff: 0.01, max_backoff: 0.05}}";

fn diet(options: &str) -> std::sync::Arc<dyn conserver::links::Link> {
    let yaml = format!("{FAST_RETRY}\nlinks:\n  slim: {{module: diet, options: {options}}}\n");
    link_from_yaml(&yaml, "slim").0
}

fn vcon() -> Value {
    json!({
        "vcon": "0.3.0", "uuid": UUID, "created_at": "2024-05-01T10:00:00Z",
        "parties": [{"tel": "+15551230000", "meta": {"system_prompt": "be nice"}}],
        "dialog": [
            {"id": "d1", "type": "recording", "body": "UklGRg", "encoding": "base64url", "mediatype": "audio/x-wav"},
            {"type": "text", "body": "hello", "encoding": "none"},
            {"type": "text", "body": ""}
        ],
        "analysis": [{"type": "summary", "dialog": 0, "body": "short", "encoding": "none", "system_prompt": "x"}],
        "attachments": [
            {"purpose": "tags", "body": "[]", "encoding": "json"},
            {"mediatype": "image/png", "body": "iVBOR", "encoding": "base64url"},
            {"mimetype": "application/pdf", "body": "JVBER", "encoding": "base64url"}
        ]
    })
}

#[tokio::test]
async fn bodies_are_posted_to_the_media_url_and_replaced_by_the_url_answered() {
    let media = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/store"))
        .and(body_json(
            json!({"content": "UklGRg", "vcon_uuid": UUID, "dialog_id": "d1"}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"url": "https://media.example/d1"})),
        )
        .mount(&media)
        .await;
    Mock::given(method("POST"))
        .and(path("/store"))
        .and(body_json(
            json!({"content": "hello", "vcon_uuid": UUID, "dialog_id": ""}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"stored": true})))
        .mount(&media)
        .await;
    let link = diet(&format!(
        "{{remove_dialog_body: true, post_media_to_url: '{}/store'}}",
        media.uri()
    ));
    let mut doc = document(vcon());
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    assert_eq!(
        media.received_requests().await.unwrap().len(),
        2,
        "the empty body is not posted"
    );
    let value = doc.value();
    assert_eq!(
        value["dialog"],
        json!([
            {"id": "d1", "type": "recording", "body": "https://media.example/d1", "encoding": "base64url", "mediatype": "audio/x-wav", "body_type": "url"},
            {"type": "text", "body": "", "encoding": "none"},
            {"type": "text", "body": ""}
        ])
    );
    assert_eq!(
        value["analysis"],
        vcon()["analysis"],
        "nothing else removed"
    );
}

#[tokio::test]
async fn a_failing_media_service_fails_the_run_with_the_bodies_intact() {
    for (answer, posts) in [
        (ResponseTemplate::new(500), 3),
        (
            ResponseTemplate::new(400).set_body_string("no such bucket"),
            1,
        ),
        (ResponseTemplate::new(200).set_body_string("stored!"), 1),
    ] {
        let media = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&media)
            .await;
        let link = diet(&format!(
            "{{remove_dialog_body: true, post_media_to_url: '{}'}}",
            media.uri()
        ));
        let mut doc = document(vcon());
        let error = run_link(&link, &mut doc).await.unwrap_err();
        assert!(conserver::report(&error)
            .to_string()
            .contains("post_media_to_url"));
        assert_eq!(media.received_requests().await.unwrap().len(), posts);
        assert_eq!(doc.value(), &vcon(), "unchanged");
        assert!(!doc.is_changed());
    }
}

#[tokio::test]
async fn bodies_analysis_attachments_and_system_prompts_are_removed() {
    let link = diet("{remove_dialog_body: true, remove_analysis: true, remove_attachment_types: [image/png, application/pdf], remove_system_prompts: true}");
    let mut doc = document(vcon());
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let value = doc.value();
    assert_eq!(value["dialog"][0]["body"], "");
    assert!(value["dialog"][0].get("body_type").is_none());
    assert!(value.get("analysis").is_none());
    assert_eq!(
        value["attachments"],
        json!([{"purpose": "tags", "body": "[]", "encoding": "json"}])
    );
    assert_eq!(
        value["parties"],
        json!([{"tel": "+15551230000", "meta": {}}])
    );
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "vcon",
            "uuid",
            "created_at",
            "parties",
            "dialog",
            "attachments"
        ],
        "member order kept"
    );
    // Nothing left to do: the vCon is not changed again.
    let mut again = document(doc.value().clone());
    assert_eq!(
        run_link(&link, &mut again).await.unwrap(),
        LinkOutcome::Continue
    );
    assert!(!again.is_changed());
}
