//! `${VAR}` interpolation of string values (config.md §9.1).
//!
//! Only values are scanned, never keys. The document as written is kept for `GET /config`;
//! interpolation produces a second, expanded copy that the compiler types.

use serde_json::Value;

use super::path::YamlPath;
use super::Env;

/// An interpolation failure at one path.
#[derive(Debug, Clone, PartialEq)]
pub struct Unresolved {
    /// Where the string is.
    pub path: YamlPath,
    /// Which variable is unset, or which reference is malformed.
    pub message: String,
}

/// The document with every string value expanded, and the references that could not be.
/// A string that fails keeps its text as written.
pub fn interpolate(document: &Value, env: &Env) -> (Value, Vec<Unresolved>) {
    let mut failures = Vec::new();
    let expanded = expand_value(document, &YamlPath::root(), env, &mut failures);
    (expanded, failures)
}

fn expand_value(
    value: &Value,
    path: &YamlPath,
    env: &Env,
    failures: &mut Vec<Unresolved>,
) -> Value {
    match value {
        Value::String(text) => match expand(text, env) {
            Ok(expanded) => Value::String(expanded),
            Err(message) => {
                failures.push(Unresolved {
                    path: path.clone(),
                    message,
                });
                value.clone()
            }
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| expand_value(item, &path.index(i), env, failures))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), expand_value(v, &path.key(k), env, failures)))
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

/// One `${…}` reference: the variable, and its default when written `${VAR:-default}`.
struct Reference<'a> {
    name: &'a str,
    default: Option<&'a str>,
    /// Bytes of the text the reference takes, from `${` to `}` inclusive.
    len: usize,
}

/// Parse a reference at the start of `text`, which begins with `${`.
fn reference(text: &str) -> Option<Reference<'_>> {
    let body = text.strip_prefix("${")?;
    let close = body.find('}')?;
    let inner = &body[..close];
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    is_variable_name(name).then_some(Reference {
        name,
        default,
        len: close + 3,
    })
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expand one string. Errors name every unset variable, or the malformed reference.
pub fn expand(text: &str, env: &Env) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut unset = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if tail.starts_with("${") {
            let Some(found) = reference(tail) else {
                return Err(format!(
                    "malformed reference {:?}: write ${{VAR}} or ${{VAR:-default}} (VAR is letters, digits \
                     and _), or $${{ for a literal ${{",
                    tail.split('}').next().unwrap_or(tail)
                ));
            };
            match (env.get(found.name), found.default) {
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => unset.push(found.name),
            }
            rest = &tail[found.len..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    match unset.as_slice() {
        [] => Ok(out),
        [one] => Err(format!(
            "environment variable {one} is not set (referenced as ${{{one}}})"
        )),
        many => Err(format!(
            "environment variables {} are not set",
            many.join(", ")
        )),
    }
}

/// Whether the whole string is exactly one `${VAR}` or `${VAR:-default}` reference: such a
/// value names a secret without containing it, so `GET /config` shows it as written.
pub fn is_single_reference(text: &str) -> bool {
    text.starts_with("${") && reference(text).is_some_and(|r| r.len == text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    #[test]
    fn forms_of_references() {
        let env = env(&[("HOST", "h.example"), ("EMPTY", ""), ("PORT", "6380")]);
        assert_eq!(
            expand("https://${HOST}/hook", &env).unwrap(),
            "https://h.example/hook"
        );
        assert_eq!(expand("${PORT:-5432}", &env).unwrap(), "6380");
        assert_eq!(expand("${PG_PORT:-5432}", &env).unwrap(), "5432");
        assert_eq!(expand("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand("${NOPE:-}", &env).unwrap(), "");
        // The default is not itself interpolated.
        assert_eq!(expand("${NOPE:-$HOME}", &env).unwrap(), "$HOME");
        assert_eq!(expand("a $${HOST} b", &env).unwrap(), "a ${HOST} b");
        assert_eq!(expand("cost: $5 $$ ok", &env).unwrap(), "cost: $5 $$ ok");
    }

    #[test]
    fn unset_and_empty_variables_are_errors() {
        let env = env(&[("EMPTY", "")]);
        let error = expand("${MISSING}", &env).unwrap_err();
        assert!(error.contains("MISSING"), "{error}");
        assert!(expand("${EMPTY}", &env).unwrap_err().contains("EMPTY"));
        assert!(expand("${A}${B}", &env).unwrap_err().contains("A, B"));
        assert!(expand("${1X}", &env).unwrap_err().contains("malformed"));
        assert!(expand("${UNCLOSED", &env)
            .unwrap_err()
            .contains("malformed"));
    }

    #[test]
    fn documents_are_expanded_in_values_only_with_paths() {
        let doc = json!({"${KEY}": "${V}", "list": [1, "${NOPE}"], "n": 3});
        let (expanded, failures) = interpolate(&doc, &env(&[("V", "v")]));
        assert_eq!(
            expanded,
            json!({"${KEY}": "v", "list": [1, "${NOPE}"], "n": 3})
        );
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].path.to_string(), "list[1]");
        assert!(failures[0].message.contains("NOPE"));
    }

    #[test]
    fn single_references() {
        assert!(is_single_reference("${PG_PASSWORD}"));
        assert!(is_single_reference("${PG_PASSWORD:-dev}"));
        assert!(!is_single_reference("Bearer ${TOKEN}"));
        assert!(!is_single_reference("${A}${B}"));
        assert!(!is_single_reference("$${A}"));
        assert!(!is_single_reference("secret"));
    }
}
