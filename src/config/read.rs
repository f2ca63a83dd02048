//! Reading the configuration document into typed settings: one reader for the core sections
//! and for every module's `options`, so that both report problems the same way.
//!
//! A setting is a field of a serde struct — its type, its default (`#[serde(default = "…")]`)
//! and its doc comment in one place. [`Problems::read`] deserialises such a struct from the
//! document through a deserializer of its own that
//!
//! - knows where it is (a [`YamlPath`] of segments, so a key `weird.key` is one key and an index
//!   stays outside a quoted key), and so locates every problem and finds its line in the file;
//! - applies the scalar leniency of config.md §9.3 wherever a field asks for a type (`yes` for a
//!   boolean, `"10"` for an integer, `12345` for a string, `null` for an empty list), so no field
//!   needs a `deserialize_with` for it;
//! - goes on after a problem: serde stops at the first error, so the reader notes where it was,
//!   reads again without that value, and repeats until the struct reads, reporting each problem
//!   once. A missing required key sets its whole mapping aside.
//!
//! One wording per kind of problem comes from [`ReadError`]; checks that a type cannot express
//! (ranges, names, references) report through [`Problems::error`] with the same paths.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde::Deserialize;
use serde_json::Value;

use super::locate::line_of;
use super::path::YamlPath;
use super::suggest::nearest;
use super::ConfigProblem;
use crate::problem::Loc;

/// The problems and warnings of one reading of a configuration, with what locating them
/// needs: the file text (for lines), the settings an environment variable supplied, and the
/// values whose `${VAR}` could not be expanded (a problem there would only repeat that one).
#[derive(Debug, Default)]
pub struct Problems<'s> {
    source: Option<&'s str>,
    problems: Vec<ConfigProblem>,
    warnings: Vec<String>,
    unresolved: HashSet<YamlPath>,
    from_env: HashMap<YamlPath, String>,
}

impl<'s> Problems<'s> {
    /// Problems of a document read from `source` (`None`: posted, no lines to give).
    pub fn new(source: Option<&'s str>) -> Self {
        Problems {
            source,
            ..Problems::default()
        }
    }

    /// A problem at `path`; dropped when the value there is an unexpanded `${VAR}`.
    pub fn error(&mut self, path: &YamlPath, message: impl Into<String>) {
        if self.unresolved.contains(path) {
            return;
        }
        let mut message = message.into();
        let line = match self.from_env.get(path) {
            Some(variable) => {
                message = format!(
                    "{message} (from environment variable {variable}, which overrides {path})"
                );
                None
            }
            None => self
                .source
                .and_then(|source| line_of(source, path.segments())),
        };
        let problem = ConfigProblem {
            path: path.clone(),
            line,
            message,
        };
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    /// A `${VAR}` that could not be expanded; later problems at the same path are dropped.
    pub fn unresolved(&mut self, path: &YamlPath, message: String) {
        self.error(path, message);
        self.unresolved.insert(path.clone());
    }

    /// The value at `path` comes from environment variable `variable`: its problems say so and
    /// have no line.
    pub fn from_env(&mut self, path: &YamlPath, variable: impl Into<String>) {
        self.from_env.insert(path.clone(), variable.into());
    }

    /// Something an operator should know that does not make the configuration invalid.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// Take the problems of `other` that `keep` selects (another reading of the same
    /// document, such as one with the environment laid over it).
    pub fn adopt(&mut self, other: Problems<'_>, keep: impl Fn(&ConfigProblem) -> bool) {
        for problem in other.problems.into_iter().filter(|p| keep(p)) {
            if !self.problems.contains(&problem) {
                self.problems.push(problem);
            }
        }
    }

    /// Whether no problem was found so far.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems found — in file order where they have a line, then those without one
    /// in the order found — and the warnings.
    pub fn into_parts(mut self) -> (Vec<ConfigProblem>, Vec<String>) {
        self.problems
            .sort_by_key(|problem| problem.line.unwrap_or(usize::MAX));
        (self.problems, self.warnings)
    }

    /// Read `value` (found at `at`) as `T`, reporting every problem. `None` when `T` could not
    /// be read at all (the value is not a mapping, or a required key of it is missing).
    pub fn read<T: DeserializeOwned>(&mut self, value: &Value, at: &YamlPath) -> Option<T> {
        let mut set_aside: Vec<YamlPath> = Vec::new();
        loop {
            let failed_at = RefCell::new(None);
            let reader = Reader {
                value,
                path: at.clone(),
                set_aside: &set_aside,
                failed_at: &failed_at,
            };
            let error = match T::deserialize(reader) {
                Ok(typed) => return Some(typed),
                Err(error) => error,
            };
            let path = failed_at.into_inner().unwrap_or_else(|| at.clone());
            match &error {
                ReadError::Missing(field) => {
                    let field_path = path.key(field);
                    // A required value already reported as bad is not missing as well.
                    if !set_aside.contains(&field_path) {
                        self.error(&field_path, error.to_string());
                    }
                }
                _ => self.error(&path, error.to_string()),
            }
            if path == *at || set_aside.contains(&path) {
                return None;
            }
            set_aside.push(path);
        }
    }
}

/// Why a value could not be read, one wording per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    /// A value of another type than the setting's.
    WrongType {
        /// "a boolean (true/false, yes/no, on/off, 1/0)", "an integer >= 0", …
        expected: String,
        /// The value found, as [`describe`] shows it.
        found: String,
    },
    /// A key the mapping does not have.
    UnknownKey {
        key: String,
        /// The mapping's keys.
        valid: &'static [&'static str],
    },
    /// A required key is absent (the path is the mapping's).
    Missing(&'static str),
    /// A word that is not one of the accepted ones.
    UnknownWord {
        word: String,
        valid: &'static [&'static str],
    },
    /// Anything else a setting's own type or check says.
    Invalid(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::WrongType { expected, found } => {
                write!(f, "must be {expected}, found {found}")
            }
            ReadError::UnknownKey { key, valid } => match nearest(key, valid) {
                Some(close) => write!(f, "unknown key {key:?} (did you mean {close:?}?)"),
                None if valid.is_empty() => write!(f, "unknown key {key:?}; no key is valid here"),
                None => write!(f, "unknown key {key:?}; valid keys: {}", valid.join(", ")),
            },
            ReadError::Missing(_) => f.write_str("is required"),
            ReadError::UnknownWord { word, valid } => {
                write!(f, "must be one of {}, found {word:?}", valid.join(", "))?;
                match nearest(word, valid) {
                    Some(close) => write!(f, " (did you mean {close:?}?)"),
                    None => Ok(()),
                }
            }
            ReadError::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ReadError {}

impl de::Error for ReadError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        ReadError::Invalid(message.to_string())
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        ReadError::WrongType {
            expected: expected.to_string(),
            found: unexpected.to_string(),
        }
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::invalid_type(unexpected, expected)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        ReadError::UnknownKey {
            key: field.to_owned(),
            valid: expected,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        ReadError::UnknownWord {
            word: variant.to_owned(),
            valid: expected,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        ReadError::Missing(field)
    }
}

/// A found value as a message shows it: scalars as written, collections by kind.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
        scalar => scalar.to_string(),
    }
}

/// What booleans are expected as.
pub const BOOLEAN: &str = "a boolean (true/false, yes/no, on/off, 1/0)";

/// The deserializer of one value of the document, at its path.
struct Reader<'v, 'c> {
    value: &'v Value,
    path: YamlPath,
    /// Values a previous reading failed on: read as if absent.
    set_aside: &'c [YamlPath],
    /// Where the innermost failure was; set once, by the reader closest to it.
    failed_at: &'c RefCell<Option<YamlPath>>,
}

impl<'v, 'c> Reader<'v, 'c> {
    fn child(&self, value: &'v Value, path: YamlPath) -> Reader<'v, 'c> {
        Reader {
            value,
            path,
            set_aside: self.set_aside,
            failed_at: self.failed_at,
        }
    }

    fn note_failure(&self, path: &YamlPath) {
        let mut failed_at = self.failed_at.borrow_mut();
        if failed_at.is_none() {
            *failed_at = Some(path.clone());
        }
    }

    fn wrong_type(&self, expected: &str) -> ReadError {
        ReadError::WrongType {
            expected: expected.to_owned(),
            found: describe(self.value),
        }
    }

    /// An integer, from a number or a string of decimal digits.
    fn integer(&self, expected: &str) -> Result<i128, ReadError> {
        let parsed = match self.value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            Value::String(s) => {
                let text = s.trim();
                let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    text.parse().ok()
                } else {
                    None
                }
            }
            _ => None,
        };
        parsed.ok_or_else(|| self.wrong_type(expected))
    }

    /// An integer within the range of the type asked for.
    fn bounded(&self, min: i128, max: i128) -> Result<i128, ReadError> {
        let expected = if min == 0 {
            "an integer >= 0"
        } else {
            "an integer"
        };
        let value = self.integer(expected)?;
        if value < min {
            return Err(ReadError::Invalid(format!(
                "must be an integer >= {min}, found {value}"
            )));
        }
        if value > max {
            return Err(ReadError::Invalid(format!(
                "must be an integer <= {max}, found {value}"
            )));
        }
        Ok(value)
    }

    /// A finite number, from a number or a numeric string.
    fn number(&self) -> Result<f64, ReadError> {
        let number = match self.value {
            Value::Number(n) => n.as_f64(),
            // Only decimal notation: Rust also parses `inf` and `NaN`, which are no numbers here.
            Value::String(s)
                if s.trim()
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
            {
                s.trim().parse().ok()
            }
            _ => None,
        };
        number
            .filter(|n| n.is_finite())
            .ok_or_else(|| self.wrong_type("a number"))
    }

    /// A string; a number or boolean the YAML reader typed is taken as its text.
    fn text(&self) -> Result<String, ReadError> {
        match self.value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(self.wrong_type("a string")),
        }
    }
}

macro_rules! integers {
    ($($method:ident $visit:ident $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
            let value = self.bounded(<$ty>::MIN as i128, <$ty>::MAX as i128)?;
            // `bounded` checked the range of the type.
            visitor.$visit(value as $ty)
        }
    )*};
}

impl<'de> Deserializer<'de> for Reader<'_, '_> {
    type Error = ReadError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            // The number's own deserializer keeps its exact text (arbitrary precision).
            Value::Number(n) => n
                .clone()
                .deserialize_any(visitor)
                .map_err(de::Error::custom),
            Value::String(s) => visitor.visit_str(s),
            Value::Array(_) => self.deserialize_seq(visitor),
            Value::Object(_) => self.deserialize_map(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        let boolean = match self.value {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => match n.as_i64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            // Quoted or not: the Python server's YAML 1.1 reader took `yes` as a boolean, and
            // interpolation (`${FLAG:-1}`) always produces text.
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "y" | "1" => Some(true),
                "false" | "no" | "off" | "n" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        match boolean {
            Some(b) => visitor.visit_bool(b),
            None => Err(self.wrong_type(BOOLEAN)),
        }
    }

    integers! {
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16, deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64, deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visitor.visit_f64(self.number()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visitor.visit_string(self.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visitor.visit_byte_buf(self.text()?.into_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            _ => Err(self.wrong_type("null")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        visitor.visit_newtype_struct(self)
    }

    /// A list; `null` is the empty list (config.md §9.3).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        let items: &[Value] = match self.value {
            Value::Array(items) => items,
            Value::Null => &[],
            _ => return Err(self.wrong_type("a list")),
        };
        visitor.visit_seq(Items {
            reader: &self,
            items: items.iter().enumerate(),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        self.deserialize_seq(visitor)
    }

    /// A mapping kept as one (names to values); `null` is the empty mapping.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        self.entries(visitor, false)
    }

    /// A mapping of settings: `null` is the empty mapping (every default), and a key set to
    /// `null` counts as absent.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        self.entries(visitor, true)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        match self.value {
            // A word: the common case (`method: rate`); YAML may have typed it.
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                visitor.visit_enum(self.text()?.into_deserializer())
            }
            other => other
                .clone()
                .deserialize_enum(name, variants, visitor)
                .map_err(de::Error::custom),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visitor.visit_unit()
    }
}

impl<'v> Reader<'v, '_> {
    fn entries<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        settings: bool,
    ) -> Result<V::Value, ReadError> {
        let entries = match self.value {
            Value::Object(map) => Some(map.iter()),
            Value::Null => None,
            _ => return Err(self.wrong_type("a mapping")),
        };
        visitor.visit_map(Entries {
            reader: &self,
            entries: entries.into_iter().flatten(),
            value: None,
            settings,
        })
    }
}

/// The items of a list, each read at its own index; set-aside items are skipped (the others
/// keep their index).
struct Items<'r, 'v, 'c, I> {
    reader: &'r Reader<'v, 'c>,
    items: I,
}

impl<'de, 'v, I> SeqAccess<'de> for Items<'_, 'v, '_, I>
where
    I: Iterator<Item = (usize, &'v Value)>,
{
    type Error = ReadError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ReadError> {
        let Some((index, item)) = self.items.by_ref().find(|(index, _)| {
            !self
                .reader
                .set_aside
                .contains(&self.reader.path.index(*index))
        }) else {
            return Ok(None);
        };
        let child = self.reader.child(item, self.reader.path.index(index));
        let path = child.path.clone();
        seed.deserialize(child).map(Some).inspect_err(|_| {
            self.reader.note_failure(&path);
        })
    }
}

/// The entries of a mapping, each value read at its own key.
struct Entries<'r, 'v, 'c, I> {
    reader: &'r Reader<'v, 'c>,
    entries: I,
    value: Option<(&'v Value, YamlPath)>,
    /// A mapping of settings: `null` values count as absent.
    settings: bool,
}

impl<'de, 'v, I> MapAccess<'de> for Entries<'_, 'v, '_, I>
where
    I: Iterator<Item = (&'v String, &'v Value)>,
{
    type Error = ReadError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ReadError> {
        let reader = self.reader;
        let settings = self.settings;
        let Some((key, value)) = self.entries.by_ref().find(|(key, value)| {
            let absent = settings && value.is_null();
            !absent && !reader.set_aside.contains(&reader.path.key(key))
        }) else {
            return Ok(None);
        };
        let path = reader.path.key(key);
        let read = seed.deserialize(key.as_str().into_deserializer());
        if read.is_err() {
            reader.note_failure(&path);
        }
        self.value = Some((value, path));
        read.map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ReadError> {
        let (value, path) = self
            .value
            .take()
            .ok_or_else(|| ReadError::Invalid("a value was read before its key".into()))?;
        let child = self.reader.child(value, path.clone());
        seed.deserialize(child).inspect_err(|_| {
            self.reader.note_failure(&path);
        })
    }
}

/// Entries of a named section (`links`, `chains`, …), in file order: `name → T`.
#[derive(Debug, Clone)]
pub struct Named<T>(pub Vec<(String, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, T>()? {
                    entries.push((name, value));
                }
                Ok(Named(entries))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// Seconds ≥ 0 as a duration (`timeout: 2.5`).
pub fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    duration(f64::deserialize(deserializer)?, false)
}

/// Seconds > 0 as a duration.
pub fn positive_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    duration(f64::deserialize(deserializer)?, true)
}

/// Seconds > 0 as a duration, or absent.
pub fn optional_positive_seconds<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    Option::<f64>::deserialize(deserializer)?
        .map(|value| duration(value, true))
        .transpose()
}

/// Seconds ≥ 0 as a duration, or absent.
pub fn optional_seconds<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    Option::<f64>::deserialize(deserializer)?
        .map(|value| duration(value, false))
        .transpose()
}

fn duration<E: de::Error>(value: f64, positive: bool) -> Result<Duration, E> {
    let fits = if positive { value > 0.0 } else { value >= 0.0 };
    if !fits {
        let bound = if positive { "> 0" } else { ">= 0" };
        return Err(E::custom(format!(
            "must be a number of seconds {bound}, found {value}"
        )));
    }
    Duration::try_from_secs_f64(value)
        .map_err(|_| E::custom(format!("{value} seconds is too long")))
}

/// An integer of at least `MIN` (`workers: 4`).
pub fn at_least<'de, D, T, const MIN: u64>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let value = u64::deserialize(deserializer)?;
    if value < MIN {
        return Err(de::Error::custom(format!(
            "must be an integer >= {MIN}, found {value}"
        )));
    }
    T::try_from(value).map_err(|_| de::Error::custom(format!("{value} is too large")))
}

/// An integer of at least `MIN`, or absent.
pub fn optional_at_least<'de, D, T, const MIN: u64>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct AtLeast<T, const MIN: u64>(T);
    impl<'de, T: TryFrom<u64>, const MIN: u64> Deserialize<'de> for AtLeast<T, MIN> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            at_least::<D, T, MIN>(deserializer).map(AtLeast)
        }
    }
    Ok(Option::<AtLeast<T, MIN>>::deserialize(deserializer)?.map(|AtLeast(value)| value))
}

/// The path of a problem a module's options found, below the module's `options` key.
pub fn option_path(options_at: &YamlPath, relative: &[Loc]) -> YamlPath {
    relative
        .iter()
        .fold(options_at.clone(), |path, segment| match segment {
            Loc::Key(key) => path.key(key),
            Loc::Index(index) => path.index(*index),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn default_true() -> bool {
        true
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Section {
        #[serde(default = "default_true")]
        flag: bool,
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        names: Vec<String>,
        #[serde(default)]
        inner: Inner,
        #[serde(rename = "needed-url")]
        url: String,
        #[serde(default, with = "method")]
        method: Method,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default, deserialize_with = "optional_positive_seconds")]
        timeout: Option<Duration>,
        #[serde(default)]
        ratio: f64,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Method {
        #[default]
        Rate,
        Percentage,
    }

    mod method {
        pub use serde::Deserialize;
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<super::Method, D::Error> {
            super::Method::deserialize(d)
        }
    }

    fn read<T: DeserializeOwned>(value: Value) -> (Option<T>, Vec<String>) {
        let mut problems = Problems::new(None);
        let typed = problems.read::<T>(&value, &YamlPath::root().key("s"));
        let (found, _) = problems.into_parts();
        (typed, found.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn scalars_are_lenient_and_defaults_apply() {
        let (section, problems) = read::<Section>(json!({
            "needed-url": 8080, "flag": "no", "count": "12", "names": ["a", 5, true],
            "inner": {"timeout": "2.5", "ratio": 1}, "method": "percentage"
        }));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            section.unwrap(),
            Section {
                flag: false,
                count: Some(12),
                names: vec!["a".into(), "5".into(), "true".into()],
                inner: Inner {
                    timeout: Some(Duration::from_millis(2500)),
                    ratio: 1.0
                },
                url: "8080".into(),
                method: Method::Percentage,
            }
        );
        let (section, problems) =
            read::<Section>(json!({"needed-url": "u", "flag": null, "names": null, "inner": null}));
        assert!(problems.is_empty(), "{problems:?}");
        let section = section.unwrap();
        assert!(section.flag, "null counts as absent");
        assert!(section.names.is_empty());
    }

    #[test]
    fn every_problem_is_reported_once_with_its_path() {
        let (section, problems) = read::<Section>(json!({
            "flag": "maybe", "extra": 1, "count": -3, "names": ["ok", ["no"], {"x": 1}],
            "inner": {"timeout": 0, "ratio": "half", "weird.key": 1},
            "method": "rat"
        }));
        assert!(section.is_none());
        assert_eq!(
            problems,
            [
                "s.flag: must be a boolean (true/false, yes/no, on/off, 1/0), found \"maybe\"",
                "s.extra: unknown key \"extra\"; valid keys: flag, count, names, inner, needed-url, method",
                "s.count: must be an integer >= 0, found -3",
                "s.names[1]: must be a string, found a list",
                "s.names[2]: must be a string, found a mapping",
                "s.inner.timeout: must be a number of seconds > 0, found 0",
                "s.inner.ratio: must be a number, found \"half\"",
                "s.inner[\"weird.key\"]: unknown key \"weird.key\"; valid keys: timeout, ratio",
                "s.method: must be one of rate, percentage, found \"rat\" (did you mean \"rate\"?)",
                "s.needed-url: is required",
            ]
        );
    }

    #[test]
    fn a_bad_required_value_is_not_also_missing() {
        let (section, problems) = read::<Section>(json!({"needed-url": ["x"], "flg": true}));
        assert!(section.is_none());
        assert_eq!(
            problems,
            [
                "s.needed-url: must be a string, found a list",
                "s.flg: unknown key \"flg\" (did you mean \"flag\"?)",
            ]
        );
        let (_, problems) = read::<Section>(json!("text"));
        assert_eq!(problems, ["s: must be a mapping, found \"text\""]);
    }

    #[test]
    fn named_sections_keep_file_order_and_go_on_after_a_bad_entry() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            module: String,
        }
        let (named, problems) = read::<Named<Entry>>(json!({
            "b": {"module": "x"}, "bad": {"modul": "y"}, "a": {"module": 1}
        }));
        let names: Vec<(String, String)> = named
            .unwrap()
            .0
            .into_iter()
            .map(|(name, entry)| (name, entry.module))
            .collect();
        assert_eq!(names, [("b".into(), "x".into()), ("a".into(), "1".into())]);
        assert_eq!(
            problems,
            [
                "s.bad.modul: unknown key \"modul\" (did you mean \"module\"?)",
                "s.bad.module: is required",
            ]
        );
    }

    #[test]
    fn environment_values_are_named_and_have_no_line() {
        let source = "s:\n  count: 1\n";
        let mut problems = Problems::new(Some(source));
        let at = YamlPath::root().key("s");
        problems.from_env(&at.key("count"), "MY_COUNT");
        problems.error(&at.key("count"), "must be an integer >= 0, found -1");
        problems.error(&at.key("flag"), "bad");
        let (found, _) = problems.into_parts();
        assert_eq!(found[0].line, Some(1), "the deepest step found: s");
        assert_eq!(found[1].line, None, "after those with a line");
        assert_eq!(
            found[1].message,
            "must be an integer >= 0, found -1 (from environment variable MY_COUNT, which overrides s.count)"
        );
    }

    #[test]
    fn numbers_kept_as_values_keep_their_text() {
        let (value, problems) = read::<std::collections::BTreeMap<String, Value>>(
            json!({"big": 12345678901234567890u64}),
        );
        assert!(problems.is_empty());
        assert_eq!(value.unwrap()["big"].to_string(), "12345678901234567890");
    }

    #[test]
    fn ranges_of_integers() {
        #[derive(Debug, Deserialize)]
        struct Counts {
            #[serde(deserialize_with = "at_least::<_, usize, 1>")]
            workers: usize,
            #[serde(default, deserialize_with = "optional_at_least::<_, u64, 5>")]
            ttl: Option<u64>,
            small: u8,
        }
        let (counts, problems) = read::<Counts>(json!({"workers": "3", "ttl": 5, "small": 255}));
        assert!(problems.is_empty(), "{problems:?}");
        let counts = counts.unwrap();
        assert_eq!(
            (counts.workers, counts.ttl, counts.small),
            (3, Some(5), 255)
        );
        let (_, problems) = read::<Counts>(json!({"workers": 0, "ttl": 4, "small": 256}));
        assert_eq!(
            problems,
            [
                "s.workers: must be an integer >= 1, found 0",
                "s.ttl: must be an integer >= 5, found 4",
                "s.small: must be an integer <= 255, found 256",
            ]
        );
    }
}
