//! The strict RFC 8259 scanner: one pass over the body's bytes that checks the grammar, produces
//! the compact text that is stored (vcon.md §6), and finds the two problems that only the text
//! shows: repeated keys and excessive nesting. It never recurses, so no input can exhaust the
//! stack, and it never builds a tree, so the stored text is the sender's bytes minus whitespace.
//!
//! Decision on lone surrogates: RFC 8259's grammar lets `\uD800` stand alone, but §8.2 says such
//! text has no predictable meaning, and the rest of conserver (links, storages, serde_json)
//! cannot read it. It is rejected here as malformed, so a stored vCon is always readable.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use crate::problem::{Loc, Problem};

use super::findings::Findings;
use super::strings::{find_special, unescape};
use super::IngestError;

/// The deepest nesting accepted (vcon.md §3.1 row 3); the root object is level 1.
pub(crate) const MAX_DEPTH: usize = 128;

/// Above this many keys an object's repeated-key check switches from a linear scan to a hash
/// map, so a body with a huge object cannot make the scan quadratic.
const LINEAR_KEY_SCAN_LIMIT: usize = 32;

/// How many member values of the root object are located for the view (a bound on memory
/// for a root with millions of members; beyond it the view finds them itself).
const ROOT_SPAN_LIMIT: usize = 4096;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The scan's result: the text to store, and the problems found on the way.
#[derive(Debug)]
pub(crate) struct Compacted {
    pub text: String,
    pub findings: Findings,
    /// Where each member value of the root object lies in `text`, in document order, when the
    /// root is an object (see `view::Object::pick_spanned`).
    pub root_spans: Vec<Range<usize>>,
}

/// Check `body` against RFC 8259 and remove the whitespace between its tokens (and a leading
/// byte-order mark). Repeated keys and nesting deeper than [`MAX_DEPTH`] are recorded in the
/// findings; grammar errors stop the scan.
pub(crate) fn compact(body: &[u8]) -> Result<Compacted, IngestError> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(error) => {
            return Err(malformed_at(
                body,
                error.valid_up_to(),
                "invalid UTF-8 byte sequence; a JSON body must be UTF-8".into(),
            ))
        }
    };
    if text.bytes().all(is_whitespace) {
        return Err(IngestError::Empty);
    }
    let mut scanner = Scanner::new(text);
    scanner.run()?;
    Ok(Compacted {
        text: scanner.output,
        findings: scanner.findings,
        root_spans: scanner.root_spans,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// What the grammar allows at the current position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (at the root, after `:`, or after `,` in an array).
    Value,
    /// A value or `]` (just after `[`).
    ValueOrEnd,
    /// A member name or `}` (just after `{`).
    KeyOrEnd,
    /// A member name (after `,` in an object).
    Key,
    /// `,` or the closing bracket of the enclosing container, or the end of the body.
    AfterValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// An open container within [`MAX_DEPTH`]: where its current member is, for problem paths.
#[derive(Debug)]
struct Frame<'a> {
    container: Container,
    /// The key or index of the member being read.
    segment: Segment<'a>,
    /// Document-order rank of that member (see `Findings`).
    order: usize,
    /// Members (with repeats) or elements seen so far.
    count: usize,
    /// Where this object's keys start in `Scanner::keys`.
    keys_start: usize,
    /// Key → order, built once the object has many keys.
    key_index: Option<HashMap<Cow<'a, str>, usize>>,
}

/// A key of an open object.
#[derive(Debug)]
struct SeenKey<'a> {
    name: Cow<'a, str>,
    /// [`fingerprint`] of the name, compared first.
    fingerprint: u64,
    /// Its rank among the object's members.
    order: usize,
}

/// The length and first seven bytes of a key: most keys of one object differ there, so most
/// comparisons end without comparing the names.
fn fingerprint(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let mut fingerprint = (bytes.len() as u64) << 56;
    for (i, byte) in bytes.iter().take(7).enumerate() {
        fingerprint |= u64::from(*byte) << (8 * i);
    }
    fingerprint
}

/// Where a string's content (between its quotes) is in the body.
#[derive(Debug, Clone)]
struct StringSpan {
    content: Range<usize>,
    escaped: bool,
}

#[derive(Debug, Clone)]
enum Segment<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Start of the bytes not yet copied to `output` (everything since the last whitespace).
    copy_from: usize,
    output: String,
    /// Every open container, however deep (one byte each, so a million `[` cost a megabyte).
    open: Vec<Container>,
    /// The open containers within [`MAX_DEPTH`].
    frames: Vec<Frame<'a>>,
    /// The distinct keys of the open objects, each object's after its parent's.
    keys: Vec<SeenKey<'a>>,
    root_spans: Vec<Range<usize>>,
    /// Where the root member value being read starts in the output.
    root_value_start: Option<usize>,
    too_deep_reported: bool,
    findings: Findings,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            copy_from: 0,
            output: String::with_capacity(text.len()),
            open: Vec::new(),
            frames: Vec::new(),
            keys: Vec::new(),
            root_spans: Vec::new(),
            root_value_start: None,
            too_deep_reported: false,
            findings: Findings::default(),
        }
    }

    fn run(&mut self) -> Result<(), IngestError> {
        let mut expect = Expect::Value;
        loop {
            self.skip_whitespace();
            let Some(&byte) = self.bytes.get(self.pos) else {
                if expect == Expect::AfterValue && self.open.is_empty() {
                    self.flush();
                    return Ok(());
                }
                return Err(self.unexpected(describe_expectation(expect, self.open.last())));
            };
            expect = match expect {
                Expect::ValueOrEnd if byte == b']' => self.close(),
                Expect::Value | Expect::ValueOrEnd => {
                    self.start_element();
                    if self.in_root_object() {
                        self.root_value_start = Some(self.output_len());
                    }
                    self.value(byte)?
                }
                Expect::KeyOrEnd if byte == b'}' => self.close(),
                Expect::KeyOrEnd | Expect::Key if byte == b'"' => {
                    self.key()?;
                    self.skip_whitespace();
                    if self.peek() != Some(b':') {
                        return Err(self.unexpected("expected ':' after the member name"));
                    }
                    self.pos += 1;
                    Expect::Value
                }
                Expect::KeyOrEnd | Expect::Key => {
                    return Err(self.unexpected(describe_expectation(expect, None)))
                }
                Expect::AfterValue => match (self.open.last(), byte) {
                    (Some(Container::Object), b',') => {
                        self.pos += 1;
                        Expect::Key
                    }
                    (Some(Container::Array), b',') => {
                        self.pos += 1;
                        Expect::Value
                    }
                    (Some(Container::Object), b'}') | (Some(Container::Array), b']') => {
                        self.close()
                    }
                    (open, _) => return Err(self.unexpected(describe_expectation(expect, open))),
                },
            };
            if expect == Expect::AfterValue && self.in_root_object() {
                self.end_root_value();
            }
        }
    }

    fn in_root_object(&self) -> bool {
        self.open.len() == 1 && self.open.first() == Some(&Container::Object)
    }

    /// A member value of the root object has just ended: note where it lies.
    fn end_root_value(&mut self) {
        if let Some(start) = self.root_value_start.take() {
            if self.root_spans.len() < ROOT_SPAN_LIMIT {
                self.root_spans.push(start..self.output_len());
            }
        }
    }

    /// The length the output will have once the pending run is copied.
    fn output_len(&self) -> usize {
        self.output.len() + (self.pos - self.copy_from)
    }

    /// Read the value starting with `byte`; returns what may follow it.
    fn value(&mut self, byte: u8) -> Result<Expect, IngestError> {
        match byte {
            b'{' => {
                self.pos += 1;
                self.open_container(Container::Object);
                Ok(Expect::KeyOrEnd)
            }
            b'[' => {
                self.pos += 1;
                self.open_container(Container::Array);
                Ok(Expect::ValueOrEnd)
            }
            b'"' => {
                self.string()?;
                Ok(Expect::AfterValue)
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
                Ok(Expect::AfterValue)
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => Err(self.unexpected(
                "expected a value (object, array, string, number, true, false or null)",
            )),
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<Expect, IngestError> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(Expect::AfterValue)
        } else {
            Err(self.unexpected(
                "expected a value (object, array, string, number, true, false or null)",
            ))
        }
    }

    fn number(&mut self) -> Result<(), IngestError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.unexpected("invalid number: leading zeros are not allowed"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.unexpected("invalid number: expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.required_digits("invalid number: expected a digit after '.'")?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.required_digits("invalid number: expected a digit in the exponent")?;
        }
        Ok(())
    }

    fn required_digits(&mut self, message: &str) -> Result<(), IngestError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.unexpected(message));
        }
        self.digits();
        Ok(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    /// Check the string at `pos` (on its opening quote) and move past it; returns where its
    /// content is.
    fn string(&mut self) -> Result<StringSpan, IngestError> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos = find_special(self.bytes, self.pos);
            match self.bytes.get(self.pos) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(_) => {
                    return Err(self.unexpected(
                        "control character in a string: it must be escaped (\\n, \\t, \\u00XX)",
                    ))
                }
                None => return Err(self.unexpected("unterminated string: expected '\"'")),
            }
        }
        let end = self.pos;
        self.pos += 1;
        Ok(StringSpan {
            content: start..end,
            escaped,
        })
    }

    /// The value of a string the scanner has read.
    fn decode(&self, span: StringSpan) -> Cow<'a, str> {
        // The quotes are ASCII, so both ends are character boundaries of the UTF-8 text.
        let raw = self.text.get(span.content).unwrap_or_default();
        if span.escaped {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        }
    }

    /// Check the escape sequence at `pos` (on its backslash) and move past it.
    fn escape(&mut self) -> Result<(), IngestError> {
        match self.bytes.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex4(self.pos + 2)?;
                if (0xDC00..0xE000).contains(&unit) {
                    return Err(self.unexpected(LONE_SURROGATE));
                }
                self.pos += 6;
                if (0xD800..0xDC00).contains(&unit) {
                    let low = if self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u") {
                        self.hex4(self.pos + 2)?
                    } else {
                        0
                    };
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.unexpected(LONE_SURROGATE));
                    }
                    self.pos += 6;
                }
                Ok(())
            }
            Some(_) => {
                self.pos += 1;
                Err(self.unexpected(
                    "invalid escape: expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
                ))
            }
            None => {
                self.pos += 1;
                Err(self.unexpected("unterminated string: expected '\"'"))
            }
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, IngestError> {
        let mut unit = 0;
        for offset in 0..4 {
            let digit = self
                .bytes
                .get(at + offset)
                .and_then(|b| (*b as char).to_digit(16));
            match digit {
                Some(digit) => unit = unit * 16 + digit,
                None => {
                    self.pos = at + offset;
                    return Err(
                        self.unexpected("invalid \\u escape: expected 4 hexadecimal digits")
                    );
                }
            }
        }
        Ok(unit)
    }

    /// Read a member name, and record it (or its repetition) in the current object.
    fn key(&mut self) -> Result<(), IngestError> {
        let span = self.string()?;
        if self.frames.len() != self.open.len() {
            return Ok(()); // deeper than tracked: the document is rejected anyway
        }
        let key = self.decode(span);
        let fingerprint = fingerprint(&key);
        let Some(frame) = self.frames.last_mut() else {
            return Ok(());
        };
        let rank = frame.count;
        frame.count += 1;
        let earlier = match &frame.key_index {
            Some(index) => index.get(&key).copied(),
            None => self
                .keys
                .get(frame.keys_start..)
                .unwrap_or_default()
                .iter()
                .find(|seen| seen.fingerprint == fingerprint && seen.name == key)
                .map(|seen| seen.order),
        };
        match earlier {
            Some(first) => {
                frame.order = first;
                frame.segment = Segment::Key(key);
                self.report_duplicate();
            }
            None => {
                frame.order = rank;
                frame.segment = Segment::Key(key.clone());
                if let Some(index) = &mut frame.key_index {
                    // Indexed objects keep their keys only in the index, so a huge object
                    // costs one copy of its keys, not two.
                    index.insert(key, rank);
                } else {
                    self.keys.push(SeenKey {
                        name: key,
                        fingerprint,
                        order: rank,
                    });
                    let keys = self.keys.get(frame.keys_start..).unwrap_or_default();
                    if keys.len() > LINEAR_KEY_SCAN_LIMIT {
                        frame.key_index = Some(
                            keys.iter()
                                .map(|seen| (seen.name.clone(), seen.order))
                                .collect(),
                        );
                        self.keys.truncate(frame.keys_start);
                    }
                }
            }
        }
        Ok(())
    }

    /// In an array, a value starting now is its next element.
    fn start_element(&mut self) {
        if self.frames.len() != self.open.len() {
            return;
        }
        if let Some(frame) = self.frames.last_mut() {
            if frame.container == Container::Array {
                frame.segment = Segment::Index(frame.count);
                frame.order = frame.count;
                frame.count += 1;
            }
        }
    }

    fn open_container(&mut self, container: Container) {
        if self.open.len() < MAX_DEPTH {
            self.frames.push(Frame {
                container,
                segment: Segment::Index(0),
                order: 0,
                count: 0,
                keys_start: self.keys.len(),
                key_index: None,
            });
        } else if !self.too_deep_reported {
            self.too_deep_reported = true;
            let (loc, order) = self.location();
            let problem = Problem::body(
                "value_error",
                loc,
                format!("nesting is deeper than {MAX_DEPTH} levels here; flatten the document"),
            );
            self.findings.add_problem(order, problem);
        }
        self.open.push(container);
    }

    /// Consume the closing bracket at `pos` and end the innermost container.
    fn close(&mut self) -> Expect {
        self.pos += 1;
        self.open.pop();
        if self.frames.len() > self.open.len() {
            if let Some(frame) = self.frames.pop() {
                self.keys.truncate(frame.keys_start);
            }
        }
        Expect::AfterValue
    }

    fn report_duplicate(&mut self) {
        let (loc, order) = self.location();
        let name = match loc.last() {
            Some(Loc::Key(name)) => name.clone(),
            _ => String::new(),
        };
        let problem = Problem::body(
            "duplicate_key",
            loc,
            format!("the key '{name}' appears more than once in this object; keep only one"),
        );
        self.findings.add_problem(order, problem);
    }

    /// The path and document-order rank of the member being read.
    fn location(&self) -> (Vec<Loc>, Vec<usize>) {
        let loc = self
            .frames
            .iter()
            .map(|frame| match &frame.segment {
                Segment::Key(key) => Loc::Key(key.to_string()),
                Segment::Index(index) => Loc::Index(*index),
            })
            .collect();
        let order = self.frames.iter().map(|frame| frame.order).collect();
        (loc, order)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skip whitespace, first copying the bytes before it to the output.
    fn skip_whitespace(&mut self) {
        if !matches!(self.peek(), Some(b) if is_whitespace(b)) {
            return;
        }
        self.flush();
        while matches!(self.peek(), Some(b) if is_whitespace(b)) {
            self.pos += 1;
        }
        self.copy_from = self.pos;
    }

    fn flush(&mut self) {
        // Whitespace is ASCII, so the run between two whitespace bytes is whole characters.
        if let Some(run) = self.text.get(self.copy_from..self.pos) {
            self.output.push_str(run);
        }
        self.copy_from = self.pos;
    }

    fn unexpected(&self, expected: &str) -> IngestError {
        let found = match self
            .text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
        {
            Some(c) => format!("found {c:?}"),
            None => "found the end of the body".to_owned(),
        };
        malformed_at(self.bytes, self.pos, format!("{expected}, {found}"))
    }
}

const LONE_SURROGATE: &str =
    "invalid \\u escape: a surrogate must be part of a high-low pair (strings must be Unicode)";

fn describe_expectation(expect: Expect, open: Option<&Container>) -> &'static str {
    match (expect, open) {
        (Expect::Value, _) => "expected a value",
        (Expect::ValueOrEnd, _) => "expected a value or ']'",
        (Expect::KeyOrEnd, _) => "expected a member name (a string) or '}'",
        (Expect::Key, _) => "expected a member name (a string)",
        (Expect::AfterValue, Some(Container::Object)) => "expected ',' or '}'",
        (Expect::AfterValue, Some(Container::Array)) => "expected ',' or ']'",
        (Expect::AfterValue, None) => "expected the end of the body after the JSON value",
    }
}

/// A malformed-JSON error at byte `pos`: 1-based line, and 1-based column in characters.
fn malformed_at(bytes: &[u8], pos: usize, message: String) -> IngestError {
    let before = bytes.get(..pos).unwrap_or(bytes);
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + String::from_utf8_lossy(before.get(line_start..).unwrap_or_default())
        .chars()
        .count();
    IngestError::Malformed {
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> String {
        compact(body.as_bytes()).unwrap().text
    }

    fn malformed(body: &[u8]) -> (usize, usize, String) {
        match compact(body) {
            Err(IngestError::Malformed {
                line,
                column,
                message,
            }) => (line, column, message),
            other => panic!("expected Malformed for {body:?}, got {other:?}"),
        }
    }

    fn problems(body: &str) -> Vec<Problem> {
        compact(body.as_bytes()).unwrap().findings.into_problems()
    }

    #[test]
    fn removes_only_whitespace_between_tokens() {
        assert_eq!(
            text(" {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\" : { } } \n"),
            r#"{"a":[1,2],"b":{}}"#
        );
        assert_eq!(
            text(r#"{"s":"  spaced\tout  "}"#),
            r#"{"s":"  spaced\tout  "}"#
        );
        assert_eq!(text("[ ]"), "[]");
        assert_eq!(text("  42  "), "42");
    }

    #[test]
    fn numbers_keep_their_text() {
        let body = "[120, 120.0, 1.2e2, 1.2E+2, 1.2e-2, -0, -0.0, 12345678901234567890, 0.1]";
        assert_eq!(
            text(body),
            "[120,120.0,1.2e2,1.2E+2,1.2e-2,-0,-0.0,12345678901234567890,0.1]"
        );
        assert_eq!(text("1e400"), "1e400");
    }

    #[test]
    fn strings_and_escapes_stay_byte_identical() {
        let body = r#"{"k\u00e9y": "caf\u00e9 \/ \" \\ \b\f\n\r\t \ud83d\ude00 é 😀"}"#;
        assert_eq!(text(body), body.replace("\": \"", "\":\""));
    }

    #[test]
    fn a_leading_bom_is_dropped() {
        assert_eq!(
            compact(b"\xEF\xBB\xBF {\"a\": 1}").unwrap().text,
            r#"{"a":1}"#
        );
        let (line, column, _) = malformed(b"\xEF\xBB\xBF{x}");
        assert_eq!(
            (line, column),
            (1, 2),
            "positions are counted after the BOM"
        );
        assert!(matches!(compact(b"\xEF\xBB\xBF"), Err(IngestError::Empty)));
        // A BOM anywhere else is not whitespace.
        malformed(b"{}\xEF\xBB\xBF");
    }

    #[test]
    fn empty_and_whitespace_bodies() {
        assert!(matches!(compact(b""), Err(IngestError::Empty)));
        assert!(matches!(compact(b" \n\t\r "), Err(IngestError::Empty)));
    }

    #[test]
    fn invalid_utf8_is_malformed_with_its_position() {
        let (line, column, message) = malformed(b"{\"a\":\n \"\xC3\x28\"}");
        assert_eq!((line, column), (2, 3));
        assert!(message.contains("UTF-8"), "{message}");
        malformed(b"\xFF");
        malformed(b"\"\xED\xA0\x80\""); // an encoded surrogate is not UTF-8
        malformed(b"{\"a\":\"\xE2\x82\"}"); // truncated sequence
    }

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        assert_eq!(
            malformed(b"{\"a\":1 \"b\":2}"),
            (1, 8, "expected ',' or '}', found '\"'".into())
        );
        assert_eq!(malformed(b"{\n  \"\xC3\xA9\xC3\xA9\": x\n}").0, 2);
        assert_eq!(malformed(b"{\n  \"\xC3\xA9\xC3\xA9\": x\n}").1, 9);
        assert_eq!(
            malformed(b"[1,2"),
            (
                1,
                5,
                "expected ',' or ']', found the end of the body".into()
            )
        );
    }

    #[test]
    fn grammar_errors_say_what_was_expected() {
        let cases: &[(&str, &str)] = &[
            ("{", "expected a member name (a string) or '}'"),
            ("{\"a\" 1}", "expected ':' after the member name"),
            ("{\"a\":}", "expected a value"),
            ("{\"a\":1,}", "expected a member name (a string)"),
            ("[1,]", "expected a value"),
            ("{'a':1}", "expected a member name (a string) or '}'"),
            ("{a:1}", "expected a member name (a string) or '}'"),
            ("[1 2]", "expected ',' or ']'"),
            ("{} {}", "expected the end of the body after the JSON value"),
            ("{}x", "expected the end of the body after the JSON value"),
            ("[1]]", "expected the end of the body after the JSON value"),
            ("[}", "expected a value"),
            ("{]", "expected a member name (a string) or '}'"),
            ("[tru]", "expected a value"),
            ("[nul", "expected a value"),
            ("[True]", "expected a value"),
            ("[NaN]", "expected a value"),
            ("[Infinity]", "expected a value"),
            ("[+1]", "expected a value"),
            ("[.5]", "expected a value"),
            ("[01]", "leading zeros are not allowed"),
            ("[-01]", "leading zeros are not allowed"),
            ("[00]", "leading zeros are not allowed"),
            ("[1.]", "expected a digit after '.'"),
            ("[1.e5]", "expected a digit after '.'"),
            ("[1e]", "expected a digit in the exponent"),
            ("[1e+]", "expected a digit in the exponent"),
            ("[-]", "expected a digit"),
            ("[0x10]", "expected ',' or ']'"),
            ("[\"a]", "unterminated string"),
            ("[\"a\\x\"]", "invalid escape"),
            ("[\"a\\u12G4\"]", "expected 4 hexadecimal digits"),
            ("[\"a\\u12\"]", "expected 4 hexadecimal digits"),
            ("[\"tab\there\"]", "control character"),
            ("[\"nl\nhere\"]", "control character"),
            ("[\"nul\u{0}\"]", "control character"),
            ("/* c */ {}", "expected a value"),
            ("{\"a\":1}//", "expected the end of the body"),
        ];
        for (body, expected) in cases {
            let (_, _, message) = malformed(body.as_bytes());
            assert!(
                message.contains(expected),
                "{body:?}: {message:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn lone_surrogates_are_rejected_pairs_accepted() {
        assert_eq!(
            text(r#"["\ud83d\ude00","\uD83D\uDE00"]"#),
            r#"["\ud83d\ude00","\uD83D\uDE00"]"#
        );
        for body in [
            r#"["\ud83d"]"#,
            r#"["\ude00"]"#,
            r#"["\ud83dx"]"#,
            r#"["\ud83d\u0041"]"#,
            r#"["\ud83d\n"]"#,
        ] {
            let (_, _, message) = malformed(body.as_bytes());
            assert!(message.contains("surrogate"), "{body}: {message}");
        }
    }

    #[test]
    fn del_and_non_ascii_are_allowed_raw() {
        assert_eq!(
            text("[\"\u{7f}\u{80}\u{2028}😀\"]"),
            "[\"\u{7f}\u{80}\u{2028}😀\"]"
        );
    }

    #[test]
    fn duplicate_keys_are_reported_at_the_second_occurrence() {
        let found =
            problems(r#"{"uuid":"x","dialog":[{"url":"a","type":"t","url":"b"}],"uuid":"y"}"#);
        let paths: Vec<_> = found.iter().map(|p| (p.kind, p.path.as_str())).collect();
        assert_eq!(
            paths,
            [
                ("duplicate_key", "$.uuid"),
                ("duplicate_key", "$.dialog[0].url")
            ]
        );
        assert_eq!(
            found[1].loc,
            [
                Loc::Key("body".into()),
                "dialog".into(),
                0.into(),
                "url".into()
            ]
        );
    }

    #[test]
    fn duplicate_keys_compare_decoded_names_and_every_repeat_counts() {
        let found = problems(r#"{"a":1,"\u0061":2,"a":3}"#);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|p| p.path == "$.a"));
        assert!(
            problems(r#"{"a":{"a":1},"b":{"a":1}}"#).is_empty(),
            "same key in different objects"
        );
        assert!(problems(r#"[{"a":1},{"a":2}]"#).is_empty());
    }

    #[test]
    fn duplicate_keys_in_big_objects_and_at_depth() {
        let mut body = String::from("{");
        for i in 0..100 {
            body.push_str(&format!("\"k{i}\":{i},"));
        }
        body.push_str("\"k7\":0,\"k99\":1}");
        let found = problems(&body);
        let paths: Vec<_> = found.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["$.k7", "$.k99"]);

        let deep = format!("{}{{\"x\":1,\"x\":2}}{}", "[".repeat(100), "]".repeat(100));
        let found = problems(&deep);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, format!("${}.x", "[0]".repeat(100)));
    }

    #[test]
    fn nesting_up_to_128_levels_is_fine() {
        let body = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(problems(&body).is_empty());
    }

    #[test]
    fn nesting_deeper_than_128_is_reported_once_at_the_deepest_allowed_path() {
        let body = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        let found = problems(&body);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, "value_error");
        assert_eq!(found[0].path, format!("$.a{}", "[0]".repeat(MAX_DEPTH - 1)));
        assert_eq!(found[0].loc.len(), MAX_DEPTH + 1);
    }

    #[test]
    fn a_million_brackets_do_not_overflow_the_stack() {
        let open = "[".repeat(1_000_000);
        let (line, column, message) = malformed(open.as_bytes());
        assert_eq!((line, column), (1, 1_000_001));
        assert!(message.contains("expected a value or ']'"), "{message}");
        let closed = format!("{open}{}", "]".repeat(1_000_000));
        let found = problems(&closed);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, "value_error");
        let objects = "{\"a\":".repeat(1_000_000);
        malformed(objects.as_bytes());
    }

    #[test]
    fn escaped_keys_are_decoded_for_paths() {
        let found = problems(r#"{"a\"b":1,"a\u0022b":2,"\ud83d\ude00":1,"😀":2}"#);
        let paths: Vec<_> = found.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["$['a\"b']", "$['😀']"]);
    }
}

#[cfg(test)]
mod root_span_tests {
    use super::*;

    #[test]
    fn root_spans_locate_each_root_member_value() {
        let body = "{ \"a\" : 1 ,\n \"b\": [ 1, {\"x\": \"y\"} ] , \"c\":{ }, \"d\" :\"s\\\"\", \"a\": null }";
        let compacted = compact(body.as_bytes()).unwrap();
        let values: Vec<_> = compacted
            .root_spans
            .iter()
            .map(|span| &compacted.text[span.clone()])
            .collect();
        assert_eq!(values, ["1", r#"[1,{"x":"y"}]"#, "{}", r#""s\"""#, "null"]);
        assert!(compact(b"[1, 2]").unwrap().root_spans.is_empty());
    }

    #[test]
    fn root_spans_stop_at_the_limit() {
        let members: Vec<_> = (0..ROOT_SPAN_LIMIT + 10)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect();
        let body = format!("{{{}}}", members.join(","));
        assert_eq!(
            compact(body.as_bytes()).unwrap().root_spans.len(),
            ROOT_SPAN_LIMIT
        );
    }
}
