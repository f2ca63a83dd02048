//! A vCon as a MongoDB document and back (modules.md §4.3). Saved: the vCon's members after
//! `_id` (the uuid), numbers as pymongo writes them (`Int32`, `Int64`, `Double`), `created_at`
//! and each `dialog[].start` that read as dates as BSON dates, so that date queries work.
//! Read: `_id` dropped, every BSON date as an RFC 3339 UTC string with milliseconds.

use mongodb::bson::{self, Bson, Document};
use serde_json::{Map, Number, Value};

use crate::storages::Saved;
use crate::vcon::Form;

/// The members stored as dates when they read as one.
const CREATED_AT: &str = "created_at";
const DIALOG: &str = "dialog";
const START: &str = "start";

/// The document stored for `saved`: `_id` first, then the vCon's members in their order (a
/// member `_id` of the vCon is replaced by the uuid). Signed and encrypted vCons are stored as
/// they are, without date conversion. `None` when the vCon is not a JSON object.
pub fn to_document(saved: &Saved) -> Option<Document> {
    let Value::Object(members) = &saved.vcon else {
        return None;
    };
    let dates = saved.form == Form::Unsigned;
    let mut document = Document::new();
    document.insert("_id", saved.uuid.to_string());
    for (key, value) in members {
        if key == "_id" {
            continue;
        }
        let stored = match (key.as_str(), value) {
            (CREATED_AT, Value::String(text)) if dates => date_or_string(text),
            (DIALOG, Value::Array(dialogs)) if dates => {
                Bson::Array(dialogs.iter().map(dialog_to_bson).collect())
            }
            _ => to_bson(value),
        };
        document.insert(key.clone(), stored);
    }
    Some(document)
}

/// One dialog, with its `start` as a date when it reads as one.
fn dialog_to_bson(dialog: &Value) -> Bson {
    let Value::Object(members) = dialog else {
        return to_bson(dialog);
    };
    let mut document = Document::new();
    for (key, value) in members {
        let stored = match (key.as_str(), value) {
            (START, Value::String(text)) => date_or_string(text),
            _ => to_bson(value),
        };
        document.insert(key.clone(), stored);
    }
    Bson::Document(document)
}

/// A BSON date (UTC, milliseconds) when `text` reads as a date (vcon.md §2.7), else the text.
fn date_or_string(text: &str) -> Bson {
    match crate::vcon::parse_date(text) {
        Some(instant) => Bson::DateTime(bson::DateTime::from_millis(instant.timestamp_millis())),
        None => Bson::String(text.to_owned()),
    }
}

/// A JSON value as BSON: integers as `Int32` when they fit, else `Int64`; other numbers (and
/// integers beyond 64 bits, which BSON cannot hold) as `Double`.
fn to_bson(value: &Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(number) => number_to_bson(number),
        Value::String(text) => Bson::String(text.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(to_bson).collect()),
        Value::Object(members) => Bson::Document(
            members
                .iter()
                .map(|(key, value)| (key.clone(), to_bson(value)))
                .collect(),
        ),
    }
}

fn number_to_bson(number: &Number) -> Bson {
    if let Some(integer) = number.as_i64() {
        return match i32::try_from(integer) {
            Ok(small) => Bson::Int32(small),
            Err(_) => Bson::Int64(integer),
        };
    }
    // Every JSON number text reads as a double (overflow gives infinity, never an error).
    Bson::Double(number.as_f64().unwrap_or(f64::NAN))
}

/// The vCon of a stored document: `_id` removed, dates as RFC 3339 strings.
pub fn from_document(document: Document) -> Value {
    let mut members = Map::with_capacity(document.len());
    for (key, value) in document {
        if key != "_id" {
            members.insert(key, from_bson(value));
        }
    }
    Value::Object(members)
}

/// A BSON value as JSON: dates as `2024-05-01T12:00:00.000Z`; types JSON has no form for
/// (ObjectId, binary…, a non-finite double) in MongoDB's relaxed Extended JSON.
fn from_bson(value: Bson) -> Value {
    match value {
        Bson::Null => Value::Null,
        Bson::Boolean(b) => Value::Bool(b),
        Bson::Int32(integer) => Value::Number(integer.into()),
        Bson::Int64(integer) => Value::Number(integer.into()),
        Bson::Double(double) => match Number::from_f64(double) {
            Some(number) => Value::Number(number),
            None => Bson::Double(double).into_relaxed_extjson(),
        },
        Bson::String(text) => Value::String(text),
        Bson::Array(items) => Value::Array(items.into_iter().map(from_bson).collect()),
        Bson::Document(document) => Value::Object(
            document
                .into_iter()
                .map(|(key, value)| (key, from_bson(value)))
                .collect(),
        ),
        Bson::DateTime(date) => {
            match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(date.timestamp_millis()) {
                Some(instant) => {
                    Value::String(instant.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                }
                None => Bson::DateTime(date).into_relaxed_extjson(),
            }
        }
        other => other.into_relaxed_extjson(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn saved(text: &str) -> Saved {
        Saved::from_text(uuid::Uuid::nil(), text.to_owned()).unwrap()
    }

    #[test]
    fn dates_become_bson_dates_and_come_back_as_utc_strings() {
        let vcon = saved(
            r#"{"_id":"theirs","uuid":"u","created_at":"2024-05-01T14:00:00.123456+02:00",
               "dialog":[{"type":"text","start":"2024-05-01T12:00:01Z"},
                         {"type":"text","start":"not a date"},
                         {"type":"text"}],
               "parties":[{"tel":"+15550100","meta":{"created_at":"2024-01-01T00:00:00Z"}}]}"#,
        );
        let document = to_document(&vcon).unwrap();
        let keys: Vec<&str> = document.keys().map(String::as_str).collect();
        assert_eq!(keys, ["_id", "uuid", "created_at", "dialog", "parties"]);
        assert_eq!(
            document.get_str("_id").unwrap(),
            "00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            document
                .get_datetime("created_at")
                .unwrap()
                .timestamp_millis(),
            1_714_564_800_123
        );
        let dialogs = document.get_array("dialog").unwrap();
        assert!(matches!(
            dialogs[0].as_document().unwrap().get("start"),
            Some(Bson::DateTime(_))
        ));
        assert_eq!(
            dialogs[1].as_document().unwrap().get_str("start").unwrap(),
            "not a date"
        );
        // Only the members the spec names are dates.
        let party = document.get_array("parties").unwrap()[0]
            .as_document()
            .unwrap();
        assert!(matches!(
            party.get_document("meta").unwrap().get("created_at"),
            Some(Bson::String(_))
        ));

        assert_eq!(
            from_document(document),
            json!({"uuid":"u","created_at":"2024-05-01T12:00:00.123Z",
                   "dialog":[{"type":"text","start":"2024-05-01T12:00:01.000Z"},
                             {"type":"text","start":"not a date"},
                             {"type":"text"}],
                   "parties":[{"tel":"+15550100","meta":{"created_at":"2024-01-01T00:00:00Z"}}]})
        );
    }

    #[test]
    fn numbers_are_stored_as_pymongo_stores_them() {
        let vcon = saved(
            r#"{"small":120,"large":5000000000,"huge":12345678901234567890,"real":1.50,"exp":1e2,"neg":-7}"#,
        );
        let document = to_document(&vcon).unwrap();
        assert_eq!(document.get("small"), Some(&Bson::Int32(120)));
        assert_eq!(document.get("large"), Some(&Bson::Int64(5_000_000_000)));
        assert_eq!(
            document.get("huge"),
            Some(&Bson::Double(12_345_678_901_234_567_890.0))
        );
        assert_eq!(document.get("real"), Some(&Bson::Double(1.5)));
        assert_eq!(document.get("exp"), Some(&Bson::Double(100.0)));
        assert_eq!(document.get("neg"), Some(&Bson::Int32(-7)));
        let back = serde_json::to_string(&from_document(document)).unwrap();
        assert_eq!(
            back,
            r#"{"small":120,"large":5000000000,"huge":1.2345678901234567e+19,"real":1.5,"exp":100.0,"neg":-7}"#
        );
    }

    #[test]
    fn signed_and_encrypted_vcons_are_stored_as_they_are() {
        let signed = saved(
            r#"{"payload":"e30","signatures":[{"protected":"x","signature":"y"}],"created_at":"2024-05-01T12:00:00Z"}"#,
        );
        let document = to_document(&signed).unwrap();
        assert_eq!(
            document.get_str("created_at").unwrap(),
            "2024-05-01T12:00:00Z"
        );
        assert_eq!(
            from_document(document),
            serde_json::from_str::<Value>(&signed.text).unwrap()
        );
    }

    #[test]
    fn types_json_lacks_come_back_as_extended_json() {
        let mut document = Document::new();
        document.insert(
            "id",
            bson::oid::ObjectId::parse_str("65f0a1b2c3d4e5f601234567").unwrap(),
        );
        document.insert("nan", f64::NAN);
        assert_eq!(
            from_document(document),
            json!({"id": {"$oid": "65f0a1b2c3d4e5f601234567"}, "nan": {"$numberDouble": "NaN"}})
        );
    }
}
