//! Reading a module's `options` map into its options struct (a serde struct with
//! `deny_unknown_fields`), with every problem named by its option path (`options.tags: …`) and
//! reported at once, and the scalar leniency of config.md §9.3 for the field types that need it
//! (`#[serde(deserialize_with = "…")]`).

use std::cell::RefCell;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::config::coerce::{field_names, Coerce};
use crate::config::Module;

/// Read `module.options` into `T`. Keys in `ignored` are accepted for compatibility and dropped
/// with a warning (modules.md §1.8); unknown keys and bad values are errors, each message
/// starting with its option path.
pub fn parse<T: DeserializeOwned>(module: &Module, ignored: &[&str]) -> Result<T, Vec<String>> {
    parse_checked(module, ignored, Ok)
}

/// As [`parse`], then `check` the typed options (ranges, URLs, programs…). `check` runs even
/// when unknown keys were found, so that every problem is reported at once.
pub fn parse_checked<T: DeserializeOwned, U>(
    module: &Module,
    ignored: &[&str],
    check: impl FnOnce(T) -> Result<U, Vec<String>>,
) -> Result<U, Vec<String>> {
    let (typed, mut problems) = read::<T>(module, ignored);
    let checked = typed.map(check);
    match checked {
        Some(Ok(built)) if problems.is_empty() => Ok(built),
        Some(Err(more)) => {
            problems.extend(more);
            Err(problems)
        }
        _ => Err(problems),
    }
}

/// The typed options when every value could be read, and the problems found.
fn read<T: DeserializeOwned>(module: &Module, ignored: &[&str]) -> (Option<T>, Vec<String>) {
    let known = field_names::<T>();
    let mut options = Map::new();
    let mut problems = Vec::new();
    for (key, value) in &module.options {
        if ignored.contains(&key.as_str()) {
            tracing::warn!(module = %module.name, "options.{key} is accepted for compatibility and ignored");
        } else if known.contains(&key.as_str()) {
            options.insert(key.clone(), value.clone());
        } else {
            problems.push(format!(
                "options.{key}: unknown option; the options of {} are: {}",
                module.module,
                known.join(", ")
            ));
        }
    }
    // serde stops at the first bad value: drop it and read again, so that every bad value is
    // reported (at most one pass per option).
    let mut failed = Vec::new();
    for _ in 0..=options.len() {
        let failed_key = RefCell::new(None);
        let keyed = Keyed {
            options: options.clone(),
            failed_key: &failed_key,
        };
        match T::deserialize(keyed) {
            Ok(parsed) => return (Some(parsed), problems),
            Err(error) => match failed_key.into_inner() {
                Some(key) => {
                    problems.push(format!("options.{key}: {error}"));
                    // In file order: `remove` would move the last key into the gap.
                    options.shift_remove(&key);
                    failed.push(key);
                }
                None => {
                    // A required option whose bad value was already reported is not missing.
                    match missing_option(&error.to_string()) {
                        Some(field) if failed.iter().any(|f| f == field) => {}
                        Some(field) => problems.push(format!("options.{field}: required")),
                        None => problems.push(format!("options: {error}")),
                    }
                    return (None, problems);
                }
            },
        }
    }
    (None, problems)
}

/// The option serde's "missing field" message names.
fn missing_option(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

/// The options map as a deserializer that remembers which key a value error belongs to.
struct Keyed<'a> {
    options: Map<String, Value>,
    failed_key: &'a RefCell<Option<String>>,
}

impl<'de> Deserializer<'de> for Keyed<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(KeyedAccess {
            entries: self.options.into_iter(),
            value: None,
            failed_key: self.failed_key,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

struct KeyedAccess<'a> {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
    failed_key: &'a RefCell<Option<String>>,
}

impl<'de> MapAccess<'de> for KeyedAccess<'_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        *self.failed_key.borrow_mut() = Some(key.clone());
        self.value = Some(value);
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self.value.take().unwrap_or(Value::Null);
        let typed = seed.deserialize(value)?;
        // Read fine: a later error (a missing required option) is not this key's.
        *self.failed_key.borrow_mut() = None;
        Ok(typed)
    }
}

/// A scalar with the leniency of config.md §9.3 (`yes`/`no` booleans, numeric strings…).
pub fn lenient<'de, D: Deserializer<'de>, T: Coerce>(deserializer: D) -> Result<T, D::Error> {
    let value = Value::deserialize(deserializer)?;
    T::coerce(&value).ok_or_else(|| expected(T::EXPECTED, &value))
}

/// As [`lenient`], with `null` as `None`.
pub fn lenient_option<'de, D: Deserializer<'de>, T: Coerce>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    if value.is_null() {
        return Ok(None);
    }
    T::coerce(&value)
        .map(Some)
        .ok_or_else(|| expected(T::EXPECTED, &value))
}

/// A list of strings (scalars taken as their text); `null` is the empty list.
pub fn strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    match &value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                String::coerce(item).ok_or_else(|| {
                    de::Error::custom(format!("item {i}: {}", found("a string", item)))
                })
            })
            .collect(),
        _ => Err(expected("a list of strings", &value)),
    }
}

/// A mapping of names to strings (scalars taken as their text), in file order; `null` is empty.
pub fn string_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, String)>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    match &value {
        Value::Null => Ok(Vec::new()),
        Value::Object(map) => map
            .iter()
            .map(|(key, item)| {
                String::coerce(item)
                    .map(|text| (key.clone(), text))
                    .ok_or_else(|| de::Error::custom(format!("{key}: {}", found("a string", item))))
            })
            .collect(),
        _ => Err(expected("a mapping of names to strings", &value)),
    }
}

fn expected<E: de::Error>(what: &str, value: &Value) -> E {
    E::custom(found(what, value))
}

fn found(what: &str, value: &Value) -> String {
    let kind = match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    };
    format!("expected {what}, found {kind}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Retry;
    use serde_json::json;
    use std::time::Duration;

    /// A module instance for tests: `options` must be a JSON object.
    pub(crate) fn module(kind: &str, options: Value) -> Module {
        Module {
            name: format!("my_{kind}"),
            module: kind.to_owned(),
            options: options.as_object().cloned().unwrap_or_default(),
            retry: Retry {
                attempts: 3,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
                multiplier: 2.0,
            },
        }
    }

    fn default_flag() -> bool {
        true
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default = "default_flag", deserialize_with = "lenient")]
        flag: bool,
        #[serde(default, deserialize_with = "lenient_option")]
        count: Option<i64>,
        #[serde(default, deserialize_with = "strings")]
        names: Vec<String>,
        #[serde(rename = "needed-url", deserialize_with = "lenient")]
        url: String,
    }

    #[test]
    fn values_are_lenient_and_defaults_apply() {
        let parsed: Sample = parse(
            &module(
                "x",
                json!({"needed-url": "u", "count": "12", "names": ["a", 5]}),
            ),
            &[],
        )
        .unwrap();
        assert!(parsed.flag);
        assert_eq!(parsed.count, Some(12));
        assert_eq!(parsed.names, ["a", "5"]);
        assert_eq!(parsed.url, "u");
        let parsed: Sample = parse(
            &module(
                "x",
                json!({"needed-url": "u", "flag": "no", "count": null, "names": null}),
            ),
            &[],
        )
        .unwrap();
        assert!(!parsed.flag);
        assert_eq!(parsed.count, None);
        assert!(parsed.names.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let problems = parse::<Sample>(
            &module("x", json!({"flag": "maybe", "extra": 1, "count": 1.5, "names": [[]], "after_link": ["y"]})),
            &["after_link"],
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "options.extra: unknown option; the options of x are: flag, count, names, needed-url",
                "options.flag: expected a boolean (true/false, yes/no, on/off, 1/0), found 'maybe'",
                "options.count: expected an integer, found 1.5",
                "options.names: item 0: expected a string, found a list",
                "options.needed-url: required",
            ]
        );
        let problems =
            parse::<Sample>(&module("x", json!({"needed-url": ["no"]})), &[]).unwrap_err();
        assert_eq!(
            problems,
            ["options.needed-url: expected a string, found a list"]
        );
    }
}
