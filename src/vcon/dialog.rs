//! The rules for one dialog entry (vcon.md §2.3, §3.1 rows 14–17) and its warnings (§3.3).

use std::borrow::Cow;

use super::dates::parse_date;
use super::findings::{Findings, Step};
use super::validate::{check_objects, describe_value};
use super::view::{Kind, Member, Picked, Raw};

/// The members of a dialog entry that a rule reads.
const CHECKED: [&str; 9] = [
    "type",
    "start",
    "duration",
    "parties",
    "originator",
    "url",
    "mediatype",
    "mimetype",
    "alg",
];

/// The dialog types of core-04.
const KNOWN_TYPES: [&str; 5] = [
    "recording",
    "recording-set",
    "text",
    "transfer",
    "incomplete",
];

/// The `alg` values that do not warn.
const KNOWN_ALGS: [&str; 15] = [
    "SHA-256", "SHA-384", "SHA-512", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256",
    "ES384", "ES512", "PS256", "PS384", "PS512",
];

/// Check the top-level `dialog`: an array of objects (rows 9–10), each checked by the rules
/// below; party indices must be below `party_count`.
pub(crate) fn check_dialogs(dialog: Member<'_>, party_count: usize, findings: &mut Findings) {
    check_objects(
        "dialog",
        dialog,
        CHECKED,
        findings,
        |index, members, findings| {
            let at = [Step::key("dialog", dialog.order), Step::index(index)];
            check_dialog(members, &at, party_count, findings);
        },
    );
}

/// Check the dialog entry at `at` (`$.dialog[i]`), given its checked members.
fn check_dialog(
    members: Picked<'_, { CHECKED.len() }>,
    at: &[Step<'_>],
    party_count: usize,
    findings: &mut Findings,
) {
    let mut checker = Checker {
        members,
        at,
        findings,
    };
    checker.dialog_type();
    checker.start();
    checker.duration();
    checker.parties(party_count);
    checker.originator(party_count);
    checker.url();
    for name in ["mediatype", "mimetype"] {
        checker.media_type(name);
    }
    checker.alg();
}

struct Checker<'c, 'a> {
    members: Picked<'a, { CHECKED.len() }>,
    at: &'c [Step<'c>],
    findings: &'c mut Findings,
}

impl<'a> Checker<'_, 'a> {
    fn problem(&mut self, tail: &[Step<'_>], kind: &'static str, msg: String, input: Raw<'_>) {
        self.findings.problem(self.at, tail, kind, msg, Some(input));
    }

    /// The member `name` when present, not `null`, and a string; a `string_type` problem when
    /// it is something else.
    fn string_member(&mut self, name: &'static str) -> Option<(Member<'a>, Cow<'a, str>)> {
        let member = self.members.get_non_null(name)?;
        match member.value.string() {
            Some(text) => Some((member, text)),
            None => {
                let msg = format!(
                    "{name} must be a string; got {}",
                    member.value.kind().noun()
                );
                self.problem(
                    &[Step::key(name, member.order)],
                    "string_type",
                    msg,
                    member.value,
                );
                None
            }
        }
    }

    fn dialog_type(&mut self) {
        if self.members.get_non_null("type").is_none() {
            self.findings.warn(self.at, &[], "missing_dialog_type");
            return;
        }
        if let Some((member, text)) = self.string_member("type") {
            if !KNOWN_TYPES.contains(&text.as_ref()) {
                self.findings.warn(
                    self.at,
                    &[Step::key("type", member.order)],
                    "unknown_dialog_type",
                );
            }
        }
    }

    fn start(&mut self) {
        if let Some((member, text)) = self.string_member("start") {
            if parse_date(&text).is_none() {
                self.findings.warn(
                    self.at,
                    &[Step::key("start", member.order)],
                    "unparseable_dialog_start",
                );
            }
        }
    }

    /// A number ≥ 0, or a string holding one (the Python server accepts numeric strings).
    fn duration(&mut self) {
        let Some(member) = self.members.get_non_null("duration") else {
            return;
        };
        let seconds = match member.value.kind() {
            Kind::Number => member.value.number(),
            Kind::String => member
                .value
                .string()
                .and_then(|text| text.trim().parse::<f64>().ok())
                .filter(|seconds| seconds.is_finite()),
            _ => None,
        };
        let tail = [Step::key("duration", member.order)];
        match seconds {
            None => self.problem(
                &tail,
                "float_parsing",
                format!(
                    "duration must be a number of seconds (or a string holding one); {}",
                    describe_value(member.value)
                ),
                member.value,
            ),
            Some(seconds) if seconds < 0.0 => self.problem(
                &tail,
                "greater_than_equal",
                "duration must be a number >= 0".to_owned(),
                member.value,
            ),
            Some(_) => {}
        }
    }

    /// An index, an array of indices, or one entry per channel (an index, an array of indices,
    /// or `null` for an unused channel).
    fn parties(&mut self, party_count: usize) {
        let Some(member) = self.members.get_non_null("parties") else {
            return;
        };
        let key = Step::key("parties", member.order);
        match member.value.kind() {
            Kind::Number => self.index(&[key], member.value, party_count),
            Kind::Array => {
                let channels = member.value.elements().into_iter().flatten();
                for (channel, raw) in channels.enumerate() {
                    let at_channel = [key, Step::index(channel)];
                    match raw.kind() {
                        Kind::Null => {}
                        Kind::Array => {
                            let indices = raw.elements().into_iter().flatten();
                            for (position, index) in indices.enumerate() {
                                let at_index = [key, Step::index(channel), Step::index(position)];
                                self.index(&at_index, index, party_count);
                            }
                        }
                        _ => self.index(&at_channel, raw, party_count),
                    }
                }
            }
            other => self.problem(
                &[key],
                "list_type",
                format!(
                    "parties must be a party index, an array of indices, or an array with one \
                     entry (index, array of indices, or null) per channel; got {}",
                    other.noun()
                ),
                member.value,
            ),
        }
    }

    fn originator(&mut self, party_count: usize) {
        let Some(member) = self.members.get_non_null("originator") else {
            return;
        };
        self.index(
            &[Step::key("originator", member.order)],
            member.value,
            party_count,
        );
    }

    /// One party index: an integer with 0 ≤ index < `party_count`.
    fn index(&mut self, tail: &[Step<'_>], raw: Raw<'_>, party_count: usize) {
        let kind = raw.kind();
        if matches!(kind, Kind::Object | Kind::Array) {
            let msg = format!("a party index must be an integer; got {}", kind.noun());
            self.problem(tail, "list_type", msg, raw);
            return;
        }
        let in_range = raw
            .integer()
            .and_then(|index| usize::try_from(index).ok())
            .is_some_and(|index| index < party_count);
        if in_range {
            return;
        }
        let msg = match (raw.integer(), party_count) {
            (Some(index), 0) => {
                format!("party index {index} is out of range: the vCon has no parties")
            }
            (Some(index), count) => format!(
                "party index {index} is out of range: the vCon has {count} part{} (indices 0 to {})",
                if count == 1 { "y" } else { "ies" },
                count - 1
            ),
            (None, _) => format!(
                "a party index must be an integer >= 0; {}",
                describe_value(raw)
            ),
        };
        self.problem(tail, "index_out_of_range", msg, raw);
    }

    /// `<scheme>://<something>`.
    fn url(&mut self) {
        let Some((member, url)) = self.string_member("url") else {
            return;
        };
        if !is_url(&url) {
            let msg = "url must be an absolute URL such as \"https://example.com/call.wav\" or \
                       \"s3://bucket/key\""
                .to_owned();
            self.problem(
                &[Step::key("url", member.order)],
                "value_error",
                msg,
                member.value,
            );
        }
    }

    /// `type/subtype`, optionally followed by `;` and parameters.
    fn media_type(&mut self, name: &'static str) {
        let Some((member, media_type)) = self.string_member(name) else {
            return;
        };
        if !is_media_type(&media_type) {
            let msg = format!(
                "{name} must be a media type such as \"audio/x-wav\" or \"text/plain; \
                 charset=utf-8\"; {}",
                describe_value(member.value)
            );
            self.problem(
                &[Step::key(name, member.order)],
                "value_error",
                msg,
                member.value,
            );
        }
    }

    fn alg(&mut self) {
        if let Some((member, alg)) = self.string_member("alg") {
            if !KNOWN_ALGS.contains(&alg.as_ref()) {
                self.findings
                    .warn(self.at, &[Step::key("alg", member.order)], "unknown_alg");
            }
        }
    }
}

/// A URI scheme (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`), `://`, and at least
/// one more character.
fn is_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let mut scheme = scheme.bytes();
    scheme.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
}

/// RFC 9110 `type "/" subtype` where both are tokens of letters, digits and `!#$&-^_.+`, then
/// either the end or optional blanks and `;` followed by parameters that are not checked (real
/// data has spaces and line breaks there, as in `multipart/mixed;\n\tboundary="x"`).
fn is_media_type(text: &str) -> bool {
    let essence = match text.split_once(';') {
        Some((essence, _parameters)) => essence.trim_end_matches([' ', '\t']),
        None => text,
    };
    let is_token = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    essence
        .split_once('/')
        .is_some_and(|(kind, subtype)| is_token(kind) && is_token(subtype))
}
