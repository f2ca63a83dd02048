//! One problem found in a request body, a query or path parameter, or a config: the item of a
//! 422 `detail` array (api.md §1.4). Shared by vCon validation, parameter parsing and the config
//! compiler, so every 422 has the same shape.

use serde::Serialize;
use serde_json::Value;

/// Where a problem is: the root (`body`, `query`, `path`) then object keys and array indices.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Loc {
    Key(String),
    Index(usize),
}

impl From<&str> for Loc {
    fn from(key: &str) -> Self {
        Loc::Key(key.to_owned())
    }
}

impl From<String> for Loc {
    fn from(key: String) -> Self {
        Loc::Key(key)
    }
}

impl From<usize> for Loc {
    fn from(index: usize) -> Self {
        Loc::Index(index)
    }
}

/// A 422 problem: `{type, loc, path, msg, input?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// A short machine code (`missing`, `uuid_parsing`, `value_error`, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `["body", "dialog", 0, "duration"]`.
    pub loc: Vec<Loc>,
    /// The same location as JSONPath (`$.dialog[0].duration`), or the parameter name.
    pub path: String,
    /// A sentence an operator can act on.
    pub msg: String,
    /// The offending value; omitted for objects, arrays and strings over 200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

impl Problem {
    /// A problem in the request body at `segments` (relative to the body root `$`).
    pub fn body(kind: &'static str, segments: Vec<Loc>, msg: impl Into<String>) -> Self {
        let path = json_path(&segments);
        let mut loc = Vec::with_capacity(segments.len() + 1);
        loc.push(Loc::Key("body".into()));
        loc.extend(segments);
        Problem {
            kind,
            loc,
            path,
            msg: msg.into(),
            input: None,
        }
    }

    /// A problem with a query parameter.
    pub fn query(kind: &'static str, name: &str, msg: impl Into<String>) -> Self {
        Self::param("query", kind, name, msg)
    }

    /// A problem with a path parameter.
    pub fn path(kind: &'static str, name: &str, msg: impl Into<String>) -> Self {
        Self::param("path", kind, name, msg)
    }

    fn param(root: &str, kind: &'static str, name: &str, msg: impl Into<String>) -> Self {
        Problem {
            kind,
            loc: vec![Loc::Key(root.into()), Loc::Key(name.into())],
            path: name.to_owned(),
            msg: msg.into(),
            input: None,
        }
    }

    /// Attach the offending value, following the omission rule of api.md §1.4.
    pub fn with_input(mut self, input: &Value) -> Self {
        self.input = match input {
            Value::Object(_) | Value::Array(_) => None,
            Value::String(s) if s.chars().count() > 200 => None,
            other => Some(other.clone()),
        };
        self
    }
}

/// JSONPath of a location below the root: `$`, `$.dialog[0].url`, `$['odd key']`.
pub fn json_path(segments: &[Loc]) -> String {
    let mut path = String::from("$");
    for segment in segments {
        match segment {
            Loc::Index(i) => {
                path.push('[');
                path.push_str(&i.to_string());
                path.push(']');
            }
            Loc::Key(k) if is_plain_key(k) => {
                path.push('.');
                path.push_str(k);
            }
            Loc::Key(k) => {
                path.push_str("['");
                path.push_str(&k.replace('\\', "\\\\").replace('\'', "\\'"));
                path.push_str("']");
            }
        }
    }
    path
}

fn is_plain_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_problem_has_loc_and_json_path() {
        let p = Problem::body(
            "greater_than_equal",
            vec!["dialog".into(), 0.into(), "duration".into()],
            "duration must be a number >= 0",
        )
        .with_input(&json!(-30));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "type": "greater_than_equal",
                "loc": ["body", "dialog", 0, "duration"],
                "path": "$.dialog[0].duration",
                "msg": "duration must be a number >= 0",
                "input": -30
            })
        );
    }

    #[test]
    fn odd_keys_are_quoted_and_big_inputs_omitted() {
        assert_eq!(
            json_path(&["a b".into(), "it's".into()]),
            "$['a b']['it\\'s']"
        );
        assert_eq!(json_path(&[]), "$");
        let p = Problem::body("dict_type", vec![], "x").with_input(&json!({"a": 1}));
        assert!(p.input.is_none());
        let long = "x".repeat(201);
        let p = Problem::body("value_error", vec![], "x").with_input(&json!(long));
        assert!(p.input.is_none());
    }

    #[test]
    fn query_problem_path_is_the_parameter_name() {
        let p = Problem::query("int_parsing", "page", "page must be an integer >= 1");
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"type": "int_parsing", "loc": ["query", "page"], "path": "page", "msg": "page must be an integer >= 1"})
        );
    }
}
