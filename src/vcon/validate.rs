//! The rules for an unsigned vCon (vcon.md §3.1 rows 6–17, §2.1, §2.2) and its warnings
//! (§3.3). Only what conserver needs to process a vCon safely is checked; everything else is
//! kept as sent.

use uuid::Uuid;

use super::dates::parse_date_value;
use super::dialog::check_dialogs;
use super::findings::{Findings, Step};
use super::index::{self, Identity};
use super::top_level::TopLevel;
use super::uuids::parse_uuid;
use super::view::{Element, Kind, Member, Picked, Raw};

/// Members that must be arrays of objects when present, `null` included (rows 9–10), and whose
/// objects are not checked further (`parties` and `dialog` have their own rules).
const OPAQUE_OBJECT_ARRAYS: [&str; 2] = ["analysis", "attachments"];

/// Members that must be objects when present and not `null` (row 12).
const OBJECTS: [&str; 3] = ["redacted", "amended", "appended"];

/// Members that must be strings when present and not `null` (row 8).
const STRINGS: [&str; 2] = ["vcon", "subject"];

/// Check an unsigned vCon; returns what it is stored and indexed by.
pub(crate) fn check_unsigned(vcon: &TopLevel<'_>, findings: &mut Findings) -> Identity {
    let uuid = check_uuid(vcon, findings);
    check_created_at(vcon, findings);
    for name in STRINGS {
        check_string_member(vcon, name, findings);
    }
    for name in OBJECTS {
        check_object_member(vcon, name, findings);
    }
    let party_count = vcon
        .get("parties")
        .map_or(0, |parties| check_parties(parties, findings));
    if let Some(dialog) = vcon.get("dialog") {
        check_dialogs(dialog, party_count, findings);
    }
    for name in OPAQUE_OBJECT_ARRAYS {
        if let Some(member) = vcon.get(name) {
            check_objects(name, member, [], findings, |_, _, _| {});
        }
    }
    if let Some(group) = vcon.get_non_null("group") {
        check_objects("group", group, [], findings, |_, _, _| {});
    }
    warn_about_extensions(vcon, findings);
    Identity {
        uuid,
        created_at: index::created_at(vcon),
        parties: index::party_index(vcon),
    }
}

fn check_uuid(vcon: &TopLevel<'_>, findings: &mut Findings) -> Option<Uuid> {
    let Some(member) = vcon.get_non_null("uuid") else {
        report_missing(
            vcon,
            "uuid",
            "uuid is required: the vCon's UUID, such as \"019f15a6-a752-826f-b9a2-279e0d16bc46\"",
            findings,
        );
        return None;
    };
    let uuid = member.value.string().and_then(|text| parse_uuid(&text));
    if uuid.is_none() {
        let msg = match member.value.kind() {
            Kind::String => "uuid is not a UUID: use 8-4-4-4-12 hex digits (or 32 hex digits, \
                             either in braces, or urn:uuid: and the hyphenated form)"
                .to_owned(),
            other => format!("uuid must be a string holding a UUID; got {}", other.noun()),
        };
        findings.problem(
            &[Step::key("uuid", member.order)],
            &[],
            "uuid_parsing",
            msg,
            Some(member.value),
        );
    }
    uuid
}

fn check_created_at(vcon: &TopLevel<'_>, findings: &mut Findings) {
    let Some(member) = vcon.get_non_null("created_at") else {
        report_missing(
            vcon,
            "created_at",
            "created_at is required: when the vCon was created, as an RFC 3339 date such as \
             \"2024-05-01T12:00:00Z\"",
            findings,
        );
        return;
    };
    if parse_date_value(member.value).is_none() {
        findings.problem(
            &[Step::key("created_at", member.order)],
            &[],
            "datetime_parsing",
            format!(
                "created_at is not a date ({}): use RFC 3339 such as \"2024-05-01T12:00:00Z\", \
                 RFC 2822, or Unix seconds",
                describe_value(member.value)
            ),
            Some(member.value),
        );
    }
}

/// A required member that is absent or `null` (`missing`).
fn report_missing(vcon: &TopLevel<'_>, name: &'static str, msg: &str, findings: &mut Findings) {
    let step = vcon
        .get(name)
        .map_or(Step::absent(name), |member| Step::key(name, member.order));
    findings.problem(&[step], &[], "missing", msg, None);
}

fn check_string_member(vcon: &TopLevel<'_>, name: &'static str, findings: &mut Findings) {
    let Some(member) = vcon.get_non_null(name) else {
        return;
    };
    let kind = member.value.kind();
    if kind != Kind::String {
        findings.problem(
            &[Step::key(name, member.order)],
            &[],
            "string_type",
            format!("{name} must be a string when present; got {}", kind.noun()),
            Some(member.value),
        );
    }
}

fn check_object_member(vcon: &TopLevel<'_>, name: &'static str, findings: &mut Findings) {
    let Some(member) = vcon.get_non_null(name) else {
        return;
    };
    if member.value.kind() != Kind::Object {
        findings.problem(
            &[Step::key(name, member.order)],
            &[],
            "dict_type",
            format!(
                "{name} must be an object when present; got {}",
                member.value.kind().noun()
            ),
            Some(member.value),
        );
    }
}

/// An array member whose elements must all be objects (rows 9–11): reports what is not, and
/// hands each object's members `names` to `visit` with its index. Returns the number of
/// elements (0 when it is not an array).
pub(crate) fn check_objects<'a, const N: usize>(
    name: &'static str,
    member: Member<'a>,
    names: [&'static str; N],
    findings: &mut Findings,
    mut visit: impl FnMut(usize, Picked<'a, N>, &mut Findings),
) -> usize {
    let at = [Step::key(name, member.order)];
    let Some(elements) = member.value.elements_picking(names) else {
        let kind = member.value.kind();
        let hint = if kind == Kind::Null {
            " (omit the member or send [])"
        } else {
            ""
        };
        findings.problem(
            &at,
            &[],
            "list_type",
            format!(
                "{name} must be an array of objects; got {}{hint}",
                kind.noun()
            ),
            Some(member.value),
        );
        return 0;
    };
    let mut count = 0;
    for (index, element) in elements.enumerate() {
        count += 1;
        match element {
            Element::Object(members) => visit(index, members, findings),
            Element::Other(element) => findings.problem(
                &at,
                &[Step::index(index)],
                "dict_type",
                format!(
                    "{name}[{index}] must be an object; got {}",
                    element.kind().noun()
                ),
                Some(element),
            ),
        }
    }
    count
}

/// Check the parties (rows 9, 10, 13); returns their number, which dialog indices must stay
/// below.
fn check_parties(parties: Member<'_>, findings: &mut Findings) -> usize {
    check_objects(
        "parties",
        parties,
        ["tel"],
        findings,
        |index, party, findings| {
            let Some(tel) = party.get_non_null("tel") else {
                return;
            };
            let valid = match tel.value.string() {
                Some(text) => text.is_empty() || is_phone_number(&text),
                None => false,
            };
            if !valid {
                findings.problem(
                    &[Step::key("parties", parties.order), Step::index(index)],
                    &[Step::key("tel", tel.order)],
                    "value_error",
                    format!(
                        "tel is not a phone number ({}): use a TEL URI or a number such as \
                     \"+15551234567\" or \"tel:+1-555-123-4567\"",
                        describe_value(tel.value)
                    ),
                    Some(tel.value),
                );
            }
        },
    )
}

/// vcon.md §2.2: after an optional `tel:` prefix and up to the first `;` (URI parameters), a
/// `+`, digit or `(`, then at least four of: digits, space, `-`, `(`, `)`, `.`, `+`, `x`, `X`,
/// `#`, `*`.
pub(crate) fn is_phone_number(tel: &str) -> bool {
    let number = match (tel.get(..4), tel.get(4..)) {
        (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("tel:") => rest,
        _ => tel,
    };
    let number = number.split(';').next().unwrap_or_default();
    let Some((first, rest)) = number.as_bytes().split_first() else {
        return false;
    };
    matches!(first, b'+' | b'(' | b'0'..=b'9')
        && rest.len() >= 4
        && rest.iter().all(|b| {
            b.is_ascii_digit()
                || matches!(
                    b,
                    b' ' | b'-' | b'(' | b')' | b'.' | b'+' | b'x' | b'X' | b'#' | b'*'
                )
        })
}

/// Warnings about the top level (§3.3).
fn warn_about_extensions(vcon: &TopLevel<'_>, findings: &mut Findings) {
    for name in ["critical", "must_support"] {
        if let Some(member) = vcon.get(name) {
            if member.value.kind() == Kind::Array && !member.value.is_empty_container() {
                findings.warn(&[Step::key(name, member.order)], &[], "critical_extensions");
            }
        }
    }
    let has_content = |name: &str| {
        vcon.get(name).is_some_and(|member| {
            member.value.kind() == Kind::Object && !member.value.is_empty_container()
        })
    };
    if has_content("redacted") {
        for name in ["amended", "appended"] {
            if has_content(name) {
                if let Some(member) = vcon.get(name) {
                    findings.warn(
                        &[Step::key(name, member.order)],
                        &[],
                        "redacted_and_amended",
                    );
                }
            }
        }
    }
}

/// A short description of a scalar for a message: its JSON text, or its type when long.
pub(crate) fn describe_value(raw: Raw<'_>) -> String {
    let text = raw.text();
    match raw.kind() {
        Kind::Object | Kind::Array => format!("got {}", raw.kind().noun()),
        _ if text.len() > 60 => {
            format!("got a long {}", raw.kind().noun().trim_start_matches("a "))
        }
        _ => format!("got {text}"),
    }
}
