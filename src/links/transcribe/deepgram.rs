//! Vendor `deepgram` (modules.md §3.10; legacy module `deepgram_link`): Deepgram's pre-recorded
//! API on the dialog's URL, or the audio sent to a LiteLLM proxy.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::usage::{Cost, Usage};
use super::{
    build_problem, non_empty, post_for_object, secret_header, undocumented, Dialog, Shared, Vendor,
};
use crate::config::path::YamlPath;
use crate::config::read::{optional_positive_seconds, Problems};
use crate::config::Module;
use crate::http::{self, multipart};
use crate::links::{LinkError, LinkKind};
use crate::modules::values::HttpUrl;
use crate::modules::{BuildError, ModuleOptions};

/// The options of the `deepgram` vendor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepgramOptions {
    /// The Deepgram API key (required unless the LiteLLM pair is set).
    #[serde(rename = "DEEPGRAM_KEY", default)]
    pub deepgram_key: Option<String>,
    /// Deepgram's API root.
    #[serde(default = "default_base_url")]
    pub base_url: HttpUrl,
    /// Deepgram pre-recorded options, sent as query parameters (`model`, `smart_format`,
    /// `detect_language`, …); a list is sent as the parameter repeated.
    #[serde(default)]
    pub api: Map<String, Value>,
    /// Seconds a recording must last to be transcribed.
    #[serde(default = "default_minimum_duration")]
    pub minimum_duration: f64,
    /// A result less confident than this is not kept (the dialog is skipped).
    #[serde(default = "default_minimum_confidence")]
    pub minimum_confidence: f64,
    /// A LiteLLM proxy to transcribe through instead of Deepgram (with `LITELLM_MASTER_KEY`).
    #[serde(rename = "LITELLM_PROXY_URL", default)]
    pub litellm_proxy_url: Option<HttpUrl>,
    /// The proxy's master key, sent as bearer token.
    #[serde(rename = "LITELLM_MASTER_KEY", default)]
    pub litellm_master_key: Option<String>,
    /// The model for the LiteLLM path and usage reports; default `api.model`, else `nova-3`.
    #[serde(default)]
    pub model: Option<String>,
    /// Where usage reports go (none: not sent).
    #[serde(default)]
    pub send_ai_usage_data_to_url: Option<String>,
    /// The bearer token of usage reports.
    #[serde(default)]
    pub ai_usage_api_token: Option<String>,
    /// Seconds (> 0) one transcription request may take; default `limits.http_timeout`.
    #[serde(default, deserialize_with = "optional_positive_seconds")]
    pub timeout: Option<Duration>,
}

fn default_base_url() -> HttpUrl {
    HttpUrl(Url::parse("https://api.deepgram.com").expect("a valid URL literal"))
}

fn default_minimum_duration() -> f64 {
    60.0
}

fn default_minimum_confidence() -> f64 {
    0.5
}

/// The Python module's defaults, the start of `vendor_schema.opts`.
pub fn python_defaults() -> Value {
    json!({"minimum_duration": 60, "DEEPGRAM_KEY": null, "minimum_confidence": 0.5})
}

impl DeepgramOptions {
    fn litellm(&self) -> Option<(&Url, &str)> {
        match (&self.litellm_proxy_url, &self.litellm_master_key) {
            (Some(url), Some(key)) if !key.is_empty() => Some((&url.0, key.as_str())),
            _ => None,
        }
    }

    fn key(&self) -> Option<&str> {
        self.deepgram_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
    }
}

impl ModuleOptions for DeepgramOptions {
    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        if self.key().is_none() && self.litellm().is_none() {
            problems.error(
                &at.key("DEEPGRAM_KEY"),
                "is required (or LITELLM_PROXY_URL and LITELLM_MASTER_KEY)",
            );
        }
        if let Err(problem) = Usage::new(
            self.send_ai_usage_data_to_url.as_deref(),
            self.ai_usage_api_token.as_deref(),
        ) {
            problems.error(&at.key("send_ai_usage_data_to_url"), problem);
        }
    }
}

/// Where the audio goes.
enum Path {
    /// Deepgram reads the URL itself.
    Direct {
        listen: Url,
        authorization: reqwest::header::HeaderValue,
    },
    /// The audio is downloaded and sent to a LiteLLM proxy.
    LiteLlm {
        url: Url,
        authorization: reqwest::header::HeaderValue,
    },
}

/// The `deepgram` vendor.
pub struct Deepgram {
    path: Path,
    model: String,
    minimum_duration: f64,
    minimum_confidence: f64,
    usage: Option<Usage>,
}

impl Deepgram {
    /// The vendor of `options` (checked), its options under `key`.
    pub fn new(
        options: DeepgramOptions,
        module: &Module<LinkKind>,
        key: &str,
    ) -> Result<Deepgram, BuildError> {
        let problem =
            |option: &str, message: String| build_problem(module, &[key, option], message);
        let path = if let Some((proxy, master)) = options.litellm() {
            Path::LiteLlm {
                url: join(proxy, "audio/transcriptions"),
                authorization: secret_header(&format!("Bearer {master}"), "LITELLM_MASTER_KEY")
                    .map_err(|m| problem("LITELLM_MASTER_KEY", m))?,
            }
        } else {
            let secret = options.key().ok_or_else(|| {
                problem(
                    "DEEPGRAM_KEY",
                    "is required (or LITELLM_PROXY_URL and LITELLM_MASTER_KEY)".to_owned(),
                )
            })?;
            let mut listen = join(&options.base_url.0, "v1/listen");
            {
                let mut query = listen.query_pairs_mut();
                for (name, value) in &options.api {
                    for text in query_values(value) {
                        query.append_pair(name, &text);
                    }
                }
            }
            if listen.query() == Some("") {
                listen.set_query(None);
            }
            Path::Direct {
                listen,
                authorization: secret_header(&format!("Token {secret}"), "DEEPGRAM_KEY")
                    .map_err(|m| problem("DEEPGRAM_KEY", m))?,
            }
        };
        let model = options
            .model
            .clone()
            .or_else(|| {
                options
                    .api
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "nova-3".to_owned());
        let usage = Usage::new(
            options.send_ai_usage_data_to_url.as_deref(),
            options.ai_usage_api_token.as_deref(),
        )
        .map_err(|m| problem("send_ai_usage_data_to_url", m))?;
        Ok(Deepgram {
            path,
            model,
            minimum_duration: options.minimum_duration,
            minimum_confidence: options.minimum_confidence,
            usage,
        })
    }

    async fn direct(
        &self,
        listen: &Url,
        authorization: &reqwest::header::HeaderValue,
        dialog: &Dialog<'_>,
        url: &Url,
        shared: &Shared,
    ) -> Result<Option<Value>, LinkError> {
        const WHAT: &str = "Deepgram transcription failed";
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization.clone());
        let headers = http::json_headers(&headers);
        let body = Bytes::from(json!({"url": url.as_str()}).to_string());
        let answer = post_for_object(shared, listen, headers, body, WHAT).await?;
        if let Some(usage) = &self.usage {
            let seconds = answer
                .get("metadata")
                .and_then(|m| m.get("duration"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            usage
                .report(
                    &shared.deliveries,
                    dialog.uuid,
                    Cost {
                        sub_type: "DEEPGRAM_TRANSCRIBE",
                        unit_type: "seconds",
                        input_units: seconds.round().max(0.0) as u64,
                        output_units: 0,
                        model: &self.model,
                    },
                )
                .await;
        }
        let channel = answer
            .get("results")
            .and_then(|r| r.get("channels"))
            .and_then(|c| c.get(0));
        let Some(Value::Object(alternative)) = channel
            .and_then(|c| c.get("alternatives"))
            .and_then(|a| a.get(0))
        else {
            return Err(undocumented(
                WHAT,
                listen,
                "the answer has no results.channels[0].alternatives[0] object",
            ));
        };
        let mut result = alternative.clone();
        if let Some(confidence) = result.get("confidence").and_then(Value::as_f64) {
            if confidence < self.minimum_confidence {
                tracing::warn!(
                    dialog = dialog.index,
                    confidence,
                    minimum = self.minimum_confidence,
                    "Deepgram's transcript is less confident than minimum_confidence; the dialog is skipped"
                );
                return Ok(None);
            }
        }
        let Some(text) = result.get("transcript").and_then(Value::as_str) else {
            return Err(undocumented(
                WHAT,
                listen,
                "results.channels[0].alternatives[0] has no transcript string",
            ));
        };
        non_empty(text, "deepgram", dialog.index)?;
        let language = channel
            .and_then(|c| c.get("detected_language"))
            .cloned()
            .unwrap_or_else(|| json!("en"));
        result.insert("detected_language".to_owned(), language);
        Ok(Some(Value::Object(result)))
    }

    async fn litellm(
        &self,
        proxy: &Url,
        authorization: &reqwest::header::HeaderValue,
        dialog: &Dialog<'_>,
        url: &Url,
        shared: &Shared,
    ) -> Result<Option<Value>, LinkError> {
        const WHAT: &str = "transcription through the LiteLLM proxy failed";
        let audio = shared.fetcher.download(url, dialog.dialog).await?;
        let filename = audio
            .filename
            .clone()
            .unwrap_or_else(|| "audio.mp3".to_owned());
        let (content_type, body) = multipart::Form::new()
            .file("file", &filename, &mediatype(dialog.dialog), &audio.bytes)
            .text("model", &self.model)
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization.clone());
        headers.insert(CONTENT_TYPE, content_type);
        let answer = post_for_object(shared, proxy, headers, body, WHAT).await?;
        let Some(text) = answer.get("text").and_then(Value::as_str) else {
            return Err(undocumented(WHAT, proxy, "the answer has no text string"));
        };
        non_empty(text, "the LiteLLM proxy", dialog.index)?;
        Ok(Some(json!({"transcript": text})))
    }
}

/// The dialog's media type (`mediatype`, or legacy `mimetype`), else a generic one.
pub fn mediatype(dialog: &Map<String, Value>) -> String {
    dialog
        .get("mediatype")
        .or_else(|| dialog.get("mimetype"))
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// `base` with `path` appended (a base with a path of its own keeps it).
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

/// A query value as Deepgram reads it: booleans as `true`/`false`, lists repeated.
fn query_values(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(query_values).collect(),
        Value::Object(_) => vec![value.to_string()],
    }
}

#[async_trait]
impl Vendor for Deepgram {
    fn analysis_vendor(&self) -> &'static str {
        "deepgram"
    }

    fn minimum_duration(&self) -> f64 {
        self.minimum_duration
    }

    fn takes_inline(&self) -> bool {
        false
    }

    fn reads_wav_duration(&self) -> bool {
        true
    }

    async fn transcribe(
        &self,
        dialog: &Dialog<'_>,
        shared: &Shared,
    ) -> Result<Option<Value>, LinkError> {
        let Some(url) = dialog.url else {
            return Ok(None);
        };
        match &self.path {
            Path::Direct {
                listen,
                authorization,
            } => {
                self.direct(listen, authorization, dialog, url, shared)
                    .await
            }
            Path::LiteLlm {
                url: proxy,
                authorization,
            } => {
                self.litellm(proxy, authorization, dialog, url, shared)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_options_become_query_parameters() {
        let values: Vec<String> = [
            json!(true),
            json!(3),
            json!("nova-3"),
            json!(["a", "b"]),
            json!(null),
        ]
        .iter()
        .flat_map(query_values)
        .collect();
        assert_eq!(values, ["true", "3", "nova-3", "a", "b"]);
        let base = Url::parse("http://127.0.0.1:9/dg/").unwrap();
        assert_eq!(
            join(&base, "v1/listen").as_str(),
            "http://127.0.0.1:9/dg/v1/listen"
        );
        let base = Url::parse("https://api.deepgram.com").unwrap();
        assert_eq!(
            join(&base, "v1/listen").as_str(),
            "https://api.deepgram.com/v1/listen"
        );
    }
}
