//! The signed (JWS) and encrypted (JWE) forms (vcon.md §1, §4, §3.1 rows 4, 18–20).
//! conserver neither verifies nor decrypts; it needs a uuid, and for indexing a date and the
//! parties, which only a signed payload can give.

use uuid::Uuid;

use super::compact::compact;
use super::findings::{path_of, Findings, Step};
use super::index::{created_at, party_index, Identity};
use super::payload::{base64url, decode_payload};
use super::top_level::{self, TopLevel};
use super::uuids::parse_uuid;
use super::view::{Kind, Object, Raw};
use super::Form;

/// The form of a document, or the ambiguity of having both pairs (row 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    One(Form),
    Ambiguous,
}

/// Which form `vcon` has, by the presence of the members (whatever their values).
pub(crate) fn detect(vcon: &TopLevel<'_>) -> Detected {
    let signed = vcon.has("payload") && vcon.has("signatures");
    let encrypted = vcon.has("ciphertext") && vcon.has("recipients");
    match (signed, encrypted) {
        (true, true) => Detected::Ambiguous,
        (true, false) => Detected::One(Form::Signed),
        (false, true) => Detected::One(Form::Encrypted),
        (false, false) => Detected::One(Form::Unsigned),
    }
}

/// Check a signed document and find its uuid: `signatures[*].header.uuid`, else a top-level
/// `uuid`, else the decoded payload's (all that are found must agree).
pub(crate) fn check_signed(
    vcon: &TopLevel<'_>,
    max_bytes: usize,
    findings: &mut Findings,
) -> Identity {
    let mut identity = Identity::default();
    let mut candidates = Vec::new();

    let payload = vcon.get("payload");
    if let Some(member) = payload {
        if member.value.kind() != Kind::String {
            findings.problem(
                &[Step::key("payload", member.order)],
                &[],
                "string_type",
                format!(
                    "payload must be a string (the base64url of the signed vCon); got {}",
                    member.value.kind().noun()
                ),
                Some(member.value),
            );
        }
    }

    let signatures = vcon.get("signatures");
    let signatures_order = signatures.map_or(0, |member| member.order);
    if let Some(member) = signatures {
        let elements = member.value.elements();
        if elements.clone().and_then(|mut all| all.next()).is_none() {
            findings.problem(
                &[Step::key("signatures", member.order)],
                &[],
                "list_type",
                format!(
                    "signatures must be a non-empty array of signature objects (JWS General JSON \
                     Serialization); got {}",
                    describe_list(member.value)
                ),
                Some(member.value),
            );
        }
        for (index, raw) in elements.into_iter().flatten().enumerate() {
            let at = [Step::key("signatures", member.order), Step::index(index)];
            match Object::of(raw) {
                Some(signature) => header_uuid(&signature, &at, &mut candidates),
                None => findings.problem(
                    &at,
                    &[],
                    "dict_type",
                    format!(
                        "signatures[{index}] must be a signature object; got {}",
                        raw.kind().noun()
                    ),
                    Some(raw),
                ),
            }
        }
    }

    top_level_uuid(vcon, &mut candidates);

    if let Some(member) = payload {
        let decoded = member
            .value
            .string()
            .and_then(|text| decode_payload(&text, max_bytes));
        if let Some(inner) = decoded.as_deref().and_then(|bytes| compact(bytes).ok()) {
            if let Some(document) = Object::of(Raw::new(&inner.text)) {
                let inner = top_level::pick(&document, &inner.root_spans);
                let uuid = inner.get("uuid").and_then(|uuid| uuid.value.string());
                if let Some(uuid) = uuid.and_then(|text| parse_uuid(&text)) {
                    let at = vec![Step::key("payload", member.order)];
                    candidates.push(Candidate::decoded(at, uuid));
                }
                identity.created_at = created_at(&inner);
                identity.parties = party_index(&inner);
            }
        }
    }

    let missing_at = [
        Step::key("signatures", signatures_order),
        Step::index(0),
        Step::absent("header"),
        Step::absent("uuid"),
    ];
    let missing_msg = "no uuid found: a signed vCon needs signatures[].header.uuid (or a \
                       top-level uuid, or a payload that decodes to a vCon with a uuid)";
    identity.uuid = settle(candidates, &missing_at, missing_msg, "signed", findings);
    identity
}

/// Check an encrypted document and find its uuid: `unprotected.uuid`, else the decoded
/// `protected` header's, else `recipients[*].header.uuid`, else a top-level `uuid` (all that are
/// found must agree).
pub(crate) fn check_encrypted(vcon: &TopLevel<'_>, findings: &mut Findings) -> Identity {
    let mut candidates = Vec::new();

    if let Some(member) = vcon.get("ciphertext") {
        if member.value.kind() != Kind::String {
            findings.problem(
                &[Step::key("ciphertext", member.order)],
                &[],
                "string_type",
                format!(
                    "ciphertext must be a string (base64url); got {}",
                    member.value.kind().noun()
                ),
                Some(member.value),
            );
        }
    }

    let unprotected = vcon.get("unprotected");
    if let Some(member) = unprotected {
        if let Some(header) = Object::of(member.value) {
            header_member_uuid(
                &header,
                &[Step::key("unprotected", member.order)],
                &mut candidates,
            );
        }
    }

    if let Some(member) = vcon.get("protected") {
        let header = member.value.string().and_then(|text| base64url(&text));
        if let Some(header) = header.as_deref().and_then(|bytes| compact(bytes).ok()) {
            let uuid = Object::of(Raw::new(&header.text)).and_then(|header| header.get_str("uuid"));
            if let Some(uuid) = uuid.and_then(|text| parse_uuid(&text)) {
                let at = vec![Step::key("protected", member.order)];
                candidates.push(Candidate::decoded(at, uuid));
            }
        }
    }

    if let Some(member) = vcon.get("recipients") {
        let elements = member.value.elements();
        if elements.clone().and_then(|mut all| all.next()).is_none() {
            findings.problem(
                &[Step::key("recipients", member.order)],
                &[],
                "list_type",
                format!(
                    "recipients must be a non-empty array (JWE General JSON Serialization); got {}",
                    describe_list(member.value)
                ),
                Some(member.value),
            );
        }
        for (index, raw) in elements.into_iter().flatten().enumerate() {
            if let Some(recipient) = Object::of(raw) {
                let at = [Step::key("recipients", member.order), Step::index(index)];
                header_uuid(&recipient, &at, &mut candidates);
            }
        }
    }

    top_level_uuid(vcon, &mut candidates);

    let missing_at = [
        unprotected.map_or(Step::absent("unprotected"), |m| {
            Step::key("unprotected", m.order)
        }),
        Step::absent("uuid"),
    ];
    let missing_msg = "no uuid found: an encrypted vCon needs unprotected.uuid (or a uuid in the \
                       protected header, in recipients[].header, or at the top level)";
    let uuid = settle(candidates, &missing_at, missing_msg, "encrypted", findings);
    Identity {
        uuid,
        ..Identity::default()
    }
}

/// A uuid found in a signed or encrypted document.
struct Candidate<'a> {
    at: Vec<Step<'a>>,
    /// The parsed uuid, or the raw value when it is not one (only for members a sender wrote in
    /// clear: a uuid inside decoded content that is not a UUID is not checked, like the rest of
    /// that content).
    found: Result<Uuid, Raw<'a>>,
}

impl<'a> Candidate<'a> {
    fn decoded(at: Vec<Step<'a>>, uuid: Uuid) -> Self {
        Candidate {
            at,
            found: Ok(uuid),
        }
    }
}

/// `header.uuid` of a signature or recipient object at `at`.
fn header_uuid<'a>(entry: &Object<'a>, at: &[Step<'a>], candidates: &mut Vec<Candidate<'a>>) {
    let Some(member) = entry.get("header") else {
        return;
    };
    if let Some(header) = Object::of(member.value) {
        let mut at = at.to_vec();
        at.push(Step::key("header", member.order));
        header_member_uuid(&header, &at, candidates);
    }
}

/// `uuid` of a header object at `at`, unless absent or `null`.
fn header_member_uuid<'a>(
    header: &Object<'a>,
    at: &[Step<'a>],
    candidates: &mut Vec<Candidate<'a>>,
) {
    if let Some(member) = header.get("uuid").filter(|uuid| !uuid.is_null()) {
        let mut at = at.to_vec();
        at.push(Step::key("uuid", member.order));
        candidates.push(clear_candidate(at, member.value));
    }
}

fn top_level_uuid<'a>(vcon: &TopLevel<'a>, candidates: &mut Vec<Candidate<'a>>) {
    if let Some(member) = vcon.get_non_null("uuid") {
        candidates.push(clear_candidate(
            vec![Step::key("uuid", member.order)],
            member.value,
        ));
    }
}

fn clear_candidate<'a>(at: Vec<Step<'a>>, raw: Raw<'a>) -> Candidate<'a> {
    let uuid = raw.string().and_then(|text| parse_uuid(&text));
    Candidate {
        at,
        found: uuid.ok_or(raw),
    }
}

/// The uuid of the first candidate, after checking that every candidate is a UUID and names
/// the same vCon; a `missing` problem at `missing_at` when there is none at all.
fn settle(
    candidates: Vec<Candidate<'_>>,
    missing_at: &[Step<'_>],
    missing_msg: &str,
    form: &str,
    findings: &mut Findings,
) -> Option<Uuid> {
    let mut chosen: Option<(Uuid, String)> = None;
    for candidate in &candidates {
        match (candidate.found, &chosen) {
            (Err(raw), _) => findings.problem(
                &candidate.at,
                &[],
                "uuid_parsing",
                format!(
                    "{} is not a UUID: use 8-4-4-4-12 hex digits (or 32 hex digits, either in \
                     braces, or urn:uuid: and the hyphenated form)",
                    path_of(&candidate.at)
                ),
                Some(raw),
            ),
            (Ok(uuid), None) => chosen = Some((uuid, path_of(&candidate.at))),
            (Ok(uuid), Some((first, first_path))) if uuid != *first => findings.problem(
                &candidate.at,
                &[],
                "value_error",
                format!(
                    "this uuid ({uuid}) differs from the uuid at {first_path} ({first}); every \
                     uuid of a {form} vCon must name the same vCon"
                ),
                None,
            ),
            (Ok(_), Some(_)) => {}
        }
    }
    if candidates.is_empty() {
        findings.problem(missing_at, &[], "missing", missing_msg, None);
    }
    chosen.map(|(uuid, _)| uuid)
}

fn describe_list(raw: Raw<'_>) -> &'static str {
    match raw.kind() {
        Kind::Array => "an empty array",
        other => other.noun(),
    }
}
