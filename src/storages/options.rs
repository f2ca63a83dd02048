//! Reading a storage's `options` map into its options struct: the lenient scalars of
//! config.md §9.3, every problem reported at once (`"options.<key>: …"`), and the keys kept
//! for compatibility that are ignored with a warning (modules.md §1.8).

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::coerce::{field_names, Coerce};
use crate::config::path::YamlPath;
use crate::config::Module;

/// The options of `module` as `T`, or one message per bad key. Each key is read on its own so
/// that one bad value does not hide the next; `T`'s fields all have defaults.
pub fn parse<T: DeserializeOwned>(module: &Module) -> Result<T, Vec<String>> {
    let known = field_names::<T>();
    let mut problems = Vec::new();
    for (key, value) in &module.options {
        let at = YamlPath::root().key("options").key(key);
        if !known.contains(&key.as_str()) {
            problems.push(format!(
                "{at}: unknown option of the {} module; its options are: {}",
                module.module,
                known.join(", ")
            ));
            continue;
        }
        let alone = Map::from_iter([(key.clone(), value.clone())]);
        if let Err(error) = T::deserialize(Value::Object(alone)) {
            problems.push(format!("{at}: {error}"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    T::deserialize(Value::Object(module.options.clone())).map_err(|e| vec![format!("options: {e}")])
}

/// Log the warning of modules.md §1.8 for an option accepted and ignored.
pub fn warn_ignored(module: &Module, key: &str, why: &str) {
    if module.options.contains_key(key) {
        tracing::warn!(
            storage = %module.name,
            "storages.{}.options.{key} is ignored: {why}",
            module.name
        );
    }
}

/// A value typed by the config's coercion rules (a boolean from `yes`, an integer from
/// `"10"`…), with the config's wording when it does not fit.
fn lenient<'de, T: Coerce, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
    let value = Value::deserialize(deserializer)?;
    T::coerce(&value).ok_or_else(|| D::Error::custom(format!("expected {}", T::EXPECTED)))
}

/// A boolean: `true`/`false`, `yes`/`no`, `on`/`off`, `y`/`n`, `1`/`0`.
pub fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    lenient(deserializer)
}

/// A string; a number or boolean the YAML reader typed is taken as its text.
pub fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    lenient(deserializer)
}

/// A string that must not be empty.
pub fn non_empty_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text: String = lenient(deserializer)?;
    if text.is_empty() {
        return Err(D::Error::custom("must not be empty"));
    }
    Ok(text)
}

/// A count (bytes): a non-negative integer, or a string of digits.
pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value: i64 = lenient(deserializer)?;
    u64::try_from(value).map_err(|_| D::Error::custom("expected a non-negative integer"))
}

/// Whole seconds from a number of seconds ≥ 0; a fraction is rounded up, so that a small
/// positive value never becomes 0 (which means "no expiry").
pub fn whole_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let seconds: f64 = lenient(deserializer)?;
    if !(0.0..=u64::MAX as f64).contains(&seconds) {
        return Err(D::Error::custom("expected a number of seconds ≥ 0"));
    }
    Ok(seconds.ceil() as u64)
}

/// A Unix file mode (config.md §9.3): octal digits as an integer or a string, with or without
/// `0`/`0o` (`0644`, `0o644`, `"644"`), at most `7777`.
pub fn file_mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let mode = match &value {
        Value::Number(number) => number.as_u64().and_then(mode_from_integer),
        Value::String(text) => mode_from_digits(text.trim()),
        _ => None,
    };
    mode.ok_or_else(|| {
        D::Error::custom(format!(
            "expected a file mode: octal digits such as 0644, 0o644 or \"644\", at most 7777; found {value}"
        ))
    })
}

/// A mode written as octal digits, optionally after `0o`.
fn mode_from_digits(text: &str) -> Option<u32> {
    let digits = text
        .strip_prefix("0o")
        .or_else(|| text.strip_prefix("0O"))
        .unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
}

/// A mode the YAML reader handed over as an integer. `644` arrives as 644: its decimal digits
/// are the octal digits written. But an unquoted `0o644` arrives as 420 (YAML 1.2 reads it as
/// octal; `0644` stays text), and the written form is gone. So the digits reading wins unless
/// it gives a mode nobody writes while the integer itself is a sensible mode: 420 read as
/// digits is 0o420 (the group may write what the owner cannot read), as a value 0o644.
fn mode_from_integer(integer: u64) -> Option<u32> {
    let as_digits = mode_from_digits(&integer.to_string());
    let as_value = u32::try_from(integer)
        .ok()
        .filter(|mode| *mode <= 0o7777 && owner_holds_every_grant(*mode));
    match (as_digits, as_value) {
        (Some(digits), Some(value)) if !owner_holds_every_grant(digits) => Some(value),
        (Some(digits), _) => Some(digits),
        (None, value) => value,
    }
}

/// Whether the owner has every permission the group or others have (true of every mode in
/// real use: 0644, 0600, 0755, 0750, 2775…).
fn owner_holds_every_grant(mode: u32) -> bool {
    let (owner, group, other) = ((mode >> 6) & 7, (mode >> 3) & 7, mode & 7);
    group & !owner == 0 && other & !owner == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default, deserialize_with = "file_mode")]
        mode: u32,
        #[serde(default, deserialize_with = "boolean")]
        flag: bool,
        #[serde(default, deserialize_with = "count")]
        size: u64,
        #[serde(default, deserialize_with = "whole_seconds")]
        expires: u64,
    }

    fn module(options: Value) -> Module {
        Module {
            name: "sample".into(),
            module: "sample".into(),
            options: options.as_object().cloned().unwrap_or_default(),
            retry: crate::config::Retry {
                attempts: 1,
                initial_backoff: std::time::Duration::ZERO,
                max_backoff: std::time::Duration::ZERO,
                multiplier: 1.0,
            },
        }
    }

    fn mode(value: Value) -> Option<u32> {
        parse::<Sample>(&module(json!({ "mode": value })))
            .ok()
            .map(|s| s.mode)
    }

    #[test]
    fn file_modes_in_every_written_form() {
        assert_eq!(mode(json!(644)), Some(0o644), "YAML 0644 arrives as 644");
        assert_eq!(mode(json!("0644")), Some(0o644));
        assert_eq!(mode(json!("0o644")), Some(0o644));
        assert_eq!(mode(json!("0O755")), Some(0o755));
        assert_eq!(mode(json!("644")), Some(0o644));
        assert_eq!(mode(json!(" 600 ")), Some(0o600));
        assert_eq!(mode(json!(7777)), Some(0o7777));
        assert_eq!(mode(json!(0)), Some(0));
    }

    #[test]
    fn file_modes_out_of_range_or_not_octal_are_errors() {
        for bad in [
            json!(17777),
            json!(9999),
            json!("0o10000"),
            json!("648"),
            json!(648),
            json!("0x1a4"),
            json!(""),
            json!("0o"),
            json!(-644),
            json!(6.44),
            json!(true),
            json!(null),
        ] {
            assert_eq!(mode(bad.clone()), None, "{bad}");
        }
        let problems = parse::<Sample>(&module(json!({ "mode": 9999 }))).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("options.mode: expected a file mode"),
            "{problems:?}"
        );
    }

    #[test]
    fn unquoted_yaml_modes_in_every_form() {
        // What the config's YAML reader hands the module: `0644` as text, `0o644` as 420.
        for (written, expected) in [
            ("0644", 0o644),
            ("0o644", 0o644),
            ("644", 0o644),
            ("0o640", 0o640),
            ("0o600", 0o600),
            ("0o755", 0o755),
            ("0o750", 0o750),
            ("0o664", 0o664),
            ("0o660", 0o660),
            ("0o400", 0o400),
            ("0o2775", 0o2775),
            ("0o1777", 0o1777),
            ("640", 0o640),
            ("600", 0o600),
            ("755", 0o755),
            ("700", 0o700),
            ("444", 0o444),
            ("2775", 0o2775),
        ] {
            let value: Value = serde_norway::from_str(&format!("mode: {written}")).unwrap();
            assert_eq!(
                parse::<Sample>(&module(value)).map(|s| s.mode),
                Ok(expected),
                "{written} (YAML gave {})",
                serde_norway::from_str::<Value>(&format!("mode: {written}")).unwrap()
            );
        }
    }

    #[test]
    fn lenient_scalars() {
        let sample = parse::<Sample>(&module(
            json!({ "flag": "yes", "size": "10", "expires": 1.5 }),
        ))
        .unwrap();
        assert!(sample.flag);
        assert_eq!(sample.size, 10);
        assert_eq!(sample.expires, 2, "a fraction rounds up, never down to 0");
        let sample = parse::<Sample>(&module(json!({ "flag": "Off", "expires": "0" }))).unwrap();
        assert!(!sample.flag);
        assert_eq!(sample.expires, 0);
    }

    #[test]
    fn every_problem_at_once_with_its_option_path() {
        let problems = parse::<Sample>(&module(json!({
            "flag": "maybe",
            "size": -1,
            "expires": -5,
            "colour": "blue",
            "odd key": 1,
        })))
        .unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].starts_with("options.flag: expected a boolean"));
        assert_eq!(problems[1], "options.size: expected a non-negative integer");
        assert!(problems[2].starts_with("options.expires: expected a number of seconds"));
        assert!(problems[3].starts_with(
            "options.colour: unknown option of the sample module; its options are: mode, flag, size, expires"
        ));
        assert!(problems[4].starts_with("options[\"odd key\"]: unknown option"));
    }
}
