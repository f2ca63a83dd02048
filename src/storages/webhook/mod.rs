//! The `webhook` storage (modules.md §4.7): POSTs the vCon to each URL in order, with the
//! options of the `webhook` link. As in the Python server, a vCon without a `vcon` member, or
//! with the legacy `"0.0.1"`, is posted with `"vcon": "0.3.0"`.
//!
//! One try per URL: the storage sink retries a failed save with the storage's retry policy, so
//! retrying here too would multiply the attempts. A retried save posts to the earlier URLs again.

use async_trait::async_trait;
use bytes::Bytes;
use conserver_actors::Retriable;
use serde::Deserialize;
use serde_json::Value;

use super::{Saved, Storage, StorageError, StorageKind, StorageModule, NAME_OPTION};
use crate::config::path::YamlPath;
use crate::config::read::Problems;
use crate::config::Module;
use crate::http::Deliveries;
use crate::links::webhook::{Targets, WebhookOptions};
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Form;

/// The version written when the vCon states none, or the legacy one.
const POSTED_VERSION: &str = "0.3.0";

/// The options of the `webhook` storage: those of the `webhook` link.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct WebhookStorageOptions(WebhookOptions);

impl ModuleOptions for WebhookStorageOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[NAME_OPTION];
    const SECRETS: &'static [&'static str] = WebhookOptions::SECRETS;

    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        self.0.warn_without_urls(at, problems);
    }
}

/// The `webhook` storage.
pub struct WebhookStorage {
    targets: Targets,
    deliveries: Deliveries,
}

impl StorageModule for WebhookStorage {
    type Options = WebhookStorageOptions;

    fn build(
        options: WebhookStorageOptions,
        _module: &Module<StorageKind>,
        ctx: &ModuleContext,
    ) -> Result<WebhookStorage, BuildError> {
        Ok(WebhookStorage {
            targets: Targets::new(options.0, &ctx.limits),
            deliveries: ctx.deliveries.clone(),
        })
    }
}

#[async_trait]
impl Storage for WebhookStorage {
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError> {
        if self.targets.urls.is_empty() {
            return Ok(());
        }
        let body = Bytes::from(posted_text(vcon));
        for url in &self.targets.urls {
            self.targets
                .post_once(&self.deliveries, url, body.clone())
                .await
                .map_err(|e| {
                    let what = format!(
                        "webhook storage: the POST to {} failed",
                        crate::config::redact::url_secrets(url.as_str())
                    );
                    if e.is_retriable() {
                        StorageError::transient(what, e)
                    } else {
                        StorageError::permanent(what, e)
                    }
                })?;
        }
        Ok(())
    }
}

/// The text to post: the stored text, with `"vcon": "0.3.0"` when the member is missing or
/// `"0.0.1"` (replaced in place, else appended last). Signed and encrypted vCons, and texts
/// that are not an object, are posted as they are.
fn posted_text(vcon: &Saved) -> String {
    let Value::Object(members) = &vcon.vcon else {
        return vcon.text.clone();
    };
    if vcon.form != Form::Unsigned {
        return vcon.text.clone();
    }
    match members.get("vcon") {
        None => {}
        Some(Value::String(version)) if version == "0.0.1" => {}
        Some(_) => return vcon.text.clone(),
    }
    let mut members = members.clone();
    members.insert("vcon".to_owned(), Value::String(POSTED_VERSION.to_owned()));
    serde_json::to_string(&Value::Object(members)).unwrap_or_else(|_| vcon.text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(text: &str) -> String {
        posted_text(&Saved::from_text(uuid::Uuid::nil(), text.to_owned()).unwrap())
    }

    #[test]
    fn the_version_rule() {
        assert_eq!(
            posted(r#"{"uuid":"u","n":1.50}"#),
            r#"{"uuid":"u","n":1.50,"vcon":"0.3.0"}"#
        );
        assert_eq!(
            posted(r#"{"vcon":"0.0.1","uuid":"u"}"#),
            r#"{"vcon":"0.3.0","uuid":"u"}"#
        );
        for unchanged in [
            r#"{"vcon":"0.0.2","uuid":"u"}"#,
            r#"{"vcon":null,"uuid":"u"}"#,
            r#"{"payload":"e30","signatures":[]}"#,
            r#"{"ciphertext":"x","recipients":[]}"#,
        ] {
            assert_eq!(posted(unchanged), unchanged);
        }
    }
}
