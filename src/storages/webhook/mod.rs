//! The `webhook` storage (modules.md §4.7): POSTs the vCon to each URL in order, with the
//! options of the `webhook` link. As in the Python server, a vCon without a `vcon` member, or
//! with the legacy `"0.0.1"`, is posted with `"vcon": "0.3.0"`.
//!
//! One try per URL: the storage sink retries a failed save with the storage's retry policy, so
//! retrying here too would multiply the attempts. A retried save posts to the earlier URLs again.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use conserver_actors::Retriable;
use serde_json::Value;

use super::{Saved, Storage, StorageError};
use crate::config::Module;
use crate::links::webhook::Targets;
use crate::links::Shared;

/// The version written when the vCon states none, or the legacy one.
const POSTED_VERSION: &str = "0.3.0";

/// The `webhook` storage.
pub struct WebhookStorage {
    targets: Targets,
    http: reqwest::Client,
}

/// Build from the module's options (those of the `webhook` link; `name` is ignored).
pub fn build(module: &Module, shared: &Shared) -> Result<Arc<dyn Storage>, Vec<String>> {
    Ok(Arc::new(WebhookStorage {
        targets: Targets::from_module(module, shared, &["name"])?,
        http: shared.http.clone(),
    }))
}

#[async_trait]
impl Storage for WebhookStorage {
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError> {
        if self.targets.urls.is_empty() {
            return Ok(());
        }
        let body = Bytes::from(posted_text(&vcon.text));
        for url in &self.targets.urls {
            self.targets
                .post_once(&self.http, url, body.clone())
                .await
                .map_err(|e| {
                    if e.is_retriable() {
                        StorageError::Transient(e.to_string())
                    } else {
                        StorageError::Permanent(e.to_string())
                    }
                })?;
        }
        Ok(())
    }
}

/// The text to post: the stored text, with `"vcon": "0.3.0"` when the member is missing or
/// `"0.0.1"` (replaced in place, else appended last). Signed and encrypted vCons, and texts
/// that are not an object, are posted as they are.
fn posted_text(text: &str) -> String {
    let Ok(Value::Object(mut members)) = serde_json::from_str::<Value>(text) else {
        return text.to_owned();
    };
    let wrapped = |a: &str, b: &str| members.contains_key(a) && members.contains_key(b);
    if wrapped("payload", "signatures") || wrapped("ciphertext", "recipients") {
        return text.to_owned();
    }
    match members.get("vcon") {
        None => {}
        Some(Value::String(version)) if version == "0.0.1" => {}
        Some(_) => return text.to_owned(),
    }
    members.insert("vcon".to_owned(), Value::String(POSTED_VERSION.to_owned()));
    serde_json::to_string(&Value::Object(members)).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_rule() {
        assert_eq!(
            posted_text(r#"{"uuid":"u","n":1.50}"#),
            r#"{"uuid":"u","n":1.50,"vcon":"0.3.0"}"#
        );
        assert_eq!(
            posted_text(r#"{"vcon":"0.0.1","uuid":"u"}"#),
            r#"{"vcon":"0.3.0","uuid":"u"}"#
        );
        for unchanged in [
            r#"{"vcon":"0.0.2","uuid":"u"}"#,
            r#"{"vcon":null,"uuid":"u"}"#,
            r#"{"payload":"e30","signatures":[]}"#,
            r#"{"ciphertext":"x","recipients":[]}"#,
            "[1]",
        ] {
            assert_eq!(posted_text(unchanged), unchanged);
        }
    }
}
