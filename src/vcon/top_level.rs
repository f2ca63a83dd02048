//! The top-level members that any rule reads, found in one pass over the document, so that
//! large members (dialog bodies, analysis) are stepped over once.

use std::ops::Range;

use super::view::{Object, Picked};

/// Every top-level member a rule of vcon.md §3 or §4 reads.
const NAMES: [&str; 20] = [
    "uuid",
    "created_at",
    "vcon",
    "subject",
    "parties",
    "dialog",
    "analysis",
    "attachments",
    "group",
    "redacted",
    "amended",
    "appended",
    "critical",
    "must_support",
    "payload",
    "signatures",
    "ciphertext",
    "recipients",
    "unprotected",
    "protected",
];

/// The top-level members of a document.
pub(crate) type TopLevel<'a> = Picked<'a, { NAMES.len() }>;

/// Find the top-level members of `document`, a compact text whose root member values the
/// scanner located (`spans`).
pub(crate) fn pick<'a>(document: &Object<'a>, spans: &'a [Range<usize>]) -> TopLevel<'a> {
    document.pick_spanned(NAMES, spans)
}
