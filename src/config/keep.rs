//! The `"***"` rule of `POST /config` (api.md §5.23): a client posts back what `GET /config`
//! showed, and every masked value means "keep what the current file has here".

use serde_json::{Map, Value};

use super::path::YamlPath;
use super::redact::{url_secrets, MASK};

/// A `"***"` with nothing to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct NothingToKeep(pub YamlPath);

/// `posted` with every `"***"` replaced by the value at the same path in `current`.
///
/// A string whose only change from the current one is a URL password shown as `***`
/// (`redis://u:***@h`, as `GET /config` shows it) also keeps the current string, so that a
/// posted-back document does not turn a password into the text `***`.
pub fn keep_current(posted: Value, current: &Value) -> (Value, Vec<NothingToKeep>) {
    let mut missing = Vec::new();
    let merged = merge(posted, Some(current), &YamlPath::root(), &mut missing);
    (merged, missing)
}

fn merge(
    posted: Value,
    current: Option<&Value>,
    path: &YamlPath,
    missing: &mut Vec<NothingToKeep>,
) -> Value {
    match posted {
        Value::String(text) if text == MASK => match current {
            Some(kept) => kept.clone(),
            None => {
                missing.push(NothingToKeep(path.clone()));
                Value::String(text)
            }
        },
        Value::String(text) if text.contains(MASK) => match current {
            Some(Value::String(kept)) if url_secrets(kept) == text => Value::String(kept.clone()),
            _ => Value::String(text),
        },
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    merge(
                        item,
                        current.and_then(|c| c.get(i)),
                        &path.index(i),
                        missing,
                    )
                })
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let kept = current.and_then(|c| c.get(&key));
                    let merged = merge(value, kept, &path.key(&key), missing);
                    (key, merged)
                })
                .collect::<Map<_, _>>(),
        ),
        scalar => scalar,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_keep_the_current_value_at_their_path() {
        let current = json!({
            "storages": {"pg": {"options": {"password": "hunter2", "host": "db"}}},
            "api": {"tokens": ["t1", "t2"]},
            "redis": {"url": "redis://u:pw@h:6379"}
        });
        let posted = json!({
            "storages": {"pg": {"options": {"password": "***", "host": "db2"}}},
            "api": {"tokens": ["***", "***", "t3"]},
            "redis": {"url": "redis://u:***@h:6379"}
        });
        let (merged, missing) = keep_current(posted, &current);
        assert_eq!(
            merged,
            json!({
                "storages": {"pg": {"options": {"password": "hunter2", "host": "db2"}}},
                "api": {"tokens": ["t1", "t2", "t3"]},
                "redis": {"url": "redis://u:pw@h:6379"}
            })
        );
        assert!(missing.is_empty());
    }

    #[test]
    fn a_mask_without_a_current_value_is_reported() {
        let current = json!({"links": {"a": {"options": {}}}});
        let posted = json!({"links": {"a": {"options": {"api_key": "***"}}, "b": {"options": {"token": "***"}}}});
        let (_, missing) = keep_current(posted, &current);
        let paths: Vec<String> = missing.iter().map(|m| m.0.to_string()).collect();
        assert_eq!(paths, ["links.a.options.api_key", "links.b.options.token"]);
    }

    #[test]
    fn a_changed_url_is_taken_as_posted() {
        let current = json!({"url": "redis://u:pw@old"});
        let (merged, _) = keep_current(json!({"url": "redis://u:***@new"}), &current);
        assert_eq!(merged, json!({"url": "redis://u:***@new"}));
    }
}
