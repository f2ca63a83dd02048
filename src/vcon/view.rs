//! A borrowed view of compact JSON text that the scanner has accepted: the rules navigate it to
//! the few dozen members they check, and a value is decoded only when a rule reads it.
//!
//! Why not serde_json: building a `Value` of a 5 KB vCon costs several times the whole scan
//! (and serde_json refuses the 128 levels of nesting vcon.md allows), and a `RawValue` view
//! re-parses every level it descends through. The text here is known to be valid and compact
//! (no whitespace between tokens), so walking it needs no error handling and no allocation:
//! strings are skipped eight bytes at a time, and big members (recordings, transcripts) are
//! never copied. serde_json is only used to show a scalar as a problem's `input`.
//!
//! Nothing here panics on unexpected text: navigation just stops.

use std::borrow::Cow;
use std::ops::Range;

use super::strings::{find_special, unescape};

/// The JSON type of a value, told by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

impl Kind {
    /// The type as a noun phrase, for messages ("got a string").
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
        }
    }
}

/// The text of one JSON value within compact, valid JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// A whole compact text the scanner accepted (or, in tests, a scalar's JSON text).
    pub(crate) fn new(text: &'a str) -> Self {
        Raw(text)
    }

    /// The value's JSON text.
    pub(crate) fn text(self) -> &'a str {
        self.0
    }

    /// The value's JSON type.
    pub(crate) fn kind(self) -> Kind {
        match self.0.as_bytes().first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') | None => Kind::Null,
            Some(_) => Kind::Number,
        }
    }

    /// Whether the value is `null`.
    pub(crate) fn is_null(self) -> bool {
        self.kind() == Kind::Null
    }

    /// The value of a string, borrowed when it has no escapes.
    pub(crate) fn string(self) -> Option<Cow<'a, str>> {
        if self.kind() != Kind::String {
            return None;
        }
        let content = self.0.get(1..self.0.len().saturating_sub(1))?;
        Some(if content.contains('\\') {
            Cow::Owned(unescape(content))
        } else {
            Cow::Borrowed(content)
        })
    }

    /// A number's value as a finite `f64` (JSON number grammar is a subset of what Rust's
    /// parser accepts); `None` for a non-number or one beyond `f64`.
    pub(crate) fn number(self) -> Option<f64> {
        if self.kind() != Kind::Number {
            return None;
        }
        self.0.parse::<f64>().ok().filter(|n| n.is_finite())
    }

    /// A number written as an integer (`3`, not `3.0` or `3e0`) that fits `i64`.
    pub(crate) fn integer(self) -> Option<i64> {
        if self.kind() != Kind::Number {
            return None;
        }
        self.0.parse::<i64>().ok()
    }

    /// The elements of an array; `None` for anything else.
    pub(crate) fn elements(self) -> Option<Elements<'a>> {
        (self.kind() == Kind::Array).then_some(Elements {
            text: self.0,
            pos: 1,
        })
    }

    /// The elements of an array, with the members `names` of each element that is an object
    /// picked in the same walk; `None` for anything else.
    pub(crate) fn elements_picking<const N: usize>(
        self,
        names: [&'static str; N],
    ) -> Option<PickingElements<'a, N>> {
        let elements = self.elements()?;
        Some(PickingElements { elements, names })
    }

    /// Whether the value is an empty array or object.
    pub(crate) fn is_empty_container(self) -> bool {
        matches!(self.0, "[]" | "{}")
    }
}

/// The elements of an array, in order.
#[derive(Debug, Clone)]
pub(crate) struct Elements<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Raw<'a>;

    fn next(&mut self) -> Option<Raw<'a>> {
        let bytes = self.text.as_bytes();
        if matches!(bytes.get(self.pos), Some(b']') | None) {
            return None;
        }
        let end = value_end(bytes, self.pos);
        let value = Raw(self.text.get(self.pos..end)?);
        self.pos = end + usize::from(bytes.get(end) == Some(&b','));
        Some(value)
    }
}

/// An element of an array: an object with its picked members, or another value.
#[derive(Debug)]
pub(crate) enum Element<'a, const N: usize> {
    Object(Picked<'a, N>),
    Other(Raw<'a>),
}

/// See [`Raw::elements_picking`].
#[derive(Debug)]
pub(crate) struct PickingElements<'a, const N: usize> {
    elements: Elements<'a>,
    names: [&'static str; N],
}

impl<'a, const N: usize> Iterator for PickingElements<'a, N> {
    type Item = Element<'a, N>;

    fn next(&mut self) -> Option<Element<'a, N>> {
        let text = self.elements.text;
        let bytes = text.as_bytes();
        let start = self.elements.pos;
        if bytes.get(start) != Some(&b'{') {
            return self.elements.next().map(Element::Other);
        }
        let members = Members {
            text,
            pos: start + 1,
            index: 0,
            spans: &[],
        };
        let (picked, closing_brace) = pick_members(members, self.names);
        let end = closing_brace + 1;
        self.elements.pos = end + usize::from(bytes.get(end) == Some(&b','));
        Some(Element::Object(picked))
    }
}

/// One member of an object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    /// Document-order rank: where the key first occurs among the object's members.
    pub order: usize,
    /// The value of its last occurrence (a repeated key is reported by the scanner; the rules
    /// then read the last value, as JSON parsers generally do).
    pub value: Raw<'a>,
}

impl Member<'_> {
    /// A member whose value is `null` counts as absent for most rules (vcon.md §3.2).
    pub(crate) fn is_null(&self) -> bool {
        self.value.is_null()
    }
}

/// An object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Object<'a>(&'a str);

impl<'a> Object<'a> {
    /// View `raw` as an object; `None` when it is not one.
    pub(crate) fn of(raw: Raw<'a>) -> Option<Self> {
        (raw.kind() == Kind::Object).then_some(Object(raw.0))
    }

    /// Find the members `names` in one pass over the object.
    pub(crate) fn pick<const N: usize>(&self, names: [&'static str; N]) -> Picked<'a, N> {
        pick_members(self.members(), names).0
    }

    /// [`Object::pick`] for the root object of a compact text, given where the scanner saw
    /// each of its member values (`spans`, in document order), so that big members are not
    /// stepped over again.
    pub(crate) fn pick_spanned<const N: usize>(
        &self,
        names: [&'static str; N],
        spans: &'a [Range<usize>],
    ) -> Picked<'a, N> {
        let members = Members {
            spans,
            ..self.members()
        };
        pick_members(members, names).0
    }

    /// The member `name`, if present (for a single look-up; use [`Object::pick`] for several).
    pub(crate) fn get(&self, name: &'static str) -> Option<Member<'a>> {
        self.pick([name]).found[0]
    }

    /// The string value of member `name`, when it is a string.
    pub(crate) fn get_str(&self, name: &'static str) -> Option<Cow<'a, str>> {
        self.get(name).and_then(|member| member.value.string())
    }

    fn members(&self) -> Members<'a> {
        Members {
            text: self.0,
            pos: 1,
            index: 0,
            spans: &[],
        }
    }
}

/// Walk `members` and keep those named `names`; also returns where the walk stopped (the
/// closing brace, when the object is well formed).
fn pick_members<'a, const N: usize>(
    mut members: Members<'a>,
    names: [&'static str; N],
) -> (Picked<'a, N>, usize) {
    let mut found: [Option<Member<'a>>; N] = [None; N];
    for (order, (key, value)) in members.by_ref().enumerate() {
        let key = key.name();
        if let Some(slot) = names.iter().position(|name| same(name, &key)) {
            if let Some(entry) = found.get_mut(slot) {
                let order = entry.map_or(order, |first| first.order);
                *entry = Some(Member { order, value });
            }
        }
    }
    (Picked { names, found }, members.pos)
}

/// String equality written out, because the names compared are short and a call to `memcmp`
/// per comparison costs more than the comparison.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Members found by [`Object::pick`].
#[derive(Debug)]
pub(crate) struct Picked<'a, const N: usize> {
    names: [&'static str; N],
    found: [Option<Member<'a>>; N],
}

impl<'a, const N: usize> Picked<'a, N> {
    /// The member `name` (one of the picked names), if present.
    pub(crate) fn get(&self, name: &str) -> Option<Member<'a>> {
        let slot = self.names.iter().position(|picked| same(picked, name))?;
        self.found.get(slot).copied().flatten()
    }

    /// The member `name` unless it is absent or `null`.
    pub(crate) fn get_non_null(&self, name: &str) -> Option<Member<'a>> {
        self.get(name).filter(|member| !member.is_null())
    }

    /// Whether the object has a member `name` (whatever its value, `null` included).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A member name as written (without its quotes).
struct Key<'a>(&'a str);

impl<'a> Key<'a> {
    fn name(&self) -> Cow<'a, str> {
        if self.0.contains('\\') {
            Cow::Owned(unescape(self.0))
        } else {
            Cow::Borrowed(self.0)
        }
    }
}

/// The members of an object, in order, repeats included.
struct Members<'a> {
    text: &'a str,
    pos: usize,
    /// How many members were read.
    index: usize,
    /// Where the values of the members are, when known (see [`Object::pick_spanned`]).
    spans: &'a [Range<usize>],
}

impl<'a> Iterator for Members<'a> {
    type Item = (Key<'a>, Raw<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(bytes, self.pos);
        let key = Key(self.text.get(self.pos + 1..key_end.saturating_sub(1))?);
        if bytes.get(key_end) != Some(&b':') {
            return None;
        }
        let value_start = key_end + 1;
        let value_end = match self.spans.get(self.index) {
            Some(span) if span.start == value_start => span.end,
            _ => value_end(bytes, value_start),
        };
        let value = Raw(self.text.get(value_start..value_end)?);
        self.pos = value_end + usize::from(bytes.get(value_end) == Some(&b','));
        self.index += 1;
        Some((key, value))
    }
}

/// The end (exclusive) of the value starting at `pos`.
fn value_end(bytes: &[u8], pos: usize) -> usize {
    match bytes.get(pos) {
        Some(b'"') => string_end(bytes, pos),
        Some(b'{' | b'[') => container_end(bytes, pos),
        Some(_) => {
            let mut at = pos;
            while bytes
                .get(at)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']'))
            {
                at += 1;
            }
            at
        }
        None => bytes.len(),
    }
}

/// The end (exclusive) of the string whose opening quote is at `pos`.
fn string_end(bytes: &[u8], pos: usize) -> usize {
    let mut at = pos + 1;
    loop {
        at = find_special(bytes, at);
        match bytes.get(at) {
            Some(b'"') => return at + 1,
            Some(b'\\') => at += 2,
            Some(_) => at += 1,
            None => return bytes.len(),
        }
    }
}

/// The end (exclusive) of the object or array starting at `pos`.
fn container_end(bytes: &[u8], pos: usize) -> usize {
    let mut depth = 0usize;
    let mut at = pos;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => {
                at = string_end(bytes, at);
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        r#"{"a":1,"b":[true,null,{"c":"x,]}\"y"},[]],"\u0064":"\u00e9","a":-2.5e3,"e":{}}"#;

    #[test]
    fn navigates_members_and_elements() {
        let root = Object::of(Raw::new(DOC)).unwrap();
        let picked = root.pick(["a", "b", "d", "e", "zz"]);
        let a = picked.get("a").unwrap();
        assert_eq!(
            (a.order, a.value.text()),
            (0, "-2.5e3"),
            "first order, last value"
        );
        assert_eq!(picked.get("d").unwrap().value.string().unwrap(), "é");
        assert!(picked.get("e").unwrap().value.is_empty_container());
        assert!(picked.get("zz").is_none() && !picked.has("zz"));
        let elements: Vec<_> = picked.get("b").unwrap().value.elements().unwrap().collect();
        let texts: Vec<_> = elements.iter().map(|e| e.text()).collect();
        assert_eq!(texts, ["true", "null", r#"{"c":"x,]}\"y"}"#, "[]"]);
        let inner = Object::of(elements[2]).unwrap();
        assert_eq!(inner.get_str("c").unwrap(), "x,]}\"y");
        assert_eq!(elements[3].elements().unwrap().count(), 0);
        assert!(Raw::new("{}").elements().is_none());
        assert!(Object::of(Raw::new("[]")).is_none());
    }

    #[test]
    fn elements_picking_walks_each_object_once() {
        let array = Raw::new(r#"[{"t":1,"u":{"t":9},"t":2},3,{},[{"t":4}],{"v":"}"}]"#);
        let elements: Vec<_> = array.elements_picking(["t", "v"]).unwrap().collect();
        assert_eq!(elements.len(), 5);
        match &elements[0] {
            Element::Object(picked) => {
                let t = picked.get("t").unwrap();
                assert_eq!((t.order, t.value.text()), (0, "2"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(elements[1], Element::Other(raw) if raw.text() == "3"));
        assert!(matches!(&elements[2], Element::Object(picked) if !picked.has("t")));
        assert!(matches!(elements[3], Element::Other(raw) if raw.text() == r#"[{"t":4}]"#));
        assert!(
            matches!(&elements[4], Element::Object(picked) if picked.get("v").unwrap().value.text() == r#""}""#)
        );
        assert!(Raw::new("{}").elements_picking(["t"]).is_none());
    }

    #[test]
    fn spans_are_used_only_where_they_match() {
        let text = r#"{"a":[1,2],"b":"x","c":3}"#;
        let root = Object::of(Raw::new(text)).unwrap();
        let right = [5..10, 15..18, 23..24];
        let picked = root.pick_spanned(["a", "b", "c"], &right);
        assert_eq!(picked.get("a").unwrap().value.text(), "[1,2]");
        assert_eq!(picked.get("c").unwrap().value.text(), "3");
        // A span that does not start where the value does is ignored, not trusted.
        let wrong = [6..7, 0..1];
        let picked = root.pick_spanned(["a", "b", "c"], &wrong);
        assert_eq!(picked.get("a").unwrap().value.text(), "[1,2]");
        assert_eq!(picked.get("b").unwrap().value.text(), r#""x""#);
    }

    #[test]
    fn kinds_and_numbers() {
        let kinds: Vec<_> = ["{}", "[]", "\"s\"", "1", "-1", "true", "false", "null"]
            .iter()
            .map(|text| Raw::new(text).kind())
            .collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [Object, Array, String, Number, Number, Bool, Bool, Null]
        );
        assert_eq!(Raw::new("3").integer(), Some(3));
        assert_eq!(Raw::new("3.0").integer(), None);
        assert_eq!(Raw::new("3e0").integer(), None);
        assert_eq!(Raw::new("1e400").number(), None);
        assert_eq!(Raw::new("\"3\"").number(), None);
        assert_eq!(Raw::new("-0.5").number(), Some(-0.5));
    }

    #[test]
    fn never_panics_on_unexpected_text() {
        for text in [
            "{",
            "{\"a",
            "{\"a\"",
            "{\"a\":",
            "[",
            "[1,",
            "\"",
            "{\"a\":[1,{\"b\":\"}]}",
            "",
        ] {
            if let Some(object) = Object::of(Raw::new(text)) {
                let _ = object.pick(["a", "b"]);
            }
            if let Some(elements) = Raw::new(text).elements() {
                let _ = elements.count();
            }
            let _ = Raw::new(text).string();
        }
    }
}
