//! The vCon as conserver accepts it (spec/vcon.md): the three forms, ingest validation that
//! collects every problem with its JSON path, lenient dates and uuids, and the exact round trip
//! (the stored text is the request body with insignificant whitespace removed).
//!
//! OWNER: vcon helper. The public items below are the interface the API and the store use;
//! their signatures are fixed, their bodies are to be written.

use uuid::Uuid;

use crate::problem::Problem;

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
    Unsigned,
    Signed,
    Encrypted,
}

/// The party values a vCon is indexed by (redis.md §6), exactly as they appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartyIndex {
    pub tel: Vec<String>,
    pub mailto: Vec<String>,
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
    pub form: Form,
    /// The index instant in Unix seconds (fraction dropped), when the document has one; `None`
    /// for an encrypted vCon or an unreadable signed payload (the caller uses receipt time).
    pub created_at: Option<i64>,
    pub parties: PartyIndex,
    pub warnings: Vec<Warning>,
}

/// Why a body was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestError {
    /// Not RFC 8259 JSON (a 400): 1-based line and column, and what was expected there.
    Malformed { line: usize, column: usize, message: String },
    /// Empty body, or only whitespace (a 422 `missing` at `$`).
    Empty,
    /// Valid JSON that is not an acceptable vCon: every problem found (a 422).
    Invalid(Vec<Problem>),
}

/// Validate a request body (already gunzipped) and produce what is stored.
pub fn ingest(body: &[u8], options: &IngestOptions) -> Result<Ingested, IngestError> {
    let _ = (body, options);
    todo!("vcon helper")
}

/// What the store needs to index an already stored vCon text (lenient, no validation): used by
/// `DELETE /vcon` (to remove its party entries) and `/index_vcons`. `None` when the text is not
/// a JSON object.
pub fn describe(text: &str) -> Option<Described> {
    let _ = text;
    todo!("vcon helper")
}

/// See [`describe`].
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub uuid: Option<Uuid>,
    pub form: Form,
    pub created_at: Option<i64>,
    pub parties: PartyIndex,
}

/// Parse a uuid in any accepted text form (vcon.md §2.6, api.md §1.2).
pub fn parse_uuid(text: &str) -> Option<Uuid> {
    let _ = text;
    todo!("vcon helper")
}

/// Parse a date leniently (vcon.md §2.7) into Unix seconds with fraction dropped... as an
/// instant with full precision.
pub fn parse_date(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let _ = text;
    todo!("vcon helper")
}
