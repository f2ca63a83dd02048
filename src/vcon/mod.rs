//! The vCon as conserver accepts it (spec/vcon.md): the three forms, ingest validation that
//! collects every problem with its JSON path, lenient dates and uuids, and the exact round trip
//! (the stored text is the request body with insignificant whitespace removed).
//!
//! The work is split so that the body's bytes are read once: `compact` scans them (grammar,
//! stored text, repeated keys, depth), `view` then walks that compact text to the members the
//! rules need (`top_level` finds the top-level ones in one pass), `validate`/`dialog` hold the
//! rules of an unsigned vCon, `forms` those of the signed and encrypted ones, `index` derives
//! what a vCon is indexed by, and `findings` orders what was found. `dates` and `uuids` are the
//! lenient parsers the rest of conserver shares.

mod compact;
mod dates;
mod dialog;
mod document;
mod findings;
mod forms;
mod index;
mod payload;
mod strings;
mod top_level;
mod uuids;
mod validate;
mod view;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod ingest_tests;

use std::ops::Range;

use uuid::Uuid;

use crate::problem::Problem;

pub use document::{Document, NotADocument};

use compact::Compacted;
use findings::{Findings, Step};
use forms::Detected;
use index::Identity;
use view::{Object, Raw};

/// Bound on a gunzipped JWS payload when [`describe`] reads an already stored text (the default
/// of `api.max_body_bytes`; the text passed ingest under the configured one).
const DESCRIBE_MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// What ingest needs from the config.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// `api.accept_signed`: accept the JWS and JWE forms.
    pub accept_signed: bool,
    /// `api.max_body_bytes`: also bounds a gunzipped JWS payload.
    pub max_bytes: usize,
}

/// Which of the three forms of vcon.md §1 a document has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The vCon object itself.
    Unsigned,
    /// JWS General JSON Serialization (`payload` + `signatures`).
    Signed,
    /// JWE General JSON Serialization (`ciphertext` + `recipients`).
    Encrypted,
}

/// The party values a vCon is indexed by (redis.md §6), exactly as they appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartyIndex {
    /// Every party's string `tel`, in party order (empty strings skipped).
    pub tel: Vec<String>,
    /// Every party's string `mailto`, in party order (empty strings skipped).
    pub mailto: Vec<String>,
    /// Every party's string `name`, in party order (empty strings skipped).
    pub name: Vec<String>,
}

/// A warning of vcon.md §3.3: never rejects, counted and logged by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `unknown_dialog_type`, `missing_dialog_type`, `unknown_alg`, `unparseable_dialog_start`,
    /// `redacted_and_amended`, `critical_extensions`.
    pub kind: &'static str,
    /// JSONPath of the latest occurrence.
    pub path: String,
}

/// A vCon that passed ingest validation, ready to be stored.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// Canonical (lowercase hyphenated) uuid, used for keys; the text keeps what was sent.
    pub uuid: Uuid,
    /// The text to store: the body with whitespace between tokens removed (and a BOM dropped).
    pub text: String,
    /// Which of the three forms the document has.
    pub form: Form,
    /// The index instant in Unix seconds (fraction dropped), when the document has one; `None`
    /// for an encrypted vCon or an unreadable signed payload (the caller uses receipt time).
    pub created_at: Option<i64>,
    /// What to index the vCon by: from the unsigned body or a decoded signed payload only.
    pub parties: PartyIndex,
    /// The warnings of vcon.md §3.3, for the caller to count and log.
    pub warnings: Vec<Warning>,
}

/// Why a body was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestError {
    /// Not RFC 8259 JSON (a 400): 1-based line and column, and what was expected there.
    Malformed {
        /// 1-based line of the offending character.
        line: usize,
        /// 1-based column, in characters, of the offending character.
        column: usize,
        /// What was expected there and what was found (`expected ',' or '}', found 'x'`).
        message: String,
    },
    /// Empty body, or only whitespace (a 422 `missing` at `$`).
    Empty,
    /// Valid JSON that is not an acceptable vCon: every problem found (a 422).
    Invalid(Vec<Problem>),
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IngestError::Malformed {
                line,
                column,
                message,
            } => write!(f, "not JSON (line {line}, column {column}): {message}"),
            IngestError::Empty => f.write_str("an empty body"),
            IngestError::Invalid(problems) => {
                let shown: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.path, p.msg))
                    .collect();
                f.write_str(&shown.join("; "))
            }
        }
    }
}

impl std::error::Error for IngestError {}

/// Validate a request body (already gunzipped) and produce what is stored.
pub fn ingest(body: &[u8], options: &IngestOptions) -> Result<Ingested, IngestError> {
    let Compacted {
        text,
        findings,
        root_spans,
    } = compact::compact(body)?;
    let checked = check(&text, &root_spans, findings, options)?;
    Ok(Ingested {
        uuid: checked.uuid,
        text,
        form: checked.form,
        created_at: checked.created_at,
        parties: checked.parties,
        warnings: checked.warnings,
    })
}

/// What validation of a compact text yields besides the text itself.
struct Checked {
    uuid: Uuid,
    form: Form,
    created_at: Option<i64>,
    parties: PartyIndex,
    warnings: Vec<Warning>,
}

/// Run every rule on a text the scanner accepted, adding to what the scanner found.
fn check(
    text: &str,
    root_spans: &[Range<usize>],
    mut findings: Findings,
    options: &IngestOptions,
) -> Result<Checked, IngestError> {
    let root = Raw::new(text);
    let Some(document) = Object::of(root) else {
        return Err(not_an_object(root, findings));
    };
    let top = top_level::pick(&document, root_spans);
    let form = match forms::detect(&top) {
        Detected::One(form) => form,
        Detected::Ambiguous => {
            findings.problem(
                &[],
                &[],
                "ambiguous_form",
                "the document has both payload+signatures (signed) and ciphertext+recipients \
                 (encrypted); send one form",
                None,
            );
            return Err(IngestError::Invalid(findings.into_problems()));
        }
    };
    if form != Form::Unsigned && !options.accept_signed {
        findings.problem(
            &[],
            &[],
            "signed_not_accepted",
            "signed and encrypted vCons are not accepted here (api.accept_signed is false); send \
             the unsigned vCon",
            None,
        );
        return Err(IngestError::Invalid(findings.into_problems()));
    }
    let identity = identify(&top, form, options.max_bytes, &mut findings);
    match identity.uuid {
        Some(uuid) if !findings.has_problems() => Ok(Checked {
            uuid,
            form,
            created_at: identity.created_at,
            parties: identity.parties,
            warnings: findings.into_warnings(),
        }),
        _ => Err(IngestError::Invalid(findings.into_problems())),
    }
}

/// Run the rules of `form` and find what the document is stored and indexed by.
fn identify(
    top: &top_level::TopLevel<'_>,
    form: Form,
    max_bytes: usize,
    findings: &mut Findings,
) -> Identity {
    match form {
        Form::Unsigned => validate::check_unsigned(top, findings),
        Form::Signed => forms::check_signed(top, max_bytes, findings),
        Form::Encrypted => forms::check_encrypted(top, findings),
    }
}

/// Row 1: a body that is JSON but not an object.
fn not_an_object(root: Raw<'_>, mut findings: Findings) -> IngestError {
    findings.problem(
        &[] as &[Step<'_>],
        &[],
        "dict_type",
        format!(
            "the body must be a JSON object (a vCon); got {}",
            root.kind().noun()
        ),
        Some(root),
    );
    IngestError::Invalid(findings.into_problems())
}

/// What the store needs to index an already stored vCon text (lenient, no validation): used by
/// `DELETE /vcon` (to remove its party entries) and `/index_vcons`. `None` when the text is not
/// a JSON object.
pub fn describe(text: &str) -> Option<Described> {
    // The stored text is normally compact already; compacting it again is what makes the view
    // safe to use on any text (a pretty-printed one, or one that is not JSON at all).
    let compacted = compact::compact(text.as_bytes()).ok()?;
    let document = Object::of(Raw::new(&compacted.text))?;
    let top = top_level::pick(&document, &compacted.root_spans);
    // An ambiguous document is never accepted; if one is stored anyway, reading it as signed
    // still finds a top-level uuid.
    let form = match forms::detect(&top) {
        Detected::One(form) => form,
        Detected::Ambiguous => Form::Signed,
    };
    let identity = identify(
        &top,
        form,
        DESCRIBE_MAX_PAYLOAD_BYTES,
        &mut Findings::default(),
    );
    Some(Described {
        uuid: identity.uuid,
        form,
        created_at: identity.created_at,
        parties: identity.parties,
    })
}

/// See [`describe`].
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// The canonical uuid, found as ingest finds it (the first one, for a sealed form).
    pub uuid: Option<Uuid>,
    /// Which of the three forms the text has.
    pub form: Form,
    /// The index instant in Unix seconds, as in [`Ingested::created_at`].
    pub created_at: Option<i64>,
    /// The party values, as in [`Ingested::parties`].
    pub parties: PartyIndex,
}

/// Whether a stored text is a JSON object: what may be served or processed as a vCon. A value
/// another tool left under a vCon key, or a truncated one, is not.
pub fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// Parse a uuid in any accepted text form (vcon.md §2.6, api.md §1.2).
pub fn parse_uuid(text: &str) -> Option<Uuid> {
    uuids::parse_uuid(text)
}

/// Parse a date leniently (vcon.md §2.7) into an instant with full precision; callers that need
/// Unix seconds with the fraction dropped use `.timestamp()`.
pub fn parse_date(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    dates::parse_date(text)
}
