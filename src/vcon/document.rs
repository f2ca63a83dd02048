//! A vCon during a chain run: read from the store once, parsed once, changed in memory by the
//! links, serialised again only when it changed (vcon.md §6 "After a link": member order and
//! the text of untouched numbers are kept — serde_json runs with `preserve_order` and
//! `arbitrary_precision`).

use serde_json::Value;
use uuid::Uuid;

use super::{ingest, Form, IngestError, IngestOptions, Ingested, PartyIndex};

/// The in-memory vCon of one run.
#[derive(Debug, Clone)]
pub struct Document {
    uuid: Uuid,
    form: Form,
    value: Value,
    /// The text that matches `value`: the stored text until a link changes the vCon, then the
    /// compact serialisation (made on demand).
    text: Option<String>,
    /// Changed since it was read or last written back.
    changed: bool,
}

/// Why a stored text could not be read as a vCon document.
#[derive(Debug, thiserror::Error)]
#[error("the stored vCon is not a JSON object: {0}")]
pub struct NotADocument(String);

impl Document {
    /// Read a stored text. `uuid` is the key's uuid (the document keeps whatever text form the
    /// sender used).
    pub fn from_stored(uuid: Uuid, text: String) -> Result<Document, NotADocument> {
        let value: Value = serde_json::from_str(&text).map_err(|e| NotADocument(e.to_string()))?;
        if !value.is_object() {
            return Err(NotADocument("a JSON value that is not an object".into()));
        }
        let form = form_of(&value);
        Ok(Document {
            uuid,
            form,
            value,
            text: Some(text),
            changed: false,
        })
    }

    /// Canonical uuid: the key this document lives under.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    pub fn form(&self) -> Form {
        self.form
    }

    /// Links that need the content skip signed and encrypted vCons (modules.md §1.8).
    pub fn is_unsigned(&self) -> bool {
        self.form == Form::Unsigned
    }

    /// The JSON object.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The JSON object, to change it: the document counts as changed from now on.
    pub fn value_mut(&mut self) -> &mut Value {
        self.changed = true;
        self.text = None;
        &mut self.value
    }

    /// The JSON text of the document as it stands (compact).
    pub fn text(&mut self) -> &str {
        let value = &self.value;
        self.text
            .get_or_insert_with(|| serde_json::to_string(value).unwrap_or_default())
    }

    /// What the vCon is stored and indexed by (redis.md §6): its index instant (Unix seconds)
    /// and its parties' values. Read from the parsed document; a signed or encrypted vCon's
    /// are in its payload, read from the text.
    pub fn indexed(&mut self) -> (Option<i64>, PartyIndex) {
        match self.form {
            Form::Unsigned => (
                self.value
                    .get("created_at")
                    .and_then(super::dates::parse_date_json)
                    .map(|instant| instant.timestamp()),
                super::index::party_index_of(&self.value),
            ),
            Form::Signed | Form::Encrypted => super::describe(self.text())
                .map(|described| (described.created_at, described.parties))
                .unwrap_or_default(),
        }
    }

    /// The document taken apart at the end of a run: uuid, form, value and text.
    pub fn into_parts(mut self) -> (Uuid, Form, Value, String) {
        self.text();
        let text = self.text.take().unwrap_or_default();
        (self.uuid, self.form, self.value, text)
    }

    /// Changed since it was read or last written back.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// The current text was written back to the store.
    pub fn mark_written(&mut self) {
        self.changed = false;
    }

    /// Replace the whole vCon by `body` (an `http_link` answer, a `jq_link` transform output),
    /// validated like a posted vCon (vcon.md §3). Its uuid may differ: the caller then stores it
    /// as a new vCon (modules.md §1.2). The returned value says what was stored.
    pub fn replace(
        &mut self,
        body: &[u8],
        options: &IngestOptions,
    ) -> Result<Ingested, IngestError> {
        let ingested = ingest(body, options)?;
        let value: Value =
            serde_json::from_str(&ingested.text).map_err(|e| IngestError::Malformed {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?;
        self.uuid = ingested.uuid;
        self.form = ingested.form;
        self.value = value;
        self.text = Some(ingested.text.clone());
        self.changed = true;
        Ok(ingested)
    }
}

/// The form of a parsed document (vcon.md §1).
fn form_of(value: &Value) -> Form {
    let has = |key: &str| value.get(key).is_some();
    if has("payload") && has("signatures") {
        Form::Signed
    } else if has("ciphertext") && has("recipients") {
        Form::Encrypted
    } else {
        Form::Unsigned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U: &str = "0191a3f4-5b6c-7d8e-9f00-000000000001";

    #[test]
    fn an_unchanged_document_keeps_its_stored_text() {
        let text = format!(r#"{{"uuid":"{U}","n":1.50,"big":12345678901234567890,"s":"\u00e9"}}"#);
        let mut doc = Document::from_stored(U.parse().unwrap(), text.clone()).unwrap();
        assert_eq!(doc.text(), text);
        assert!(!doc.is_changed());
        assert!(doc.is_unsigned());
    }

    /// One known normalisation: serde_json writes an exponent with its sign (`1e2` → `1e+2`).
    #[test]
    fn a_change_keeps_member_order_and_number_text() {
        let text = format!(r#"{{"uuid":"{U}","z":1.50,"a":[-0.0,12345678901234567890]}}"#);
        let mut doc = Document::from_stored(U.parse().unwrap(), text).unwrap();
        doc.value_mut()["tags"] = json!(["x"]);
        assert!(doc.is_changed());
        assert_eq!(
            doc.text(),
            format!(r#"{{"uuid":"{U}","z":1.50,"a":[-0.0,12345678901234567890],"tags":["x"]}}"#)
        );
        doc.mark_written();
        assert!(!doc.is_changed());
    }

    #[test]
    fn forms_are_recognised_and_non_objects_refused() {
        let u: Uuid = U.parse().unwrap();
        let signed =
            Document::from_stored(u, r#"{"payload":"e30","signatures":[{}]}"#.into()).unwrap();
        assert_eq!(signed.form(), Form::Signed);
        let encrypted =
            Document::from_stored(u, r#"{"ciphertext":"x","recipients":[{}]}"#.into()).unwrap();
        assert_eq!(encrypted.form(), Form::Encrypted);
        assert!(Document::from_stored(u, "[1]".into()).is_err());
        assert!(Document::from_stored(u, "nope".into()).is_err());
    }

    #[test]
    fn index_facts_come_from_the_document_in_every_form() {
        let u: Uuid = U.parse().unwrap();
        let mut doc = Document::from_stored(
            u,
            format!(
                r#"{{"uuid":"{U}","created_at":"2024-05-01T12:00:00Z","parties":[{{"tel":"+1","name":""}},{{"mailto":"a@b"}},3]}}"#
            ),
        )
        .unwrap();
        let (created_at, parties) = doc.indexed();
        assert_eq!(created_at, Some(1_714_564_800));
        assert_eq!(
            (parties.tel, parties.mailto, parties.name),
            (vec!["+1".to_owned()], vec!["a@b".to_owned()], vec![])
        );
        let text = format!(
            r#"{{"uuid":"{U}","created_at":"2024-05-01T12:00:00Z","parties":[{{"tel":"+1"}}]}}"#
        );
        assert_eq!(
            Document::from_stored(u, text.clone()).unwrap().indexed(),
            {
                let described = super::super::describe(&text).unwrap();
                (described.created_at, described.parties)
            },
            "the same facts as the text scanner finds"
        );
        let (uuid, form, value, text) = doc.into_parts();
        assert_eq!((uuid, form), (u, Form::Unsigned));
        assert_eq!(value["parties"][0]["tel"], "+1");
        assert!(text.starts_with(r#"{"uuid""#));
    }

    #[test]
    fn replace_validates_and_may_change_the_uuid() {
        let u: Uuid = U.parse().unwrap();
        let mut doc =
            Document::from_stored(u, format!(r#"{{"uuid":"{U}","created_at":"2024-01-01"}}"#))
                .unwrap();
        let options = IngestOptions {
            accept_signed: true,
            max_bytes: 1 << 20,
        };
        assert!(matches!(
            doc.replace(br#"{"uuid": "x"}"#, &options),
            Err(IngestError::Invalid(_))
        ));
        assert_eq!(doc.uuid(), u, "a refused replacement changes nothing");
        let other = "0191a3f4-5b6c-7d8e-9f00-000000000002";
        let stored = doc
            .replace(
                format!(r#"{{"uuid": "{other}", "created_at": "2024-01-01"}}"#).as_bytes(),
                &options,
            )
            .unwrap();
        assert_eq!(stored.uuid.to_string(), other);
        assert_eq!(doc.uuid().to_string(), other);
        assert_eq!(
            doc.text(),
            format!(r#"{{"uuid":"{other}","created_at":"2024-01-01"}}"#)
        );
    }
}
