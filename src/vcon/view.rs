//! A lazy, borrowed view of JSON text for the rules: an object is its list of members with
//! their raw text, and a value is parsed only when a rule reads it. Validation looks at a few
//! dozen members of a document that may carry megabytes of recordings and transcripts; those are
//! skipped (serde_json skips without recursing), never copied or built into a tree.
//!
//! The text given here has already passed the scanner, so a parse failure is unexpected; every
//! function still returns `None` rather than panicking.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

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

/// The type of `raw` (compact text, so its first byte is the value's).
pub(crate) fn kind(raw: &RawValue) -> Kind {
    match raw.get().as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'"') => Kind::String,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'n') | None => Kind::Null,
        Some(_) => Kind::Number,
    }
}

/// The value of a string, borrowed when it has no escapes.
pub(crate) fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    if kind(raw) != Kind::String {
        return None;
    }
    serde_json::from_str::<Text<'_>>(raw.get()).ok().map(|text| text.0)
}

/// The elements of an array.
pub(crate) fn elements(raw: &RawValue) -> Option<Vec<&RawValue>> {
    if kind(raw) != Kind::Array {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// A number's value as `f64` (its text is JSON number grammar, which Rust's parser accepts);
/// `None` for a non-number or one too large for `f64`.
pub(crate) fn number(raw: &RawValue) -> Option<f64> {
    if kind(raw) != Kind::Number {
        return None;
    }
    raw.get().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A number's value when it is written as an integer (`3`, not `3.0`) that fits `i64`.
pub(crate) fn integer(raw: &RawValue) -> Option<i64> {
    if kind(raw) != Kind::Number {
        return None;
    }
    raw.get().parse::<i64>().ok()
}

/// One member of an object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    /// Document-order rank: where the key first occurs among the object's members.
    pub order: usize,
    /// The value of its last occurrence (a repeated key is reported by the scanner; the rules
    /// then read the last value, as JSON parsers generally do).
    pub value: &'a RawValue,
}

impl Member<'_> {
    /// A member whose value is `null` counts as absent for most rules (vcon.md §3.2).
    pub(crate) fn is_null(&self) -> bool {
        kind(self.value) == Kind::Null
    }
}

/// An object: its members in document order, repeats included.
#[derive(Debug)]
pub(crate) struct Object<'a> {
    members: Vec<(Text<'a>, &'a RawValue)>,
}

impl<'a> Object<'a> {
    /// View `raw` as an object; `None` when it is not one.
    pub(crate) fn of(raw: &'a RawValue) -> Option<Self> {
        Self::parse(raw.get())
    }

    /// View JSON text as an object; `None` when it is not one (or not JSON).
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        if !text.starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }

    /// The member `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<Member<'a>> {
        let mut found: Option<Member<'a>> = None;
        for (order, (key, value)) in self.members.iter().enumerate() {
            if key.0 == name {
                let order = found.map_or(order, |first| first.order);
                found = Some(Member { order, value });
            }
        }
        found
    }

    /// The member `name` unless it is absent or `null`.
    pub(crate) fn get_non_null(&self, name: &str) -> Option<Member<'a>> {
        self.get(name).filter(|member| !member.is_null())
    }

    /// Whether the object has a member `name` (whatever its value, `null` included).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.members.iter().any(|(key, _)| key.0 == name)
    }

    /// The string value of member `name`, when it is a string.
    pub(crate) fn get_str(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name).and_then(|member| string(member.value))
    }
}

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Object { members })
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A string borrowed from the JSON text when it has no escapes (serde's own `Cow<str>` always
/// copies).
#[derive(Debug)]
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}
