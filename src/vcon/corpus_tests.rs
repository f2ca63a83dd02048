//! The conformance corpus (tests/corpus, described by its SOURCES.md): every file that
//! EXPECTED.json accepts is ingested and round-trips exactly; every file it rejects gives the
//! 422 problems that name its reason.

use std::path::PathBuf;

use serde_json::value::RawValue;
use serde_json::Value;

use super::*;

const SIGNED_UUID: &str = "019f15a6-a752-826f-b9a2-279e0d16bc46";

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    assert!(
        dir.join("EXPECTED.json").is_file(),
        "the conformance corpus is missing: expected {} with EXPECTED.json",
        dir.display()
    );
    dir
}

fn expected() -> Value {
    let text = std::fs::read_to_string(corpus_dir().join("EXPECTED.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn names(expected: &Value, outcome: &str) -> Vec<String> {
    expected[outcome]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn options() -> IngestOptions {
    IngestOptions {
        accept_signed: true,
        max_bytes: 64 << 20,
    }
}

/// The stored text computed independently of the scanner: drop a BOM, then every whitespace
/// character outside strings.
fn naive_compact(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).unwrap();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_json::from_str::<Box<RawValue>>(text).expect("the corpus file is JSON");
    let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[test]
fn every_corpus_file_has_an_expected_outcome() {
    let expected = expected();
    let listed: Vec<String> = [names(&expected, "accept"), names(&expected, "reject")].concat();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.path().is_file() && !matches!(name.as_str(), "EXPECTED.json" | "SOURCES.md") {
            assert!(listed.contains(&name), "{name} is not in EXPECTED.json");
        }
    }
    for name in &listed {
        assert!(
            corpus_dir().join(name).is_file(),
            "{name} is listed but missing"
        );
    }
}

#[test]
fn accepted_files_round_trip_exactly() {
    let expected = expected();
    let accepted = names(&expected, "accept");
    assert!(accepted.len() >= 9);
    for name in accepted {
        let body = read(&name);
        let ingested = ingest(&body, &options()).unwrap_or_else(|e| {
            panic!(
                "{name} ({}) must be accepted: {e:?}",
                expected["accept"][&name]
            )
        });
        assert_eq!(ingested.text, naive_compact(&body), "{name}: stored text");
        let original: Value = serde_json::from_slice(&body).unwrap();
        let stored: Value = serde_json::from_str(&ingested.text).unwrap();
        assert_eq!(stored, original, "{name}: same JSON");

        let described = describe(&ingested.text).unwrap();
        assert_eq!(described.uuid, Some(ingested.uuid), "{name}");
        assert_eq!(described.form, ingested.form, "{name}");
        assert_eq!(described.created_at, ingested.created_at, "{name}");
        assert_eq!(described.parties, ingested.parties, "{name}");
    }
}

#[test]
fn accepted_files_have_their_form_and_warnings() {
    let check = |name: &str, form: Form, warnings: &[(&str, &str)]| {
        let ingested = ingest(&read(name), &options()).unwrap();
        assert_eq!(ingested.form, form, "{name}");
        let found: Vec<_> = ingested
            .warnings
            .iter()
            .map(|w| (w.kind, w.path.as_str()))
            .collect();
        assert_eq!(found, warnings, "{name}");
        ingested
    };
    let signed = check(
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec_signed.vcon",
        Form::Signed,
        &[],
    );
    assert_eq!(signed.uuid.to_string(), SIGNED_UUID);
    assert_eq!(
        signed.created_at, None,
        "the signed payload has no created_at"
    );
    assert_eq!(
        signed.parties.name,
        ["Alice", "Bob"],
        "indexed from the payload"
    );
    let encrypted = check(
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec_encrypted.vcon",
        Form::Encrypted,
        &[],
    );
    assert_eq!(encrypted.uuid.to_string(), SIGNED_UUID);
    assert_eq!(
        (encrypted.created_at, encrypted.parties),
        (None, PartyIndex::default())
    );
    check(
        "vcon-dev__ietf-meeting-vcons__ietf125_ntp_35201.vcon.json",
        Form::Unsigned,
        &[("unknown_dialog_type", "$.dialog[0].type")],
    );
    check(
        "vcon-dev__vcon-server__b217b61e-ff68-4f17-a33d-bbc667e8936d.vcon.json",
        Form::Unsigned,
        &[("unknown_alg", "$.dialog[0].alg")],
    );
    check(
        "vcon-dev__vcon-lib__example_new_fields.vcon.json",
        Form::Unsigned,
        &[("critical_extensions", "$.must_support")],
    );
    let thread = check(
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_email_acct_prob_thread.vcon",
        Form::Unsigned,
        &[],
    );
    assert_eq!(thread.parties.mailto, ["b@example.com", "a@example.com"]);
    let chat = check(
        "vcon-dev__vcon-js__03f94617-0a05-40cd-89a7-69e746fa512a.vcon.json",
        Form::Unsigned,
        &[],
    );
    assert!(
        !chat.parties.tel.contains(&String::new()),
        "the empty tel is not indexed"
    );
}

/// The exact problems (type, path) each rejected file gives, which name EXPECTED.json's reason.
const REJECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab.vcon",
        &[("missing", "$.uuid"), ("missing", "$.created_at")],
    ),
    ("ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec.vcon", &[("missing", "$.created_at")]),
    (
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec_0.0.1_at-tag-container-00.vcon",
        &[("missing", "$.created_at")],
    ),
    (
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec_amended.vcon",
        &[("missing", "$.created_at")],
    ),
    (
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec_analysis.vcon",
        &[("missing", "$.created_at")],
    ),
    (
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec_redacted.vcon",
        &[("missing", "$.created_at")],
    ),
    ("ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_int_rec.vcon", &[("missing", "$.created_at")]),
    (
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec_encrypted_at-tag-container-00.vcon",
        &[("missing", "$.uuid"), ("missing", "$.created_at")],
    ),
    (
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__simple-vcon.vcon",
        &[("missing", "$.uuid"), ("missing", "$.created_at")],
    ),
    ("py-vcon__py-vcon__ab_call_ext_rec_0.0.1.vcon", &[("missing", "$.created_at")]),
    ("py-vcon__py-vcon__the_first.vcon", &[("missing", "$.uuid"), ("missing", "$.created_at")]),
    (
        "vcon-dev__vcon-server__invalid_bad_dialog_types.json",
        &[
            ("index_out_of_range", "$.dialog[0].parties[0]"),
            ("index_out_of_range", "$.dialog[0].parties[1]"),
            ("float_parsing", "$.dialog[0].duration"),
            ("string_type", "$.dialog[0].mimetype"),
        ],
    ),
    (
        "vcon-dev__vcon-server__invalid_bad_party_ref.json",
        &[("index_out_of_range", "$.dialog[0].parties[1]")],
    ),
    (
        "vcon-dev__vcon-server__invalid_empty_vcon.json",
        &[("uuid_parsing", "$.uuid"), ("datetime_parsing", "$.created_at")],
    ),
    ("vcon-dev__vcon-server__invalid_missing_uuid_and_vcon_version.json", &[("missing", "$.uuid")]),
    (
        "vcon-dev__vcon-server__invalid_null_dialog_string_analysis.json",
        &[("list_type", "$.dialog"), ("list_type", "$.analysis")],
    ),
];

#[test]
fn rejected_files_name_their_reason() {
    let expected = expected();
    let rejected = names(&expected, "reject");
    assert_eq!(
        rejected.len(),
        REJECTIONS.len(),
        "every rejected file has a row in REJECTIONS"
    );
    for name in rejected {
        let Some((_, problems)) = REJECTIONS.iter().find(|(file, _)| *file == name) else {
            panic!("{name} has no row in REJECTIONS");
        };
        let reason = &expected["reject"][&name];
        match ingest(&read(&name), &options()) {
            Err(IngestError::Invalid(found)) => {
                let found: Vec<_> = found.iter().map(|p| (p.kind, p.path.as_str())).collect();
                assert_eq!(found, *problems, "{name} ({reason})");
            }
            other => panic!("{name} ({reason}) must be a 422, got {other:?}"),
        }
    }
}

#[test]
fn the_bad_party_ref_problem_in_full() {
    let Err(IngestError::Invalid(problems)) = ingest(
        &read("vcon-dev__vcon-server__invalid_bad_party_ref.json"),
        &options(),
    ) else {
        panic!("must be invalid");
    };
    assert_eq!(
        serde_json::to_value(&problems).unwrap(),
        serde_json::json!([{
            "type": "index_out_of_range",
            "loc": ["body", "dialog", 0, "parties", 1],
            "path": "$.dialog[0].parties[1]",
            "msg": "party index 99 is out of range: the vCon has 2 parties (indices 0 to 1)",
            "input": 99
        }])
    );
}

#[test]
fn sealed_files_are_refused_when_signed_vcons_are_not_accepted() {
    let refuse = IngestOptions {
        accept_signed: false,
        max_bytes: 64 << 20,
    };
    for name in [
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec_signed.vcon",
        "ietf-wg-vcon__draft-ietf-vcon-vcon-core__ab_call_ext_rec_encrypted.vcon",
    ] {
        let Err(IngestError::Invalid(problems)) = ingest(&read(name), &refuse) else {
            panic!("{name} must be refused");
        };
        let found: Vec<_> = problems.iter().map(|p| (p.kind, p.path.as_str())).collect();
        assert_eq!(found, [("signed_not_accepted", "$")], "{name}");
    }
}

/// Mutated and truncated corpus files never panic, and whatever is accepted still round-trips.
#[test]
fn mutations_never_panic_and_accepted_texts_round_trip() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const ALPHABET: &[u8] = b"{}[]\",:\\ \n0123456789-+.eEtrufalsn\x00\x1f\x7f\xc3\xa9\xff";
    let expected = expected();
    let files = [names(&expected, "accept"), names(&expected, "reject")].concat();
    for name in files {
        let original = read(&name);
        let check = |body: &[u8]| {
            if let Ok(ingested) = ingest(body, &options()) {
                assert_eq!(
                    ingested.text,
                    naive_compact(body),
                    "{name}: accepted mutation"
                );
            }
            if let Ok(text) = std::str::from_utf8(body) {
                let _ = describe(text);
            }
        };
        for _ in 0..200 {
            let mut body = original.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % body.len() as u64) as usize;
                let byte = ALPHABET[(next() % ALPHABET.len() as u64) as usize];
                match next() % 3 {
                    0 => body[at] = byte,
                    1 => body.insert(at, byte),
                    _ => {
                        body.remove(at);
                    }
                }
            }
            check(&body);
        }
        if original.len() < 2000 {
            for end in 0..original.len() {
                check(&original[..end]);
            }
        }
    }
}
