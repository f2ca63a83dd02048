//! `ingest` and `describe` end to end: every row of vcon.md §3.1, the accept rules of §3.2, the
//! warnings of §3.3, the forms of §4 and the round trip of §6.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use super::*;
use crate::problem::Loc;

const UUID: &str = "019f15a6-a752-826f-b9a2-279e0d16bc46";
const OTHER_UUID: &str = "11111111-1111-1111-1111-111111111111";
const CREATED: &str = "2024-05-01T12:00:00Z";
const CREATED_SECONDS: i64 = 1_714_564_800;

fn options() -> IngestOptions {
    IngestOptions {
        accept_signed: true,
        max_bytes: 1 << 20,
    }
}

/// A minimal valid vCon with `extra` members added (or replaced, keeping their place).
fn vcon(extra: Value) -> String {
    let mut doc = json!({"uuid": UUID, "created_at": CREATED});
    if let (Some(doc), Value::Object(extra)) = (doc.as_object_mut(), extra) {
        doc.extend(extra);
    }
    doc.to_string()
}

fn accept(body: &str) -> Ingested {
    match ingest(body.as_bytes(), &options()) {
        Ok(ingested) => ingested,
        Err(error) => panic!("{body} should be accepted: {error:?}"),
    }
}

fn reject(body: &str) -> Vec<Problem> {
    match ingest(body.as_bytes(), &options()) {
        Err(IngestError::Invalid(problems)) => problems,
        other => panic!("{body} should be invalid, got {other:?}"),
    }
}

/// `(type, path)` of every problem, in order.
fn found(body: &str) -> Vec<(&'static str, String)> {
    reject(body).into_iter().map(|p| (p.kind, p.path)).collect()
}

fn one(kind: &'static str, path: &str) -> Vec<(&'static str, String)> {
    vec![(kind, path.to_owned())]
}

fn warning_kinds(body: &str) -> Vec<(&'static str, String)> {
    accept(body)
        .warnings
        .into_iter()
        .map(|w| (w.kind, w.path))
        .collect()
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

// ---- §6 round trip and the minimal vCon -------------------------------------------------------

#[test]
fn a_minimal_vcon_is_accepted_with_its_index_data() {
    let ingested = accept(&vcon(json!({})));
    assert_eq!(ingested.uuid.to_string(), UUID);
    assert_eq!(ingested.form, Form::Unsigned);
    assert_eq!(ingested.created_at, Some(CREATED_SECONDS));
    assert_eq!(ingested.parties, PartyIndex::default());
    assert!(ingested.warnings.is_empty());
}

#[test]
fn the_stored_text_is_the_body_without_whitespace() {
    let body = "\u{feff}{\n  \"uuid\" : \"{019F15A6-A752-826F-B9A2-279E0D16BC46}\",\n  \
                \"created_at\": \"2024-05-01T12:00:00.5+00:00\",\n  \"zeta\": 120.0,\n  \
                \"alpha\": [1.2e2, 12345678901234567890],\n  \"s\": \"caf\\u00e9 \\/ x\"\n}\n";
    let ingested = accept(body);
    assert_eq!(
        ingested.text,
        r#"{"uuid":"{019F15A6-A752-826F-B9A2-279E0D16BC46}","created_at":"2024-05-01T12:00:00.5+00:00","zeta":120.0,"alpha":[1.2e2,12345678901234567890],"s":"caf\u00e9 \/ x"}"#
    );
    assert_eq!(
        ingested.uuid.to_string(),
        UUID,
        "the key uses the canonical form"
    );
    assert_eq!(
        ingested.created_at,
        Some(CREATED_SECONDS),
        "the fraction is dropped"
    );
}

#[test]
fn malformed_and_empty_bodies() {
    assert_eq!(ingest(b"", &options()).unwrap_err(), IngestError::Empty);
    assert_eq!(ingest(b"  \n", &options()).unwrap_err(), IngestError::Empty);
    assert_eq!(
        ingest(b"{\"uuid\": 1,}", &options()).unwrap_err(),
        IngestError::Malformed {
            line: 1,
            column: 12,
            message: "expected a member name (a string), found '}'".into()
        }
    );
    assert!(matches!(
        ingest(b"{\"a\":\"\xFF\"}", &options()),
        Err(IngestError::Malformed { .. })
    ));
}

// ---- §3.1 rows ------------------------------------------------------------------------------

#[test]
fn row_1_body_must_be_an_object() {
    for (body, input) in [
        ("[]", None),
        ("\"x\"", Some(json!("x"))),
        ("12", Some(json!(12))),
        ("null", Some(Value::Null)),
    ] {
        let problems = reject(body);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].kind, problems[0].path.as_str()),
            ("dict_type", "$")
        );
        assert_eq!(problems[0].loc, [Loc::Key("body".into())]);
        assert_eq!(problems[0].input, input, "{body}");
    }
}

#[test]
fn row_2_duplicate_keys_anywhere() {
    let body = format!(
        r#"{{"uuid":"{UUID}","created_at":"{CREATED}","dialog":[{{"url":"https://a/1","url":"https://a/2"}}]}}"#
    );
    assert_eq!(found(&body), one("duplicate_key", "$.dialog[0].url"));
    let body = format!(r#"{{"uuid":"{UUID}","created_at":"{CREATED}","uuid":"{UUID}"}}"#);
    assert_eq!(found(&body), one("duplicate_key", "$.uuid"));
}

#[test]
fn row_3_nesting_deeper_than_128_levels() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let body = vcon(json!({})).replacen('{', &format!("{{\"x\":{deep},"), 1);
    let problems = found(&body);
    assert_eq!(
        problems,
        one("value_error", &format!("$.x{}", "[0]".repeat(127)))
    );
    let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
    accept(&vcon(json!({})).replacen('{', &format!("{{\"x\":{ok},"), 1));
}

#[test]
fn row_4_both_forms_are_ambiguous() {
    let body = json!({"payload": "e30", "signatures": [{}], "ciphertext": "x", "recipients": [{}]});
    assert_eq!(found(&body.to_string()), one("ambiguous_form", "$"));
}

#[test]
fn row_5_sealed_forms_when_not_accepted() {
    let no = IngestOptions {
        accept_signed: false,
        max_bytes: 1000,
    };
    let signed = json!({"payload": "e30", "signatures": [{"header": {"uuid": UUID}}]});
    let encrypted = json!({"ciphertext": "x", "recipients": [{}], "unprotected": {"uuid": UUID}});
    for body in [signed, encrypted] {
        match ingest(body.to_string().as_bytes(), &no) {
            Err(IngestError::Invalid(problems)) => {
                assert_eq!(problems.len(), 1);
                assert_eq!(
                    (problems[0].kind, problems[0].path.as_str()),
                    ("signed_not_accepted", "$")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn row_6_uuid() {
    let no_uuid = json!({"created_at": CREATED}).to_string();
    assert_eq!(found(&no_uuid), one("missing", "$.uuid"));
    assert_eq!(
        found(&vcon(json!({"uuid": null}))),
        one("missing", "$.uuid")
    );
    assert_eq!(
        found(&vcon(json!({"uuid": 12}))),
        one("uuid_parsing", "$.uuid")
    );
    assert_eq!(
        found(&vcon(json!({"uuid": ""}))),
        one("uuid_parsing", "$.uuid")
    );
    assert_eq!(
        found(&vcon(json!({"uuid": "not-a-uuid"}))),
        one("uuid_parsing", "$.uuid")
    );
    assert_eq!(
        found(&vcon(json!({"uuid": format!(" {UUID}")}))),
        one("uuid_parsing", "$.uuid")
    );
    let problem = &reject(&vcon(json!({"uuid": "nope"})))[0];
    assert_eq!(problem.input, Some(json!("nope")));
    assert!(problem.msg.contains("not a UUID"), "{}", problem.msg);
    for form in [
        format!("urn:uuid:{UUID}"),
        UUID.replace('-', ""),
        UUID.to_uppercase(),
    ] {
        assert_eq!(accept(&vcon(json!({"uuid": form}))).uuid.to_string(), UUID);
    }
}

#[test]
fn row_7_created_at() {
    let no_date = json!({"uuid": UUID}).to_string();
    assert_eq!(found(&no_date), one("missing", "$.created_at"));
    assert_eq!(
        found(&vcon(json!({"created_at": null}))),
        one("missing", "$.created_at")
    );
    for bad in [
        json!(""),
        json!("NOT-A-DATE"),
        json!(true),
        json!({}),
        json!([]),
    ] {
        assert_eq!(
            found(&vcon(json!({"created_at": bad}))),
            one("datetime_parsing", "$.created_at")
        );
    }
    for (good, seconds) in [
        (json!(1_715_000_000), 1_715_000_000),
        (json!(1_715_000_000.9), 1_715_000_000),
        (json!("1715000000"), 1_715_000_000),
        (json!(1_715_000_000_123_i64), 1_715_000_000),
        (json!("2024-01-01"), 1_704_067_200),
        (json!("Wed, 18 May 2022 23:05:05 -0000"), 1_652_915_105),
    ] {
        assert_eq!(
            accept(&vcon(json!({"created_at": good}))).created_at,
            Some(seconds)
        );
    }
}

#[test]
fn row_8_vcon_and_subject_are_strings() {
    assert_eq!(
        found(&vcon(json!({"vcon": 0.4}))),
        one("string_type", "$.vcon")
    );
    assert_eq!(
        found(&vcon(json!({"subject": ["a"]}))),
        one("string_type", "$.subject")
    );
    accept(&vcon(json!({"vcon": null, "subject": null})));
    for version in ["0.0.1", "0.3.0", "0.4.0", ""] {
        accept(&vcon(json!({"vcon": version})));
    }
}

#[test]
fn row_9_arrays_including_null() {
    for name in ["parties", "dialog", "analysis", "attachments"] {
        for bad in [json!(null), json!({}), json!("x"), json!(1)] {
            assert_eq!(
                found(&vcon(json!({name: bad}))),
                one("list_type", &format!("$.{name}"))
            );
        }
        accept(&vcon(json!({name: []})));
    }
}

#[test]
fn row_10_elements_must_be_objects() {
    let body = vcon(
        json!({"parties": [{}, {}, "x"], "analysis": [1], "attachments": [null], "group": [[]]}),
    );
    assert_eq!(
        found(&body),
        vec![
            ("dict_type", "$.parties[2]".to_owned()),
            ("dict_type", "$.analysis[0]".to_owned()),
            ("dict_type", "$.attachments[0]".to_owned()),
            ("dict_type", "$.group[0]".to_owned()),
        ]
    );
    assert_eq!(
        reject(&vcon(json!({"dialog": ["text"]})))[0].input,
        Some(json!("text"))
    );
}

#[test]
fn row_11_group() {
    assert_eq!(
        found(&vcon(json!({"group": {}}))),
        one("list_type", "$.group")
    );
    accept(&vcon(json!({"group": null})));
    accept(&vcon(json!({"group": []})));
    accept(&vcon(json!({"group": [{"uuid": OTHER_UUID}]})));
}

#[test]
fn row_12_redacted_amended_appended() {
    for name in ["redacted", "amended", "appended"] {
        assert_eq!(
            found(&vcon(json!({name: "x"}))),
            one("dict_type", &format!("$.{name}"))
        );
        accept(&vcon(json!({name: null})));
        accept(&vcon(json!({name: {}})));
    }
}

#[test]
fn row_13_party_tel() {
    for good in [
        "+15551234567",
        "tel:+1-555-123-4567",
        "TEL:+1 555 0100;ext=12",
        "(555) 123-4567",
        "5551234",
        "+1.555.0100 x12#*",
        "",
        "+1234",
    ] {
        accept(&vcon(json!({"parties": [{"tel": good}]})));
    }
    accept(&vcon(json!({"parties": [{"tel": null}, {}]})));
    for bad in [
        json!("abc"),
        json!("+123"),
        json!("tel:"),
        json!("-15551234567"),
        json!("+1555 call me"),
        json!("x5551234"),
        json!(15551234567_i64),
        json!(true),
    ] {
        assert_eq!(
            found(&vcon(json!({"parties": [{}, {"tel": bad}]}))),
            one("value_error", "$.parties[1].tel"),
            "{bad}"
        );
    }
}

#[test]
fn row_14_dialog_string_members() {
    let parties = json!([{}, {}]);
    for (member, bad, kind) in [
        ("type", json!(1), "string_type"),
        ("start", json!(1_715_000_000), "string_type"),
        ("url", json!(false), "string_type"),
        ("url", json!("example.com/a.wav"), "value_error"),
        ("url", json!("https://"), "value_error"),
        ("url", json!("1http://x"), "value_error"),
        ("mediatype", json!(12345), "string_type"),
        ("mimetype", json!(12345), "string_type"),
        ("mediatype", json!("audio"), "value_error"),
        ("mediatype", json!("audio/"), "value_error"),
        ("mediatype", json!("audio /wav"), "value_error"),
        ("mediatype", json!("audio/wav extra"), "value_error"),
        ("mimetype", json!("text/plain,x"), "value_error"),
        ("alg", json!(256), "string_type"),
    ] {
        let body =
            vcon(json!({"parties": parties, "dialog": [{"type": "recording", member: bad}]}));
        assert_eq!(
            found(&body),
            one(kind, &format!("$.dialog[0].{member}")),
            "{member}: {bad}"
        );
    }
    for (member, good) in [
        ("url", "https://example.com/a.wav"),
        ("url", "s3://bucket/key"),
        ("url", "file:///tmp/x"),
        ("url", "git+ssh://host/repo"),
        ("mediatype", "audio/x-wav"),
        ("mediatype", "application/vcon+json"),
        ("mimetype", "multipart/mixed;\n\tboundary=\"x y\""),
        ("mediatype", "text/plain ; charset=utf-8"),
        ("mediatype", "message/rfc822"),
    ] {
        accept(&vcon(json!({"dialog": [{"type": "text", member: good}]})));
    }
    let nulls = json!({"type": "text", "start": null, "url": null, "mediatype": null, "mimetype": null, "alg": null, "duration": null, "parties": null, "originator": null});
    assert!(accept(&vcon(json!({"dialog": [nulls]})))
        .warnings
        .is_empty());
}

#[test]
fn row_15_duration() {
    for good in [
        json!(0),
        json!(33.12),
        json!(1e3),
        json!("18"),
        json!("18.5"),
        json!(" 7 "),
    ] {
        accept(&vcon(
            json!({"dialog": [{"type": "text", "duration": good}]}),
        ));
    }
    for (bad, kind) in [
        (json!("long"), "float_parsing"),
        (json!(""), "float_parsing"),
        (json!(true), "float_parsing"),
        (json!([1]), "float_parsing"),
        (json!({}), "float_parsing"),
        (json!("inf"), "float_parsing"),
        (json!(-30), "greater_than_equal"),
        (json!("-1.5"), "greater_than_equal"),
    ] {
        let problems = reject(&vcon(
            json!({"dialog": [{"type": "text", "duration": bad}]}),
        ));
        assert_eq!(problems.len(), 1, "{bad}");
        assert_eq!(
            (problems[0].kind, problems[0].path.as_str()),
            (kind, "$.dialog[0].duration"),
            "{bad}"
        );
    }
    let huge = vcon(json!({})).replacen('{', r#"{"dialog":[{"type":"text","duration":1e400}],"#, 1);
    assert_eq!(found(&huge), one("float_parsing", "$.dialog[0].duration"));
    let problem = &reject(&vcon(json!({"dialog": [{"duration": -30}]})))[0];
    assert_eq!(problem.input, Some(json!(-30)));
    assert_eq!(problem.msg, "duration must be a number >= 0");
}

#[test]
fn row_16_dialog_parties_shapes() {
    let parties = json!([{}, {}, {}]);
    for good in [
        json!(0),
        json!([0, 2]),
        json!([[0, 1], null, 2]),
        json!([]),
        json!([null, [2]]),
    ] {
        accept(&vcon(
            json!({"parties": parties, "dialog": [{"type": "recording", "parties": good}]}),
        ));
    }
    for (bad, expected) in [
        (json!("0"), one("list_type", "$.dialog[0].parties")),
        (json!({"0": 1}), one("list_type", "$.dialog[0].parties")),
        (json!(3), one("index_out_of_range", "$.dialog[0].parties")),
        (json!(-1), one("index_out_of_range", "$.dialog[0].parties")),
        (
            json!([0, 99]),
            one("index_out_of_range", "$.dialog[0].parties[1]"),
        ),
        (
            json!([0, 1.5]),
            one("index_out_of_range", "$.dialog[0].parties[1]"),
        ),
        (
            json!([0, "1"]),
            one("index_out_of_range", "$.dialog[0].parties[1]"),
        ),
        (json!([0, {}]), one("list_type", "$.dialog[0].parties[1]")),
        (
            json!([[0, 7]]),
            one("index_out_of_range", "$.dialog[0].parties[0][1]"),
        ),
        (
            json!([[0, [1]]]),
            one("list_type", "$.dialog[0].parties[0][1]"),
        ),
        (
            json!([[null]]),
            one("index_out_of_range", "$.dialog[0].parties[0][0]"),
        ),
    ] {
        let body =
            vcon(json!({"parties": parties, "dialog": [{"type": "recording", "parties": bad}]}));
        assert_eq!(found(&body), expected, "{bad}");
    }
    let problem = &reject(&vcon(
        json!({"parties": [{}, {}], "dialog": [{"parties": [0, 99]}]}),
    ))[0];
    assert_eq!(problem.input, Some(json!(99)));
    assert!(
        problem.msg.contains("99") && problem.msg.contains("2 parties"),
        "{}",
        problem.msg
    );
}

#[test]
fn row_16_indices_without_parties_are_out_of_range() {
    let body = vcon(json!({"dialog": [{"type": "text", "parties": [0]}]}));
    assert_eq!(
        found(&body),
        one("index_out_of_range", "$.dialog[0].parties[0]")
    );
    let body = vcon(json!({"parties": null, "dialog": [{"type": "text", "parties": 0}]}));
    assert_eq!(
        found(&body),
        vec![
            ("list_type", "$.parties".to_owned()),
            ("index_out_of_range", "$.dialog[0].parties".to_owned())
        ]
    );
}

#[test]
fn row_17_originator() {
    let parties = json!([{}, {}]);
    accept(&vcon(
        json!({"parties": parties, "dialog": [{"type": "text", "originator": 1}]}),
    ));
    for bad in [json!(2), json!(-1), json!("0"), json!(0.5), json!([0])] {
        let body =
            vcon(json!({"parties": parties, "dialog": [{"type": "text", "originator": bad}]}));
        let kinds = found(&body);
        assert_eq!(kinds.len(), 1);
        assert_eq!(kinds[0].1, "$.dialog[0].originator", "{bad}");
    }
}

#[test]
fn row_18_signed_form_shape() {
    let payload = b64(&json!({"uuid": UUID}));
    let body = json!({"payload": 12, "signatures": [{"header": {"uuid": UUID}}]});
    assert_eq!(found(&body.to_string()), one("string_type", "$.payload"));
    for bad in [json!([]), json!({}), json!(null), json!("sig")] {
        let body = json!({"payload": payload, "signatures": bad});
        assert_eq!(
            found(&body.to_string()),
            one("list_type", "$.signatures"),
            "{bad}"
        );
    }
    let body = json!({"payload": payload, "signatures": [{}, "sig"]});
    assert_eq!(
        found(&body.to_string()),
        one("dict_type", "$.signatures[1]")
    );
}

#[test]
fn row_19_encrypted_form_shape() {
    let body = json!({"ciphertext": 1, "recipients": [{}], "unprotected": {"uuid": UUID}});
    assert_eq!(found(&body.to_string()), one("string_type", "$.ciphertext"));
    for bad in [json!([]), json!({}), json!(null)] {
        let body = json!({"ciphertext": "x", "recipients": bad, "unprotected": {"uuid": UUID}});
        assert_eq!(
            found(&body.to_string()),
            one("list_type", "$.recipients"),
            "{bad}"
        );
    }
}

#[test]
fn row_20_sealed_uuids_must_exist_and_agree() {
    let body = json!({"payload": "!!", "signatures": [{"header": {}}]});
    assert_eq!(
        found(&body.to_string()),
        one("missing", "$.signatures[0].header.uuid")
    );
    let body = json!({"ciphertext": "x", "recipients": [{}]});
    assert_eq!(
        found(&body.to_string()),
        one("missing", "$.unprotected.uuid")
    );

    let body = json!({"payload": b64(&json!({})), "signatures": [{"header": {"uuid": UUID}}, {"header": {"uuid": OTHER_UUID}}]});
    assert_eq!(
        found(&body.to_string()),
        one("value_error", "$.signatures[1].header.uuid")
    );
    let body = json!({"payload": b64(&json!({"uuid": OTHER_UUID})), "signatures": [{"header": {"uuid": UUID}}]});
    assert_eq!(found(&body.to_string()), one("value_error", "$.payload"));
    let body =
        json!({"uuid": OTHER_UUID, "payload": "x", "signatures": [{"header": {"uuid": UUID}}]});
    assert_eq!(found(&body.to_string()), one("value_error", "$.uuid"));
    let body = json!({"payload": "x", "signatures": [{"header": {"uuid": "bad"}}]});
    assert_eq!(
        found(&body.to_string()),
        one("uuid_parsing", "$.signatures[0].header.uuid")
    );

    let protected = b64(&json!({"alg": "RSA-OAEP", "uuid": OTHER_UUID}));
    let body = json!({"protected": protected, "ciphertext": "x", "recipients": [{}], "unprotected": {"uuid": UUID}});
    assert_eq!(found(&body.to_string()), one("value_error", "$.protected"));

    // The same uuid spelled differently agrees.
    let body = json!({"uuid": UUID.to_uppercase(), "payload": "x", "signatures": [{"header": {"uuid": format!("urn:uuid:{UUID}")}}]});
    assert_eq!(accept(&body.to_string()).uuid.to_string(), UUID);
}

// ---- §4 forms -------------------------------------------------------------------------------

fn inner_vcon() -> Value {
    json!({
        "uuid": UUID,
        "created_at": "2024-05-01T12:00:00Z",
        "parties": [{"tel": "+15550001", "name": "Alice"}, {"mailto": "bob@example.com"}]
    })
}

#[test]
fn signed_uuid_date_and_parties_come_from_the_payload() {
    for payload in [
        b64(&inner_vcon()),
        URL_SAFE.encode(inner_vcon().to_string()),
    ] {
        let body =
            json!({"payload": payload, "signatures": [{"protected": "x", "signature": "y"}]});
        let ingested = accept(&body.to_string());
        assert_eq!(ingested.form, Form::Signed);
        assert_eq!(ingested.uuid.to_string(), UUID);
        assert_eq!(ingested.created_at, Some(CREATED_SECONDS));
        assert_eq!(ingested.parties.tel, ["+15550001"]);
        assert_eq!(ingested.parties.name, ["Alice"]);
        assert_eq!(ingested.parties.mailto, ["bob@example.com"]);
    }
}

#[test]
fn signed_gzipped_payload() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(inner_vcon().to_string().as_bytes())
        .unwrap();
    let payload = URL_SAFE_NO_PAD.encode(encoder.finish().unwrap());
    let body = json!({"payload": payload, "signatures": [{"header": {"uuid": UUID}}]}).to_string();
    let ingested = accept(&body);
    assert_eq!(ingested.created_at, Some(CREATED_SECONDS));
    let tight = IngestOptions {
        accept_signed: true,
        max_bytes: 20,
    };
    let ingested = ingest(body.as_bytes(), &tight).unwrap();
    assert_eq!(
        ingested.created_at, None,
        "over the limit, the payload is unreadable"
    );
    assert_eq!(ingested.uuid.to_string(), UUID, "the header uuid is enough");
}

#[test]
fn signed_payload_is_not_validated() {
    let payload = b64(&json!({"uuid": UUID, "dialog": "not an array", "created_at": "NOT-A-DATE"}));
    let body = json!({"payload": payload, "signatures": [{}]});
    let ingested = accept(&body.to_string());
    assert_eq!(ingested.created_at, None);
    assert!(ingested.warnings.is_empty());
}

#[test]
fn signed_with_an_unreadable_payload_needs_a_header_uuid() {
    let body = json!({"payload": "not-base64!", "signatures": [{"header": {"uuid": UUID}}]});
    let ingested = accept(&body.to_string());
    assert_eq!(
        (ingested.created_at, ingested.parties.clone()),
        (None, PartyIndex::default())
    );
    let body = json!({"payload": b64(&json!([1])), "signatures": [{"header": {"uuid": UUID}}]});
    accept(&body.to_string());
}

#[test]
fn encrypted_uuid_sources_and_no_index_data() {
    let protected = b64(&json!({"alg": "RSA-OAEP", "uuid": UUID}));
    for body in [
        json!({"ciphertext": "x", "recipients": [{}], "unprotected": {"uuid": UUID}}),
        json!({"protected": protected, "ciphertext": "x", "recipients": [{}]}),
        json!({"ciphertext": "x", "recipients": [{"header": {"uuid": UUID}}]}),
        json!({"uuid": UUID, "ciphertext": "x", "recipients": ["opaque"]}),
    ] {
        let ingested = accept(&body.to_string());
        assert_eq!(ingested.form, Form::Encrypted);
        assert_eq!(ingested.uuid.to_string(), UUID);
        assert_eq!(ingested.created_at, None);
        assert_eq!(ingested.parties, PartyIndex::default());
    }
}

#[test]
fn a_single_pair_member_is_an_unsigned_vcon() {
    let ingested = accept(&vcon(json!({"payload": "x", "recipients": []})));
    assert_eq!(ingested.form, Form::Unsigned);
    let body = json!({"cyphertext": "x", "recipients": [{}]}).to_string();
    assert_eq!(
        found(&body),
        vec![
            ("missing", "$.uuid".to_owned()),
            ("missing", "$.created_at".to_owned())
        ]
    );
}

// ---- §3.2 accepted --------------------------------------------------------------------------

#[test]
fn accepts_unknown_members_nulls_and_legacy_names() {
    let body = vcon(json!({
        "meta": {"anything": [1, {"x": null}]},
        "updated_at": "whatever",
        "extensions": 5,
        "redacted": {},
        "group": [],
        "appended": {"uuid": OTHER_UUID},
        "parties": [{"role": "customer", "email": "x", "tel": "", "civicaddress": null}],
        "dialog": [
            {"type": "text", "mimetype": "text/plain", "body": "hi", "encoding": "none", "parties": [0]},
            {"type": "transfer", "transfer-target": 9, "session_id": "abc"},
            {"type": "recording-set", "recordings": [99]},
            {"type": "incomplete", "disposition": "no-answer"}
        ],
        "analysis": [{"type": "transcript", "dialog": 42, "vendor_schema": "x", "body": {"a": 1}}],
        "attachments": [{"type": "tags", "dialog": 7}]
    }));
    assert!(accept(&body).warnings.is_empty());
}

#[test]
fn party_index_takes_strings_only_in_party_order() {
    let body = vcon(json!({"parties": [
        {"tel": "+15550001", "name": "Alice", "mailto": "mailto:a@b"},
        {"tel": null, "name": 5, "mailto": ""},
        "not a party",
        {"tel": "tel:+15550002", "name": "Bob"}
    ]}));
    // The string element is a problem; the index is checked on a valid document.
    assert_eq!(found(&body), one("dict_type", "$.parties[2]"));
    let body = vcon(json!({"parties": [
        {"tel": "+15550001", "name": "Alice", "mailto": "mailto:a@b"},
        {"tel": null, "name": 5, "mailto": ""},
        {"tel": "tel:+15550002", "name": "Bob"}
    ]}));
    let parties = accept(&body).parties;
    assert_eq!(parties.tel, ["+15550001", "tel:+15550002"]);
    assert_eq!(parties.mailto, ["mailto:a@b"]);
    assert_eq!(parties.name, ["Alice", "Bob"]);
}

// ---- §3.3 warnings --------------------------------------------------------------------------

#[test]
fn warnings() {
    let body = vcon(json!({
        "critical": ["x"],
        "must_support": [],
        "redacted": {"uuid": OTHER_UUID},
        "amended": {"uuid": OTHER_UUID},
        "dialog": [
            {"type": "video"},
            {"start": "yesterday"},
            {"type": "text", "alg": "sha256", "start": "2024-01-01T00:00:00"},
            {"type": null}
        ]
    }));
    assert_eq!(
        warning_kinds(&body),
        vec![
            ("unknown_dialog_type", "$.dialog[0].type".to_owned()),
            ("missing_dialog_type", "$.dialog[1]".to_owned()),
            ("unparseable_dialog_start", "$.dialog[1].start".to_owned()),
            ("unknown_alg", "$.dialog[2].alg".to_owned()),
            ("missing_dialog_type", "$.dialog[3]".to_owned()),
            ("critical_extensions", "$.critical".to_owned()),
            ("redacted_and_amended", "$.amended".to_owned()),
        ]
    );
    assert!(warning_kinds(&vcon(
        json!({"redacted": {}, "amended": {"uuid": OTHER_UUID}})
    ))
    .is_empty());
    assert!(warning_kinds(&vcon(
        json!({"dialog": [{"type": "text", "alg": "SHA-512"}]})
    ))
    .is_empty());
}

// ---- collection and order -------------------------------------------------------------------

/// A repeated key ranks where the key first occurs; the rules read its last value, so the
/// scanner's `duplicate_key` comes just before what the rules say about that value.
#[test]
fn every_problem_is_reported_in_document_order() {
    let body = r#"{
        "dialog": [{"duration": "long", "parties": [1, 0], "mimetype": 12345, "duration": -1}],
        "subject": 5,
        "parties": [{"tel": "nope"}],
        "created_at": "NOT-A-DATE"
    }"#;
    let problems = reject(body);
    let summary: Vec<_> = problems.iter().map(|p| (p.kind, p.path.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("missing", "$.uuid"),
            ("duplicate_key", "$.dialog[0].duration"),
            ("greater_than_equal", "$.dialog[0].duration"),
            ("index_out_of_range", "$.dialog[0].parties[0]"),
            ("string_type", "$.dialog[0].mimetype"),
            ("string_type", "$.subject"),
            ("value_error", "$.parties[0].tel"),
            ("datetime_parsing", "$.created_at"),
        ]
    );
    let json = serde_json::to_value(&problems[2]).unwrap();
    assert_eq!(
        json,
        json!({
            "type": "greater_than_equal",
            "loc": ["body", "dialog", 0, "duration"],
            "path": "$.dialog[0].duration",
            "msg": "duration must be a number >= 0",
            "input": -1
        })
    );
}

#[test]
fn long_string_inputs_are_omitted() {
    let long = "x".repeat(300);
    let problem = &reject(&vcon(json!({"uuid": long})))[0];
    assert_eq!(problem.input, None);
}

// ---- describe -------------------------------------------------------------------------------

#[test]
fn describe_reads_stored_texts_leniently() {
    let described = describe(&inner_vcon().to_string()).unwrap();
    assert_eq!(described.uuid.map(|u| u.to_string()).as_deref(), Some(UUID));
    assert_eq!(described.form, Form::Unsigned);
    assert_eq!(described.created_at, Some(CREATED_SECONDS));
    assert_eq!(described.parties.tel, ["+15550001"]);

    let lenient = describe(r#"{"uuid":"nope","created_at":true,"dialog":null}"#).unwrap();
    assert_eq!((lenient.uuid, lenient.created_at), (None, None));

    let signed = json!({"payload": b64(&inner_vcon()), "signatures": [{"header": {"uuid": UUID}}]});
    let described = describe(&signed.to_string()).unwrap();
    assert_eq!(described.form, Form::Signed);
    assert_eq!(described.created_at, Some(CREATED_SECONDS));
    assert_eq!(described.parties.name, ["Alice"]);

    let encrypted = json!({"ciphertext": "x", "recipients": [{}], "unprotected": {"uuid": UUID}});
    let described = describe(&encrypted.to_string()).unwrap();
    assert_eq!(
        (described.form, described.created_at),
        (Form::Encrypted, None)
    );
    assert_eq!(described.uuid.map(|u| u.to_string()).as_deref(), Some(UUID));

    for not_an_object in ["", "[]", "\"x\"", "{", "nul", "{\"a\":1} x"] {
        assert_eq!(describe(not_an_object), None, "{not_an_object}");
    }
}

#[test]
fn describe_and_ingest_survive_hostile_input() {
    let deep = "[".repeat(100_000);
    assert_eq!(describe(&deep), None);
    let deep_object = format!(
        "{{\"uuid\":\"{UUID}\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(
        describe(&deep_object)
            .and_then(|d| d.uuid)
            .map(|u| u.to_string())
            .as_deref(),
        Some(UUID)
    );
    assert!(matches!(
        ingest(deep_object.as_bytes(), &options()),
        Err(IngestError::Invalid(_))
    ));
    for bytes in [&b"\xC0"[..], b"{\"\xFF\":1}", b"\x00", b"{\"a\":1}\x00"] {
        assert!(matches!(
            ingest(bytes, &options()),
            Err(IngestError::Malformed { .. })
        ));
    }
}
