//! The conformance corpus (tests/corpus, EXPECTED.json): every valid vCon is accepted and
//! round-trips exactly through Redis; every invalid one gets a 422 naming the problem; none
//! ever gets a 5xx.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::Value;

use crate::api_basics::{get, post, CONFIG};
use crate::common::{self, send, Backend};

/// The file's JSON text with the whitespace between tokens removed (what must be stored).
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.trim_start_matches('\u{feff}').chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[actix_web::test]
async fn every_sample_gets_its_expected_outcome() {
    let dir = common::corpus_dir();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("EXPECTED.json")).unwrap()).unwrap();
    let state = common::state(CONFIG, Backend::Redis).await;
    let app = common::service(&state).await;
    let mut checked = 0;
    for (name, why) in expected["accept"].as_object().unwrap() {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let reply = send(
            &app,
            post("/vcon?ingress_lists=default_ingress")
                .insert_header(("content-type", "application/vcon+json"))
                .set_payload(text.clone()),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{name} ({why}): {}",
            reply.text()
        );
        assert_eq!(
            reply.text(),
            compact(&text),
            "{name}: the 201 body is the stored text"
        );
        let uuid = uuid_of(&reply.json()).unwrap_or_else(|| panic!("{name}: a uuid"));
        let stored = send(&app, get(&format!("/vcon/{uuid}"))).await;
        assert_eq!(
            (stored.status, stored.text()),
            (StatusCode::OK, compact(&text)),
            "{name}: GET returns it exactly"
        );
        checked += 1;
    }
    for (name, why) in expected["reject"].as_object().unwrap() {
        let text = std::fs::read(dir.join(name)).unwrap();
        let reply = send(&app, post("/vcon").set_payload(text)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name} ({why}): {}",
            reply.text()
        );
        let problems = reply.json()["detail"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!problems.is_empty(), "{name}: the 422 names its problems");
        let named = |path: &str| problems.iter().any(|p| p["path"] == path);
        let why_l = why.as_str().unwrap();
        if why_l.contains("no uuid") {
            assert!(named("$.uuid"), "{name}: {problems:?}");
        }
        if why_l.contains("no created_at") || why_l.contains("empty uuid and created_at") {
            assert!(named("$.created_at"), "{name}: {problems:?}");
        }
        checked += 1;
    }
    assert_eq!(checked, 25, "every file of EXPECTED.json was posted");
    // The queue holds exactly the accepted ones: a rejected vCon writes nothing.
    let reply = send(
        &app,
        TestRequest::get().uri("/stats/queue?list_name=default_ingress"),
    )
    .await;
    assert_eq!(
        reply.json()["depth"],
        expected["accept"].as_object().unwrap().len()
    );
}

#[actix_web::test]
async fn the_python_fixtures_name_each_problem() {
    let dir = common::corpus_dir();
    let state = common::state(CONFIG, Backend::Memory).await;
    let app = common::service(&state).await;
    for (file, path, kind) in [
        (
            "vcon-dev__vcon-server__invalid_bad_party_ref.json",
            "$.dialog[0].parties[1]",
            "index_out_of_range",
        ),
        (
            "vcon-dev__vcon-server__invalid_bad_dialog_types.json",
            "$.dialog[0].duration",
            "float_parsing",
        ),
        (
            "vcon-dev__vcon-server__invalid_null_dialog_string_analysis.json",
            "$.dialog",
            "list_type",
        ),
        (
            "vcon-dev__vcon-server__invalid_null_dialog_string_analysis.json",
            "$.analysis",
            "list_type",
        ),
        (
            "vcon-dev__vcon-server__invalid_empty_vcon.json",
            "$.uuid",
            "uuid_parsing",
        ),
        (
            "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec.vcon",
            "$.created_at",
            "missing",
        ),
    ] {
        let reply = send(
            &app,
            post("/vcon").set_payload(std::fs::read(dir.join(file)).unwrap()),
        )
        .await;
        let problems = reply.json()["detail"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            problems
                .iter()
                .any(|p| p["path"] == path && p["type"] == kind),
            "{file}: expected {kind} at {path}, got {problems:?}"
        );
    }
}

fn uuid_of(vcon: &Value) -> Option<String> {
    vcon.get("uuid")
        .and_then(Value::as_str)
        .or_else(|| {
            vcon.pointer("/signatures/0/header/uuid")
                .and_then(Value::as_str)
        })
        .or_else(|| vcon.pointer("/unprotected/uuid").and_then(Value::as_str))
        .map(str::to_owned)
}
