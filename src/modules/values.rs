//! Typed option values that check themselves as they are read, so that a bad one is reported
//! at its own path (`links.hook.options.headers.X-Bad`) with the reader's other problems:
//! URLs, headers, file modes, lifetimes in seconds, names that must not be empty.

use std::fmt;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// An http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let trimmed = text.trim();
        // `localhost:8080/hook` parses as a URL of scheme `localhost`: say what was meant.
        if !trimmed.contains("://") {
            return Err(de::Error::custom(format!(
                "'{text}' has no scheme; write http://… or https://…"
            )));
        }
        let url = Url::parse(trimmed)
            .map_err(|e| de::Error::custom(format!("'{text}' is not a URL: {e}")))?;
        match url.scheme() {
            "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(HttpUrl(url)),
            "http" | "https" => Err(de::Error::custom(format!("'{text}' has no host"))),
            scheme => Err(de::Error::custom(format!(
                "'{text}' has the scheme '{scheme}'; only http and https are supported"
            ))),
        }
    }
}

/// Headers added to requests, in file order (`name → value`); each name and value must be
/// sendable.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub HeaderMap);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut headers = HeaderMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    // Checked as the value is read, so a bad entry is reported at its key.
                    let (name, value) = map.next_value_seed(Header { name: &name })?;
                    headers.append(name, value);
                }
                Ok(Headers(headers))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// One header's value, read knowing its name.
struct Header<'n> {
    name: &'n str,
}

impl<'de> DeserializeSeed<'de> for Header<'_> {
    type Value = (HeaderName, HeaderValue);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let value = String::deserialize(deserializer)?;
        let name = HeaderName::from_bytes(self.name.as_bytes())
            .map_err(|_| de::Error::custom("is not a valid header name"))?;
        let value = HeaderValue::from_str(&value).map_err(|_| {
            de::Error::custom("has a value that cannot be sent in a header (control characters)")
        })?;
        Ok((name, value))
    }
}

/// A Unix file mode (config.md §9.3): octal digits as an integer or a string, with or without
/// `0`/`0o` (`0644`, `0o644`, `"644"`), at most `7777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let mode = match &value {
            Value::Number(number) => number.as_u64().and_then(mode_from_integer),
            Value::String(text) => mode_from_digits(text.trim()),
            _ => None,
        };
        mode.map(FileMode).ok_or_else(|| {
            de::Error::custom(format!(
                "must be a file mode: octal digits such as 0644, 0o644 or \"644\", at most 7777; found {value}"
            ))
        })
    }
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

/// Whole seconds from a number of seconds ≥ 0 (0 = no expiry); a fraction is rounded up, so
/// that a small positive value never becomes 0.
pub fn whole_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    if !(0.0..=u64::MAX as f64).contains(&seconds) {
        return Err(de::Error::custom(format!(
            "must be a number of seconds >= 0, found {seconds}"
        )));
    }
    Ok(seconds.ceil() as u64)
}

/// A string that must not be empty.
pub fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Err(de::Error::custom("must not be empty"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::path::YamlPath;
    use crate::config::read::Problems;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        mode: Option<FileMode>,
        #[serde(default)]
        headers: Headers,
        #[serde(default)]
        url: Option<HttpUrl>,
        #[serde(default, deserialize_with = "whole_seconds")]
        expires: u64,
    }

    fn read(value: Value) -> Result<Sample, Vec<String>> {
        let mut problems = Problems::new(None);
        let typed = problems.read::<Sample>(&value, &YamlPath::root().key("options"));
        let (found, _) = problems.into_parts();
        match typed {
            Some(typed) if found.is_empty() => Ok(typed),
            _ => Err(found.iter().map(ToString::to_string).collect()),
        }
    }

    fn mode(value: Value) -> Option<u32> {
        read(json!({ "mode": value }))
            .ok()
            .and_then(|s| s.mode)
            .map(|m| m.0)
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
        ] {
            assert_eq!(mode(bad.clone()), None, "{bad}");
        }
        let problems = read(json!({ "mode": 9999 })).unwrap_err();
        assert_eq!(
            problems,
            ["options.mode: must be a file mode: octal digits such as 0644, 0o644 or \"644\", at most 7777; found 9999"]
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
                read(value).ok().and_then(|s| s.mode).map(|m| m.0),
                Some(expected),
                "{written}"
            );
        }
    }

    #[test]
    fn urls_need_an_http_scheme_and_a_host() {
        let url = |text: &str| read(json!({ "url": text })).map(|s| s.url.unwrap().0.to_string());
        assert_eq!(
            url("https://example.com/hook").unwrap(),
            "https://example.com/hook"
        );
        assert_eq!(
            url(" http://127.0.0.1:8080 ").unwrap(),
            "http://127.0.0.1:8080/"
        );
        assert!(url("example.com/hook").unwrap_err()[0].contains("no scheme"));
        assert!(url("ftp://example.com").unwrap_err()[0].contains("'ftp'"));
        assert!(url("http://").is_err());
    }

    #[test]
    fn headers_urls_and_seconds_are_checked_at_their_own_path() {
        let sample = read(json!({
            "headers": {"X-Key": "k", "Accept": 1}, "url": "https://h/x", "expires": 1.5
        }))
        .unwrap();
        assert_eq!(sample.headers.0["x-key"], "k");
        assert_eq!(sample.headers.0["accept"], "1");
        assert_eq!(sample.url.unwrap().0.as_str(), "https://h/x");
        assert_eq!(sample.expires, 2, "a fraction rounds up, never down to 0");
        let problems = read(json!({
            "headers": {"Bad Name": "x", "X-Ok": "fine", "X-Ctl": "a\u{7}b"},
            "url": "ftp://h", "expires": -1
        }))
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "options.headers[\"Bad Name\"]: is not a valid header name",
                "options.headers.X-Ctl: has a value that cannot be sent in a header (control characters)",
                "options.url: 'ftp://h' has the scheme 'ftp'; only http and https are supported",
                "options.expires: must be a number of seconds >= 0, found -1",
            ]
        );
    }
}
