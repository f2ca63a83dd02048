//! YAML text ⇄ the JSON document the config works on.
//!
//! The config is held as a `serde_json::Value` (key order preserved) because `POST /config`
//! posts JSON and `GET /config` answers JSON; YAML is only the file format. Writing is done
//! here rather than by `serde_norway` because its emitter leaves YAML 1.1 words such as `yes`
//! and `on` unquoted, which the Python server (a YAML 1.1 reader) would read back as booleans.

use serde_json::{Map, Number, Value};
use serde_norway::Value as Yaml;

/// Parse YAML text into a JSON document. An empty file (or one with only comments) is `null`.
/// The error message names the line of a syntax error.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut yaml: Yaml = serde_norway::from_str(text).map_err(|e| describe(&e))?;
    // Merge keys (`<<: *defaults`) are part of YAML 1.1, which the Python server reads.
    yaml.apply_merge().map_err(|e| describe(&e))?;
    to_json(yaml)
}

fn describe(error: &serde_norway::Error) -> String {
    let text = error.to_string();
    match error.location() {
        Some(location) if !text.contains("line") => format!("line {}: {text}", location.line()),
        _ => text,
    }
}

fn to_json(yaml: Yaml) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => number_to_json(&n),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, value) in mapping {
                map.insert(key_text(key)?, to_json(value)?);
            }
            Value::Object(map)
        }
        Yaml::Tagged(tagged) => {
            return Err(format!(
                "the YAML tag {} is not supported (the config is plain data)",
                tagged.tag
            ))
        }
    })
}

fn number_to_json(n: &serde_norway::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::from(i)
    } else if let Some(u) = n.as_u64() {
        Value::from(u)
    } else {
        // `.inf` and `.nan` have no JSON form; they stay as the text written.
        n.as_f64()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(n.to_string()), Value::Number)
    }
}

/// Mapping keys become strings: the Python server's YAML reader gives `1:` an integer key,
/// which its modules then compare as text anyway.
fn key_text(key: Yaml) -> Result<String, String> {
    match key {
        Yaml::String(s) => Ok(s),
        Yaml::Null => Ok("null".to_owned()),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Number(n) => Ok(n.to_string()),
        other => Err(format!("a mapping key must be a scalar, found {other:?}")),
    }
}

/// The document as YAML text in block style, every string that could be misread quoted.
pub fn write(document: &Value) -> String {
    let mut out = String::new();
    match document {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn write_mapping(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar_text(key));
        out.push(':');
        write_member(out, value, indent);
    }
}

fn write_sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        write_member(out, item, indent);
    }
}

/// A value after `key:` or `-`: nested blocks on the following lines, scalars inline.
fn write_member(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_mapping(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_sequence(out, items, indent + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_text(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// A string plain when nothing could read it as another type or as YAML syntax, else
/// double-quoted (a JSON string literal is a valid YAML double-quoted scalar).
fn scalar_text(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_owned()
    } else {
        Value::String(s.to_owned()).to_string()
    }
}

fn is_plain_safe(s: &str) -> bool {
    const YAML_WORDS: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ];
    let starts_like_text = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/');
    starts_like_text
        && !YAML_WORDS.contains(&s.to_ascii_lowercase().as_str())
        && !s.ends_with(':')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@".contains(c))
        && !s.contains(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_and_comment_only_files_are_null() {
        assert_eq!(parse("").unwrap(), Value::Null);
        assert_eq!(parse("# nothing\n").unwrap(), Value::Null);
    }

    #[test]
    fn order_merge_keys_and_scalars() {
        let doc =
            parse("b: 1\na: yes\nbase: &d {x: 1}\nc:\n  <<: *d\n  y: 2\nmode: 0644\n").unwrap();
        assert_eq!(
            doc,
            json!({"b": 1, "a": "yes", "base": {"x": 1}, "c": {"x": 1, "y": 2}, "mode": "0644"})
        );
        let keys: Vec<_> = doc.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["b", "a", "base", "c", "mode"]);
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let error = parse("a: 1\nb: [1,\nc: 2").unwrap_err();
        assert!(error.contains("line"), "{error}");
        let duplicate = parse("a: 1\na: 2\n").unwrap_err();
        assert!(
            duplicate.contains("duplicate") && duplicate.contains("line 1"),
            "{duplicate}"
        );
        assert!(parse("x: !custom 3").unwrap_err().contains("tag"));
    }

    #[test]
    fn numeric_keys_become_text() {
        assert_eq!(
            parse("1: a\ntrue: b\n").unwrap(),
            json!({"1": "a", "true": "b"})
        );
    }

    #[test]
    fn written_yaml_reads_back_identically() {
        let doc = json!({
            "links": {"tag": {"module": "tag", "options": {"tags": ["yes", "on", "x y", "123", ""]}}},
            "chains": {"main": {"links": [], "enabled": true, "timeout": 1.5, "storages": {}}},
            "weird key: x": "line\nbreak \"quoted\" #hash",
            "url": "redis://u:p@h:6379/0",
            "n": null
        });
        let text = write(&doc);
        assert!(text.contains("- \"yes\""), "{text}");
        assert_eq!(parse(&text).unwrap(), doc);
    }
}
