//! Vendor `hugging_face` (modules.md §3.13; legacy module `hugging_face_whisper`): the audio
//! POSTed as it is to a Hugging Face inference endpoint.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Value};

use super::groq::audio_of;
use super::{non_empty, post_for_object, undocumented, Dialog, Shared, Vendor};
use crate::config::path::YamlPath;
use crate::config::read::{optional_positive_seconds, Problems};
use crate::links::LinkError;
use crate::modules::values::{non_empty as required_text, HttpUrl};
use crate::modules::ModuleOptions;

/// The options of the `hugging_face` vendor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuggingFaceOptions {
    /// The inference endpoint (required).
    #[serde(rename = "API_URL")]
    pub api_url: HttpUrl,
    /// The token, sent as `Authorization: Bearer <key>` (a value starting with `Bearer ` is sent
    /// as it is); required.
    #[serde(rename = "API_KEY", deserialize_with = "required_text")]
    pub api_key: String,
    /// Seconds a recording must last to be transcribed.
    #[serde(default = "default_minimum_duration")]
    pub minimum_duration: f64,
    /// The content type of the request.
    #[serde(rename = "Content-Type", default = "default_content_type")]
    pub content_type: String,
    /// Seconds (> 0) one transcription request may take; default `limits.http_timeout`.
    #[serde(default, deserialize_with = "optional_positive_seconds")]
    pub timeout: Option<Duration>,
}

fn default_minimum_duration() -> f64 {
    30.0
}

fn default_content_type() -> String {
    "audio/flac".to_owned()
}

/// The Python module's defaults, the start of `vendor_schema.opts`.
pub fn python_defaults() -> Value {
    json!({
        "minimum_duration": 30,
        "API_URL": "https://xxxxxx.us-east-1.aws.endpoints.huggingface.cloud",
        "API_KEY": null,
        "Content-Type": "audio/flac"
    })
}

impl ModuleOptions for HuggingFaceOptions {
    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        if HeaderValue::from_str(&self.content_type).is_err() {
            problems.error(&at.key("Content-Type"), "cannot be sent as an HTTP header");
        }
        if HeaderValue::from_str(&bearer(&self.api_key)).is_err() {
            problems.error(&at.key("API_KEY"), "cannot be sent in an HTTP header");
        }
    }
}

fn bearer(key: &str) -> String {
    if key.starts_with("Bearer ") {
        key.to_owned()
    } else {
        format!("Bearer {key}")
    }
}

/// The `hugging_face` vendor.
pub struct HuggingFace {
    url: Url,
    headers: HeaderMap,
    minimum_duration: f64,
}

impl HuggingFace {
    /// The vendor of `options` (checked).
    pub fn new(options: HuggingFaceOptions) -> HuggingFace {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Ok(mut value) = HeaderValue::from_str(&bearer(&options.api_key)) {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if let Ok(value) = HeaderValue::from_str(&options.content_type) {
            headers.insert(CONTENT_TYPE, value);
        }
        HuggingFace {
            url: options.api_url.0,
            headers,
            minimum_duration: options.minimum_duration,
        }
    }
}

#[async_trait]
impl Vendor for HuggingFace {
    fn analysis_vendor(&self) -> &'static str {
        "hugging_face_whisper"
    }

    fn minimum_duration(&self) -> f64 {
        self.minimum_duration
    }

    fn takes_inline(&self) -> bool {
        true
    }

    async fn transcribe(
        &self,
        dialog: &Dialog<'_>,
        shared: &Shared,
    ) -> Result<Option<Value>, LinkError> {
        const WHAT: &str = "Hugging Face transcription failed";
        let audio = audio_of(dialog, shared).await?;
        let answer =
            post_for_object(shared, &self.url, self.headers.clone(), audio.bytes, WHAT).await?;
        let Some(text) = answer.get("text").and_then(Value::as_str) else {
            return Err(undocumented(
                WHAT,
                &self.url,
                "the answer has no text string",
            ));
        };
        non_empty(text, "hugging_face", dialog.index)?;
        Ok(Some(Value::Object(answer)))
    }
}
