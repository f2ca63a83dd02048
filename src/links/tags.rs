//! The tags attachment (modules.md §1.5): the first attachment whose `purpose` or legacy `type`
//! is `"tags"`; its body is a list of `"name:value"` strings, written as JSON text with
//! `"encoding": "json"`. Shared by every link that adds or reads tags.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::json_text::python_json;
use super::LinkError;

/// Whether `attachment` is a tags attachment.
fn is_tags(attachment: &Value) -> bool {
    ["purpose", "type"]
        .iter()
        .any(|key| attachment.get(key).and_then(Value::as_str) == Some("tags"))
}

/// A body as a JSON value: JSON text is decoded, any other value taken as it is.
fn structured(body: &Value) -> Result<Cow<'_, Value>, String> {
    match body {
        Value::String(text) => serde_json::from_str(text)
            .map(Cow::Owned)
            .map_err(|e| format!("its body is not JSON text: {e}")),
        other => Ok(Cow::Borrowed(other)),
    }
}

/// The tag entries of a tags attachment's body: a list as it is, an object's members as
/// `"key:value"` strings, no body as no tags.
fn entries(body: Option<&Value>) -> Result<Vec<Value>, String> {
    let Some(body) = body.filter(|b| !b.is_null()) else {
        return Ok(Vec::new());
    };
    match structured(body)?.as_ref() {
        Value::Array(items) => Ok(items.clone()),
        Value::Object(members) => Ok(members
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                Value::String(format!("{key}:{value}"))
            })
            .collect()),
        Value::Null => Ok(Vec::new()),
        _ => Err("its body is neither a list nor an object of tags".to_owned()),
    }
}

/// Add each of `tags` (`"name:value"` strings) that is not already there. Returns whether the
/// vCon changed; `vcon` is only borrowed mutably when it does (see `Document::value_mut`).
/// An existing tags attachment whose body cannot be decoded is an error.
pub fn add_tags(vcon: &mut crate::vcon::Document, tags: &[String]) -> Result<bool, LinkError> {
    let attachments = vcon.value().get("attachments");
    let position = attachments
        .and_then(Value::as_array)
        .and_then(|list| list.iter().position(is_tags));
    let current = match position {
        Some(index) => {
            entries(attachments.and_then(|list| list[index].get("body"))).map_err(|why| {
                LinkError::Content(format!(
                    "the tags attachment (attachments[{index}]) cannot be read: {why}"
                ))
            })?
        }
        None => Vec::new(),
    };
    let mut updated = current.clone();
    for tag in tags {
        if !updated.iter().any(|entry| entry.as_str() == Some(tag)) {
            updated.push(Value::String(tag.clone()));
        }
    }
    if updated.len() == current.len() {
        return Ok(false);
    }
    // Checked before `value_mut`, which marks the vCon changed.
    if position.is_none() && !attachments.is_none_or(|a| a.is_null() || a.is_array()) {
        return Err(LinkError::Content(
            "the vCon's attachments member is not a list".to_owned(),
        ));
    }
    let body = Value::String(python_json(&Value::Array(updated)));
    let root = vcon.value_mut();
    match position {
        Some(index) => {
            let attachment = &mut root["attachments"][index];
            attachment["body"] = body;
            attachment["encoding"] = Value::String("json".to_owned());
        }
        None => {
            let mut attachment = Map::new();
            attachment.insert("purpose".to_owned(), Value::String("tags".to_owned()));
            attachment.insert("body".to_owned(), body);
            attachment.insert("encoding".to_owned(), Value::String("json".to_owned()));
            attachments_list(root)
                .map_err(LinkError::Content)?
                .push(Value::Object(attachment));
        }
    }
    Ok(true)
}

/// The vCon's `attachments` list, created when absent or `null`.
fn attachments_list(root: &mut Value) -> Result<&mut Vec<Value>, String> {
    let object = root
        .as_object_mut()
        .ok_or_else(|| "the vCon is not a JSON object".to_owned())?;
    let slot = object
        .entry("attachments")
        .or_insert_with(|| Value::Array(Vec::new()));
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
        .ok_or_else(|| "the vCon's attachments member is not a list".to_owned())
}

/// Tag names, in order and without repeats, from every tags attachment with a body
/// (modules.md §3.2): from a list, the part before the first `:` of each string (when not
/// empty); from an object, each key. A body that cannot be decoded gives no names.
pub fn tag_names(vcon: &Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    };
    let attachments = vcon.get("attachments").and_then(Value::as_array);
    for attachment in attachments.into_iter().flatten().filter(|a| is_tags(a)) {
        let Some(body) = attachment.get("body") else {
            continue;
        };
        let Ok(body) = structured(body) else {
            tracing::debug!("a tags attachment's body is not JSON text; no tag names read from it");
            continue;
        };
        match body.as_ref() {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|tag| tag.split_once(':'))
                .for_each(|(name, _)| add(name)),
            Value::Object(members) => members.keys().for_each(|name| add(name)),
            _ => {}
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcon::Document;
    use serde_json::json;

    const U: &str = "0191a3f4-5b6c-7d8e-9f00-000000000001";

    fn doc(value: Value) -> Document {
        Document::from_stored(U.parse().unwrap(), value.to_string()).unwrap()
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn a_new_attachment_is_appended_in_member_order() {
        let mut vcon = doc(json!({"uuid": U, "attachments": [{"purpose": "other", "body": "x"}]}));
        assert!(add_tags(&mut vcon, &tags(&["a:a", "é:é", "a:a"])).unwrap());
        assert_eq!(
            vcon.text(),
            format!(
                r#"{{"uuid":"{U}","attachments":[{{"purpose":"other","body":"x"}},{{"purpose":"tags","body":"[\"a:a\", \"\\u00e9:\\u00e9\"]","encoding":"json"}}]}}"#
            )
        );
    }

    #[test]
    fn attachments_are_created_when_absent_or_null() {
        for start in [json!({"uuid": U}), json!({"uuid": U, "attachments": null})] {
            let mut vcon = doc(start);
            assert!(add_tags(&mut vcon, &tags(&["x:x"])).unwrap());
            assert_eq!(vcon.value()["attachments"][0]["body"], json!(r#"["x:x"]"#));
        }
    }

    #[test]
    fn existing_tags_are_extended_without_duplicates() {
        let mut vcon = doc(json!({"attachments": [
            {"type": "tags", "body": ["a:a"], "encoding": "none"},
            {"purpose": "tags", "body": "[\"z:z\"]"}
        ]}));
        assert!(add_tags(&mut vcon, &tags(&["a:a", "b:b"])).unwrap());
        assert_eq!(
            vcon.value()["attachments"][0],
            json!({"type": "tags", "body": "[\"a:a\", \"b:b\"]", "encoding": "json"})
        );
        assert_eq!(
            vcon.value()["attachments"][1],
            json!({"purpose": "tags", "body": "[\"z:z\"]"})
        );
    }

    #[test]
    fn nothing_new_leaves_the_vcon_unchanged() {
        let mut vcon = doc(
            json!({"attachments": [{"purpose": "tags", "body": "[\"a:a\"]", "encoding": "json"}]}),
        );
        assert!(!add_tags(&mut vcon, &tags(&["a:a"])).unwrap());
        assert!(!vcon.is_changed());
        let mut vcon = doc(json!({"uuid": U}));
        assert!(!add_tags(&mut vcon, &[]).unwrap());
        assert!(!vcon.is_changed());
    }

    #[test]
    fn object_bodies_become_name_value_strings() {
        let mut vcon =
            doc(json!({"attachments": [{"purpose": "tags", "body": {"k": "v", "n": 1}}]}));
        assert!(add_tags(&mut vcon, &tags(&["k:v", "x:x"])).unwrap());
        assert_eq!(
            vcon.value()["attachments"][0]["body"],
            json!(r#"["k:v", "n:1", "x:x"]"#)
        );
    }

    #[test]
    fn an_undecodable_body_is_an_error() {
        for body in [json!("not json"), json!(5)] {
            let mut vcon = doc(json!({"attachments": [{"purpose": "tags", "body": body}]}));
            let error = add_tags(&mut vcon, &tags(&["a:a"])).unwrap_err();
            assert!(error.to_string().contains("attachments[0]"), "{error}");
            assert!(!vcon.is_changed());
        }
        let mut vcon = doc(json!({"attachments": {"purpose": "tags"}}));
        assert!(add_tags(&mut vcon, &tags(&["a:a"])).is_err());
        assert!(!vcon.is_changed());
    }

    #[test]
    fn names_come_from_every_tags_attachment() {
        let vcon = json!({"attachments": [
            {"purpose": "tags", "body": "[\"lang:en\", \"vip:yes\", \"lang:fr\", \":x\", \"plain\"]"},
            {"type": "tags", "body": {"team": "a"}},
            {"purpose": "tags"},
            {"purpose": "tags", "body": "garbage"},
            {"purpose": "transcript", "body": ["other:1"]},
            {"type": "tags", "body": ["vip:no", "region:eu"]}
        ]});
        assert_eq!(tag_names(&vcon), ["lang", "vip", "team", "region"]);
        assert!(tag_names(&json!({})).is_empty());
    }
}
