//! Vendor `groq` (modules.md §3.12; legacy module `groq_whisper`): Groq's OpenAI-compatible
//! transcription endpoint, sent the inline body or the downloaded recording.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::deepgram::{join, mediatype};
use super::media::Audio;
use super::{
    build_problem, non_empty, post_for_object, secret_header, undocumented, Dialog, Shared, Vendor,
};
use crate::config::read::optional_positive_seconds;
use crate::config::Module;
use crate::http::multipart;
use crate::links::{LinkError, LinkKind};
use crate::modules::values::HttpUrl;
use crate::modules::{BuildError, ModuleOptions};

/// The environment variable read when `API_KEY` is not set.
pub const KEY_VARIABLE: &str = "GROQ_API_KEY";

/// The options of the `groq` vendor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroqOptions {
    /// The Groq API key; default the environment variable `GROQ_API_KEY` (one of them is
    /// required).
    #[serde(rename = "API_KEY", default)]
    pub api_key: Option<String>,
    /// Groq's OpenAI-compatible API root.
    #[serde(default = "default_base_url")]
    pub base_url: HttpUrl,
    /// The transcription model.
    #[serde(default = "default_model")]
    pub model: String,
    /// Seconds a recording must last to be transcribed.
    #[serde(default = "default_minimum_duration")]
    pub minimum_duration: f64,
    /// Seconds (> 0) one transcription request may take; default `limits.http_timeout`.
    #[serde(default, deserialize_with = "optional_positive_seconds")]
    pub timeout: Option<Duration>,
}

fn default_base_url() -> HttpUrl {
    HttpUrl(Url::parse("https://api.groq.com/openai/v1").expect("a valid URL literal"))
}

fn default_model() -> String {
    "whisper-large-v3-turbo".to_owned()
}

fn default_minimum_duration() -> f64 {
    30.0
}

/// The Python module's defaults, the start of `vendor_schema.opts`.
pub fn python_defaults() -> Value {
    json!({"minimum_duration": 30, "API_KEY": null, "Content-Type": "audio/flac"})
}

impl ModuleOptions for GroqOptions {
    const IGNORED: &'static [(&'static str, &'static str)] =
        &[("Content-Type", "the part's type is the dialog's media type")];
}

/// The `groq` vendor.
pub struct Groq {
    url: Url,
    authorization: HeaderValue,
    model: String,
    minimum_duration: f64,
}

impl Groq {
    /// The vendor of `options` (its options under `key`); `environment` is the value of
    /// `GROQ_API_KEY`.
    pub fn new(
        options: GroqOptions,
        environment: Option<String>,
        module: &Module<LinkKind>,
        key: &str,
    ) -> Result<Groq, BuildError> {
        let secret = options
            .api_key
            .filter(|k| !k.trim().is_empty())
            .or(environment.filter(|k| !k.trim().is_empty()))
            .ok_or_else(|| {
                build_problem(
                    module,
                    &[key, "API_KEY"],
                    format!("is required (or set the environment variable {KEY_VARIABLE})"),
                )
            })?;
        Ok(Groq {
            url: join(&options.base_url.0, "audio/transcriptions"),
            authorization: secret_header(&format!("Bearer {secret}"), "API_KEY")
                .map_err(|m| build_problem(module, &[key, "API_KEY"], m))?,
            model: options.model,
            minimum_duration: options.minimum_duration,
        })
    }
}

/// The audio of a dialog for an upload: the inline body, else the recording at its URL.
pub async fn audio_of(dialog: &Dialog<'_>, shared: &Shared) -> Result<Audio, LinkError> {
    if super::media::has_body(dialog.dialog) {
        return shared.fetcher.inline(dialog.index, dialog.dialog);
    }
    match dialog.url {
        Some(url) => shared.fetcher.download(url, dialog.dialog).await,
        None => Err(LinkError::Content(format!(
            "dialog {} has neither a body nor a url",
            dialog.index
        ))),
    }
}

/// A file name for an upload: the audio's own, else one whose extension says its type.
pub fn upload_name(audio: &Audio, dialog: &Map<String, Value>, index: usize) -> String {
    if let Some(name) = &audio.filename {
        return name.clone();
    }
    let extension = match mediatype(dialog).as_str() {
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/ogg" => "ogg",
        "audio/webm" => "webm",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
        _ => "flac",
    };
    format!("audio_{index}.{extension}")
}

#[async_trait]
impl Vendor for Groq {
    fn analysis_vendor(&self) -> &'static str {
        "groq_whisper"
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
        const WHAT: &str = "Groq transcription failed";
        let audio = audio_of(dialog, shared).await?;
        let (content_type, body) = multipart::Form::new()
            .file(
                "file",
                &upload_name(&audio, dialog.dialog, dialog.index),
                &mediatype(dialog.dialog),
                &audio.bytes,
            )
            .text("model", &self.model)
            .text("response_format", "json")
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(CONTENT_TYPE, content_type);
        let answer = post_for_object(shared, &self.url, headers, body, WHAT).await?;
        let Some(text) = answer.get("text").and_then(Value::as_str) else {
            return Err(undocumented(
                WHAT,
                &self.url,
                "the answer has no text string",
            ));
        };
        non_empty(text, "groq", dialog.index)?;
        Ok(Some(Value::Object(answer)))
    }
}
