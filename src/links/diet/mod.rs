//! `diet` (modules.md §3.21): slims a vCon — dialog bodies dropped, or offloaded to an S3
//! bucket (the body becomes a presigned URL) or to a media service (the body becomes the URL
//! it answers); the analysis removed; attachments of some media types removed; every
//! `system_prompt` member removed. An offload that fails fails the run with the bodies intact.

mod bucket;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use conserver_actors::RetryPolicy;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{json, Value};

use super::transcribe::{build_problem, undocumented};
use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::path::YamlPath;
use crate::config::read::{optional_positive_seconds, Problems};
use crate::config::Module;
use crate::http::{self, Deliveries, Request};
use crate::modules::values::HttpUrl;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;
pub use bucket::Bucket;

/// The options of `diet`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DietOptions {
    /// Drop each dialog's `body` (offloaded first when `s3_bucket` or `post_media_to_url` is
    /// set).
    #[serde(default)]
    pub remove_dialog_body: bool,
    /// A media service the bodies are POSTed to (`""`: none); its `{"url": …}` answer replaces
    /// the body.
    #[serde(default)]
    pub post_media_to_url: String,
    /// The S3 bucket bodies are uploaded to (`""`: none); wins over `post_media_to_url`.
    #[serde(default)]
    pub s3_bucket: String,
    /// A key prefix inside the bucket.
    #[serde(default)]
    pub s3_path: String,
    /// AWS access key id (empty: the AWS environment and instance credentials).
    #[serde(default)]
    pub aws_access_key_id: String,
    /// AWS secret access key.
    #[serde(default)]
    pub aws_secret_access_key: String,
    /// AWS region.
    #[serde(default = "default_region")]
    pub aws_region: String,
    /// An S3-compatible store's endpoint instead of AWS.
    #[serde(default)]
    pub endpoint_url: Option<HttpUrl>,
    /// Seconds the presigned URLs are valid (null: 3600).
    #[serde(default, deserialize_with = "optional_positive_seconds")]
    pub presigned_url_expiration: Option<Duration>,
    /// Remove the `analysis` member.
    #[serde(default)]
    pub remove_analysis: bool,
    /// Remove attachments whose `mediatype` (or `mimetype`, `mime_type`) is one of these.
    #[serde(default)]
    pub remove_attachment_types: Vec<String>,
    /// Remove every member named `system_prompt`, at any depth.
    #[serde(default)]
    pub remove_system_prompts: bool,
    /// Seconds (> 0) one upload or POST may take; default `limits.http_timeout`.
    #[serde(default, deserialize_with = "optional_positive_seconds")]
    pub timeout: Option<Duration>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl ModuleOptions for DietOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];

    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        if let Err(problem) = media_url(&self.post_media_to_url) {
            problems.error(&at.key("post_media_to_url"), problem);
        }
        if !self.remove_dialog_body
            && (!self.s3_bucket.is_empty() || !self.post_media_to_url.is_empty())
        {
            problems.warn(format!(
                "{}: false, so no body is offloaded (s3_bucket and post_media_to_url have no effect)",
                at.key("remove_dialog_body")
            ));
        }
    }
}

/// `post_media_to_url`: `""` or an http(s) URL.
fn media_url(text: &str) -> Result<Option<Url>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let url = Url::parse(text.trim()).map_err(|e| format!("'{text}' is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(Some(url)),
        other => Err(format!(
            "'{text}' has the scheme '{other}'; only http and https are supported"
        )),
    }
}

/// Where removed bodies go.
enum Offload {
    /// Nowhere: the body becomes `""`.
    Drop,
    /// An S3 bucket.
    Bucket(Bucket),
    /// A media service.
    Post(Url),
}

/// The `diet` link.
pub struct Diet {
    remove_dialog_body: bool,
    offload: Offload,
    remove_analysis: bool,
    remove_attachment_types: Vec<String>,
    remove_system_prompts: bool,
    timeout: Duration,
    deliveries: Deliveries,
    retry: RetryPolicy,
    component: String,
}

impl LinkModule for Diet {
    type Options = DietOptions;

    fn build(
        options: DietOptions,
        module: &Module<LinkKind>,
        ctx: &ModuleContext,
    ) -> Result<Diet, BuildError> {
        let timeout = options.timeout.unwrap_or(ctx.limits.http_timeout);
        let offload = if !options.s3_bucket.is_empty() {
            Offload::Bucket(
                Bucket::s3(&options, timeout, &module.retry, &ctx.http)
                    .map_err(|m| build_problem(module, &["s3_bucket"], m))?,
            )
        } else {
            match media_url(&options.post_media_to_url)
                .map_err(|m| build_problem(module, &["post_media_to_url"], m))?
            {
                Some(url) => Offload::Post(url),
                None => Offload::Drop,
            }
        };
        Ok(Diet {
            remove_dialog_body: options.remove_dialog_body,
            offload,
            remove_analysis: options.remove_analysis,
            remove_attachment_types: options.remove_attachment_types,
            remove_system_prompts: options.remove_system_prompts,
            timeout,
            deliveries: ctx.deliveries.clone(),
            retry: http::retry_policy(&module.retry),
            component: module.name.clone(),
        })
    }
}

impl Diet {
    /// The body of a dialog as text (a non-string body as its JSON text).
    fn body_text(body: &Value) -> String {
        match body {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }

    /// What replaces the body of one dialog: `(body, whether it is a URL)`.
    async fn offloaded(
        &self,
        uuid: &str,
        dialog_id: &str,
        body: String,
    ) -> Result<(String, bool), LinkError> {
        match &self.offload {
            Offload::Drop => Ok((String::new(), false)),
            Offload::Bucket(bucket) => {
                let url = bucket.upload(uuid, dialog_id, body).await?;
                Ok((url, true))
            }
            Offload::Post(url) => {
                const WHAT: &str = "the dialog body could not be posted to post_media_to_url";
                let request = Request {
                    method: Method::POST,
                    url: url.clone(),
                    headers: http::json_headers(&HeaderMap::new()),
                    body: Bytes::from(
                        json!({"content": body, "vcon_uuid": uuid, "dialog_id": dialog_id})
                            .to_string(),
                    ),
                    timeout: self.timeout,
                    max_response_bytes: 1 << 20,
                };
                let response = self
                    .deliveries
                    .exchange(&request, &self.retry, &self.component)
                    .await
                    .map_err(|source| LinkError::Call { what: WHAT, source })?;
                let answer: Value = serde_json::from_slice(&response.body).map_err(|_| {
                    undocumented(
                        WHAT,
                        url,
                        format!(
                            "the answer is not JSON: {}",
                            http::logged_body(&response.body)
                        ),
                    )
                })?;
                match answer
                    .get("url")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                {
                    Some(stored) => Ok((stored.to_owned(), true)),
                    None => Ok((String::new(), false)),
                }
            }
        }
    }
}

/// Whether `value` has a member `system_prompt` at any depth.
fn has_system_prompt(value: &Value) -> bool {
    match value {
        Value::Object(members) => {
            members.contains_key("system_prompt") || members.values().any(has_system_prompt)
        }
        Value::Array(items) => items.iter().any(has_system_prompt),
        _ => false,
    }
}

/// Remove every member `system_prompt` of `value`, at any depth (member order kept).
fn remove_system_prompts(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.shift_remove("system_prompt");
            members.values_mut().for_each(remove_system_prompts);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_system_prompts),
        _ => {}
    }
}

fn attachment_type(attachment: &Value) -> Option<&str> {
    ["mediatype", "mimetype", "mime_type"]
        .iter()
        .find_map(|key| attachment.get(*key).and_then(Value::as_str))
}

#[async_trait]
impl Link for Diet {
    async fn run(
        &self,
        vcon: &mut Document,
        _ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        if !vcon.is_unsigned() {
            return Ok(LinkOutcome::Skipped);
        }
        let uuid = vcon.uuid().to_string();
        // Offload first, change after: a failed upload leaves every body as it was.
        let mut bodies: Vec<(usize, String, bool)> = Vec::new();
        if self.remove_dialog_body {
            let dialogs = super::transcribe::dialogs(vcon.value()).to_vec();
            for (index, dialog) in dialogs.iter().enumerate() {
                let Some(body) = dialog.get("body") else {
                    continue;
                };
                let text = match body {
                    Value::Null => String::new(),
                    other => Diet::body_text(other),
                };
                if text.is_empty() {
                    if body.as_str() != Some("") {
                        bodies.push((index, String::new(), false));
                    }
                    continue;
                }
                let id = match dialog.get("id") {
                    Some(Value::String(id)) => id.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                let (replacement, is_url) = self.offloaded(&uuid, &id, text).await?;
                bodies.push((index, replacement, is_url));
            }
        }
        let drop_analysis = self.remove_analysis && vcon.value().get("analysis").is_some();
        let drop_attachments = !self.remove_attachment_types.is_empty()
            && vcon
                .value()
                .get("attachments")
                .and_then(Value::as_array)
                .is_some_and(|all| {
                    all.iter().any(|a| {
                        attachment_type(a)
                            .is_some_and(|t| self.remove_attachment_types.iter().any(|r| r == t))
                    })
                });
        let drop_prompts = self.remove_system_prompts && has_system_prompt(vcon.value());
        if bodies.is_empty() && !drop_analysis && !drop_attachments && !drop_prompts {
            return Ok(LinkOutcome::Continue);
        }
        let Value::Object(members) = vcon.value_mut() else {
            return Err(LinkError::Content(
                "the vCon is not a JSON object".to_owned(),
            ));
        };
        if let Some(Value::Array(dialogs)) = members.get_mut("dialog") {
            for (index, replacement, is_url) in bodies {
                if let Some(Value::Object(dialog)) = dialogs.get_mut(index) {
                    dialog.insert("body".to_owned(), Value::String(replacement));
                    if is_url {
                        dialog.insert("body_type".to_owned(), json!("url"));
                    }
                }
            }
        }
        if drop_analysis {
            members.shift_remove("analysis");
        }
        if drop_attachments {
            if let Some(Value::Array(attachments)) = members.get_mut("attachments") {
                attachments.retain(|a| {
                    !attachment_type(a)
                        .is_some_and(|t| self.remove_attachment_types.iter().any(|r| r == t))
                });
            }
        }
        if drop_prompts {
            let mut whole = Value::Object(std::mem::take(members));
            remove_system_prompts(&mut whole);
            if let Value::Object(cleaned) = whole {
                *members = cleaned;
            }
        }
        Ok(LinkOutcome::Continue)
    }
}
