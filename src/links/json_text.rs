//! JSON text written inside a vCon (tag bodies, JSON-encoded analysis bodies) in the Python
//! server's default `json.dumps` style (modules.md §1.5): `", "` between items, `": "` between
//! a key and its value, non-ASCII characters as `\uXXXX` (lowercase hex, UTF-16 surrogate
//! pairs beyond the BMP), members in order. Consumers that compare these strings see the same
//! text whichever server wrote it.

use serde_json::Value;

/// `value` as Python's `json.dumps(value)` writes it.
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // With `arbitrary_precision` this is the number's text as read.
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `ensure_ascii` escaping: everything outside `' '..='~'` is escaped.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_and_objects_use_pythons_separators() {
        assert_eq!(python_json(&json!(["a:a", "b:b"])), r#"["a:a", "b:b"]"#);
        assert_eq!(python_json(&json!([])), "[]");
        let value: Value = serde_json::from_str(r#"{"b":1,"a":[true,null,2.50]}"#).unwrap();
        assert_eq!(python_json(&value), r#"{"b": 1, "a": [true, null, 2.50]}"#);
    }

    #[test]
    fn non_ascii_and_controls_are_escaped_like_python() {
        // json.dumps(["é", "😀", "\x7f", "\x01", "q\"\\\n\t"])
        assert_eq!(
            python_json(&json!(["é", "😀", "\u{7f}", "\u{1}", "q\"\\\n\t"])),
            r#"["\u00e9", "\ud83d\ude00", "\u007f", "\u0001", "q\"\\\n\t"]"#
        );
    }
}
