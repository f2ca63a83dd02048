//! Lenient typing of config values (config.md §9.3).
//!
//! Deserialising the raw structs must never stop at the first bad value: every problem is to
//! be reported at once. So each raw field is a [`Field`], which keeps a value of the wrong
//! type instead of failing, and each nested mapping an [`Object`], which sets unknown keys
//! aside instead of failing. The compiler then walks the tree and reports both with paths.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A type a config value can be coerced to, with the YAML 1.1 leniency of the Python server.
pub trait Coerce: Sized {
    /// The type as a problem message names it ("a boolean", "an integer").
    const EXPECTED: &'static str;
    /// The value typed, or `None` when it neither is nor coerces to this type.
    fn coerce(value: &Value) -> Option<Self>;
}

/// A value of the expected type, or the value found instead.
#[derive(Debug, Clone)]
pub enum Field<T> {
    /// The value, typed.
    Valid(T),
    /// The value as found, which does not have the type.
    Invalid(Value),
}

impl<T: Coerce> Field<T> {
    /// Type `value` as `T`, keeping it as found when it does not fit.
    pub fn from_value(value: Value) -> Self {
        match T::coerce(&value) {
            Some(typed) => Field::Valid(typed),
            None => Field::Invalid(value),
        }
    }
}

impl<'de, T: Coerce> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Field::from_value)
    }
}

impl Coerce for bool {
    const EXPECTED: &'static str = "a boolean (true/false, yes/no, on/off, 1/0)";
    fn coerce(value: &Value) -> Option<Self> {
        match value {
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
        }
    }
}

impl Coerce for i64 {
    const EXPECTED: &'static str = "an integer";
    fn coerce(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => {
                let digits = s.trim().strip_prefix(['-', '+']).unwrap_or(s.trim());
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.trim().parse().ok()
            }
            _ => None,
        }
    }
}

impl Coerce for f64 {
    const EXPECTED: &'static str = "a number";
    fn coerce(value: &Value) -> Option<Self> {
        let number = match value {
            Value::Number(n) => n.as_f64(),
            // Only decimal notation: Rust also parses `inf` and `NaN`, which are no durations.
            Value::String(s)
                if s.trim()
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
            {
                s.trim().parse().ok()
            }
            _ => None,
        }?;
        number.is_finite().then_some(number)
    }
}

impl Coerce for String {
    const EXPECTED: &'static str = "a string";
    fn coerce(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(s.clone()),
            // `password: 12345` is a string the YAML reader took for a number.
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// A list whose items are typed one by one, so that each bad item gets its own path.
/// `null` is the empty list.
#[derive(Debug, Clone)]
pub struct List<T>(pub Vec<Field<T>>);

impl<T: Coerce> Coerce for List<T> {
    const EXPECTED: &'static str = "a list";
    fn coerce(value: &Value) -> Option<Self> {
        match value {
            Value::Array(items) => {
                Some(List(items.iter().cloned().map(Field::from_value).collect()))
            }
            Value::Null => Some(List(Vec::new())),
            _ => None,
        }
    }
}

/// A mapping of names to entries (links, chains, …) in file order. `null` is empty.
#[derive(Debug, Clone)]
pub struct Named<T>(pub Vec<(String, Field<T>)>);

impl<T: Coerce> Coerce for Named<T> {
    const EXPECTED: &'static str = "a mapping of names to entries";
    fn coerce(value: &Value) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Named(
                map.iter()
                    .map(|(k, v)| (k.clone(), Field::from_value(v.clone())))
                    .collect(),
            )),
            Value::Null => Some(Named(Vec::new())),
            _ => None,
        }
    }
}

/// Module options, kept as written (after interpolation); each module checks its own.
/// `null` is `{}`.
#[derive(Debug, Clone, Default)]
pub struct Options(pub Map<String, Value>);

impl Coerce for Options {
    const EXPECTED: &'static str = "a mapping";
    fn coerce(value: &Value) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Options(map.clone())),
            Value::Null => Some(Options::default()),
            _ => None,
        }
    }
}

/// A mapping read into the raw struct `T`, with the keys `T` does not have set aside.
/// `null` is a mapping with no keys.
#[derive(Debug, Clone)]
pub struct Object<T> {
    /// The known keys, read into `T`.
    pub value: T,
    /// Keys that are not fields of `T`, in file order.
    pub unknown: Vec<String>,
}

impl<T: DeserializeOwned> Coerce for Object<T> {
    const EXPECTED: &'static str = "a mapping";
    fn coerce(value: &Value) -> Option<Self> {
        let map = match value {
            Value::Object(map) => map.clone(),
            Value::Null => Map::new(),
            _ => return None,
        };
        let known = field_names::<T>();
        let (known_map, unknown): (Map<String, Value>, Map<String, Value>) = map
            .into_iter()
            .partition(|(key, _)| known.contains(&key.as_str()));
        // Every raw field is lenient, so this fails only if a raw struct were written with a
        // strict field type; the mapping is then reported as not matching.
        let value = serde_json::from_value(Value::Object(known_map)).ok()?;
        Some(Object {
            value,
            unknown: unknown.into_iter().map(|(key, _)| key).collect(),
        })
    }
}

/// The keys of a raw struct, as serde knows them (after renames).
///
/// Derived `Deserialize` impls pass their field list to `deserialize_struct`; this
/// deserializer records it and stops, so the raw structs stay the one list of valid keys.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames { names: &mut names });
    names
}

struct FieldNames<'a> {
    names: &'a mut &'static [&'static str],
}

#[derive(Debug)]
struct Recorded;

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Recorded {}

impl de::Error for Recorded {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Recorded
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Recorded;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Recorded> {
        *self.names = fields;
        Err(Recorded)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Recorded> {
        Err(Recorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_accept_yaml_1_1_words_and_1_0() {
        for yes in [
            json!(true),
            json!("yes"),
            json!("On"),
            json!("Y"),
            json!(1),
            json!("1"),
            json!("TRUE"),
        ] {
            assert_eq!(bool::coerce(&yes), Some(true), "{yes}");
        }
        for no in [
            json!(false),
            json!("no"),
            json!("OFF"),
            json!("n"),
            json!(0),
            json!("0"),
        ] {
            assert_eq!(bool::coerce(&no), Some(false), "{no}");
        }
        for bad in [json!(2), json!("maybe"), json!(null), json!([]), json!(1.0)] {
            assert_eq!(bool::coerce(&bad), None, "{bad}");
        }
    }

    #[test]
    fn integers_accept_digit_strings_only() {
        assert_eq!(i64::coerce(&json!(5432)), Some(5432));
        assert_eq!(i64::coerce(&json!("5432")), Some(5432));
        assert_eq!(i64::coerce(&json!(" -3 ")), Some(-3));
        assert_eq!(i64::coerce(&json!(1.5)), None);
        assert_eq!(i64::coerce(&json!("12a")), None);
        assert_eq!(i64::coerce(&json!("")), None);
        assert_eq!(i64::coerce(&json!(true)), None);
    }

    #[test]
    fn numbers_accept_numeric_strings() {
        assert_eq!(f64::coerce(&json!(2)), Some(2.0));
        assert_eq!(f64::coerce(&json!(0.5)), Some(0.5));
        assert_eq!(f64::coerce(&json!("1.5")), Some(1.5));
        assert_eq!(f64::coerce(&json!("1e3")), Some(1000.0));
        assert_eq!(f64::coerce(&json!("inf")), None);
        assert_eq!(f64::coerce(&json!("NaN")), None);
        assert_eq!(f64::coerce(&json!("abc")), None);
    }

    #[test]
    fn strings_accept_scalars_as_their_text() {
        assert_eq!(String::coerce(&json!(12345)), Some("12345".into()));
        assert_eq!(String::coerce(&json!(1.25)), Some("1.25".into()));
        assert_eq!(String::coerce(&json!(false)), Some("false".into()));
        assert_eq!(String::coerce(&json!(null)), None);
        assert_eq!(String::coerce(&json!({})), None);
    }

    #[test]
    fn lists_type_each_item_and_null_is_empty() {
        let list = List::<String>::coerce(&json!(["a", {"b": 1}])).unwrap();
        assert!(matches!(&list.0[0], Field::Valid(s) if s == "a"));
        assert!(matches!(&list.0[1], Field::Invalid(v) if v.is_object()));
        assert!(List::<String>::coerce(&json!(null)).unwrap().0.is_empty());
        assert!(List::<String>::coerce(&json!("a")).is_none());
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        flag: Option<Field<bool>>,
        #[serde(rename = "dash-name")]
        dashed: Option<Field<i64>>,
    }

    #[test]
    fn objects_set_unknown_keys_aside() {
        assert_eq!(field_names::<Sample>(), ["flag", "dash-name"]);
        let object =
            Object::<Sample>::coerce(&json!({"flag": "yes", "extra": 1, "dash-name": "x", "z": 2}))
                .unwrap();
        assert_eq!(object.unknown, ["extra", "z"]);
        assert!(matches!(object.value.flag, Some(Field::Valid(true))));
        assert!(matches!(object.value.dashed, Some(Field::Invalid(_))));
        let empty = Object::<Sample>::coerce(&json!(null)).unwrap();
        assert!(empty.value.flag.is_none() && empty.value.dashed.is_none());
        assert!(Object::<Sample>::coerce(&json!([1])).is_none());
    }
}
