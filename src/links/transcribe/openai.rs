//! Vendor `openai` (modules.md §3.11; legacy module `openai_transcribe`): the OpenAI
//! transcription API (`whisper-1`, `gpt-4o-transcribe`, …), directly, on Azure OpenAI, through a
//! LiteLLM proxy, or on any OpenAI-compatible server (`base_url`). Recordings longer than
//! `max_chunk_duration` are split ([`super::chunks`]) and the chunk results combined.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::chunks::Splitter;
use super::deepgram::{join, mediatype};
use super::groq::upload_name;
use super::usage::{Cost, Usage};
use super::{
    build_problem, non_empty, post_for_object, secret_header, undocumented, wav, Dialog, Shared,
    Vendor,
};
use crate::config::path::YamlPath;
use crate::config::read::{optional_positive_seconds, positive_seconds, Problems};
use crate::config::Module;
use crate::http::multipart;
use crate::links::{LinkError, LinkKind};
use crate::modules::values::HttpUrl;
use crate::modules::{BuildError, ModuleOptions};

/// The options of the `openai` vendor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiOptions {
    /// OpenAI key (the first of `OPENAI_API_KEY`, `openai_api_key`, `api_key` that is set).
    #[serde(rename = "OPENAI_API_KEY", default)]
    pub openai_api_key_upper: Option<String>,
    /// OpenAI key.
    #[serde(default)]
    pub openai_api_key: Option<String>,
    /// OpenAI key.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Sent as `OpenAI-Organization`.
    #[serde(default)]
    pub organization: Option<String>,
    /// Same as `organization`.
    #[serde(default)]
    pub organization_key: Option<String>,
    /// Sent as `OpenAI-Project`.
    #[serde(default)]
    pub project: Option<String>,
    /// Same as `project`.
    #[serde(default)]
    pub project_key: Option<String>,
    /// Any OpenAI-compatible server.
    #[serde(default = "default_base_url")]
    pub base_url: HttpUrl,
    /// Azure OpenAI endpoint (with `AZURE_OPENAI_API_KEY`).
    #[serde(rename = "AZURE_OPENAI_ENDPOINT", default)]
    pub azure_endpoint: Option<HttpUrl>,
    /// Azure OpenAI key, sent as `api-key`.
    #[serde(rename = "AZURE_OPENAI_API_KEY", default)]
    pub azure_api_key: Option<String>,
    /// Azure OpenAI API version.
    #[serde(rename = "AZURE_OPENAI_API_VERSION", default = "default_azure_version")]
    pub azure_api_version: String,
    /// A LiteLLM proxy (with `LITELLM_MASTER_KEY`); wins over Azure and OpenAI.
    #[serde(rename = "LITELLM_PROXY_URL", default)]
    pub litellm_proxy_url: Option<HttpUrl>,
    /// The proxy's master key, sent as bearer token.
    #[serde(rename = "LITELLM_MASTER_KEY", default)]
    pub litellm_master_key: Option<String>,
    /// The transcription model (on Azure, the deployment).
    #[serde(default = "default_model")]
    pub model: String,
    /// The language sent to the API.
    #[serde(default = "default_language")]
    pub language: Option<String>,
    /// Seconds a recording must last to be transcribed.
    #[serde(default = "default_minimum_duration")]
    pub minimum_duration: f64,
    /// Longer recordings are split into chunks of at most this many seconds (> 0).
    #[serde(default = "default_max_chunk", deserialize_with = "positive_seconds")]
    pub max_chunk_duration: Duration,
    /// Cut at silences rather than at the limit.
    #[serde(default = "default_true")]
    pub use_silence_chunking: bool,
    /// dBFS below which audio counts as silence.
    #[serde(default = "default_silence_thresh")]
    pub silence_thresh: f64,
    /// Milliseconds a silence must last to be a cut point.
    #[serde(default = "default_silence_len")]
    pub silence_len: u64,
    /// The ffmpeg program that measures and splits long recordings.
    #[serde(default = "default_ffmpeg")]
    pub ffmpeg_path: String,
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
    HttpUrl(Url::parse("https://api.openai.com/v1").expect("a valid URL literal"))
}
fn default_azure_version() -> String {
    "2024-10-21".to_owned()
}
fn default_model() -> String {
    "gpt-4o-transcribe".to_owned()
}
fn default_language() -> Option<String> {
    Some("en".to_owned())
}
fn default_minimum_duration() -> f64 {
    3.0
}
fn default_max_chunk() -> Duration {
    Duration::from_secs(480)
}
fn default_true() -> bool {
    true
}
fn default_silence_thresh() -> f64 {
    -40.0
}
fn default_silence_len() -> u64 {
    2000
}
fn default_ffmpeg() -> String {
    "ffmpeg".to_owned()
}

/// The Python module's defaults, the start of `vendor_schema.opts`.
pub fn python_defaults() -> Value {
    json!({
        "OPENAI_API_KEY": null,
        "AZURE_OPENAI_API_KEY": null,
        "AZURE_OPENAI_ENDPOINT": null,
        "AZURE_OPENAI_API_VERSION": "2024-10-21",
        "model": "gpt-4o-transcribe",
        "language": "en",
        "minimum_duration": 3,
        "max_chunk_duration": 480,
        "use_silence_chunking": true,
        "silence_thresh": -40,
        "silence_len": 2000
    })
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

/// Where requests go, by the precedence of modules.md §1.6.
enum Endpoint {
    LiteLlm(Url, String),
    Azure(Url, String),
    OpenAi(Url, String),
}

impl OpenAiOptions {
    fn endpoint(&self) -> Option<Endpoint> {
        if let (Some(proxy), Some(key)) = (&self.litellm_proxy_url, set(&self.litellm_master_key)) {
            return Some(Endpoint::LiteLlm(
                join(&proxy.0, "audio/transcriptions"),
                key.to_owned(),
            ));
        }
        if let (Some(endpoint), Some(key)) = (&self.azure_endpoint, set(&self.azure_api_key)) {
            let mut url = join(
                &endpoint.0,
                &format!("openai/deployments/{}/audio/transcriptions", self.model),
            );
            url.query_pairs_mut()
                .append_pair("api-version", &self.azure_api_version);
            return Some(Endpoint::Azure(url, key.to_owned()));
        }
        let key = set(&self.openai_api_key_upper)
            .or(set(&self.openai_api_key))
            .or(set(&self.api_key))?;
        Some(Endpoint::OpenAi(
            join(&self.base_url.0, "audio/transcriptions"),
            key.to_owned(),
        ))
    }
}

const NO_CREDENTIALS: &str = "an OpenAI key (OPENAI_API_KEY, openai_api_key or api_key), the pair AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_API_KEY, or the pair LITELLM_PROXY_URL + LITELLM_MASTER_KEY is required";

impl ModuleOptions for OpenAiOptions {
    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        if self.endpoint().is_none() {
            problems.error(&at.key("OPENAI_API_KEY"), NO_CREDENTIALS);
        }
        if let Err(problem) = Usage::new(
            self.send_ai_usage_data_to_url.as_deref(),
            self.ai_usage_api_token.as_deref(),
        ) {
            problems.error(&at.key("send_ai_usage_data_to_url"), problem);
        }
    }
}

/// The `openai` vendor.
pub struct OpenAi {
    url: Url,
    headers: HeaderMap,
    model: String,
    language: Option<String>,
    minimum_duration: f64,
    splitter: Splitter,
    usage: Option<Usage>,
}

impl OpenAi {
    /// The vendor of `options` (checked), its options under `key`.
    pub fn new(
        options: OpenAiOptions,
        module: &Module<LinkKind>,
        key: &str,
    ) -> Result<OpenAi, BuildError> {
        let problem =
            |option: &str, message: String| build_problem(module, &[key, option], message);
        let endpoint = options
            .endpoint()
            .ok_or_else(|| problem("OPENAI_API_KEY", NO_CREDENTIALS.to_owned()))?;
        let mut headers = HeaderMap::new();
        let url = match endpoint {
            Endpoint::LiteLlm(url, secret) => {
                headers.insert(
                    AUTHORIZATION,
                    secret_header(&format!("Bearer {secret}"), "LITELLM_MASTER_KEY")
                        .map_err(|m| problem("LITELLM_MASTER_KEY", m))?,
                );
                url
            }
            Endpoint::Azure(url, secret) => {
                headers.insert(
                    HeaderName::from_static("api-key"),
                    secret_header(&secret, "AZURE_OPENAI_API_KEY")
                        .map_err(|m| problem("AZURE_OPENAI_API_KEY", m))?,
                );
                url
            }
            Endpoint::OpenAi(url, secret) => {
                headers.insert(
                    AUTHORIZATION,
                    secret_header(&format!("Bearer {secret}"), "OPENAI_API_KEY")
                        .map_err(|m| problem("OPENAI_API_KEY", m))?,
                );
                for (name, value, option) in [
                    (
                        "openai-organization",
                        set(&options.organization).or(set(&options.organization_key)),
                        "organization",
                    ),
                    (
                        "openai-project",
                        set(&options.project).or(set(&options.project_key)),
                        "project",
                    ),
                ] {
                    if let Some(value) = value {
                        let value = HeaderValue::from_str(value).map_err(|_| {
                            problem(option, "cannot be sent as an HTTP header".to_owned())
                        })?;
                        headers.insert(HeaderName::from_static(name), value);
                    }
                }
                url
            }
        };
        let usage = Usage::new(
            options.send_ai_usage_data_to_url.as_deref(),
            options.ai_usage_api_token.as_deref(),
        )
        .map_err(|m| problem("send_ai_usage_data_to_url", m))?;
        Ok(OpenAi {
            url,
            headers,
            model: options.model,
            language: options.language.filter(|l| !l.is_empty()),
            minimum_duration: options.minimum_duration,
            splitter: Splitter {
                program: options.ffmpeg_path,
                max_seconds: options.max_chunk_duration.as_secs_f64(),
                silence: options
                    .use_silence_chunking
                    .then(|| (options.silence_thresh, options.silence_len as f64 / 1000.0)),
            },
            usage,
        })
    }

    /// One chunk to the API; the response object.
    async fn send_chunk(
        &self,
        bytes: &[u8],
        filename: &str,
        mediatype: &str,
        shared: &Shared,
    ) -> Result<Map<String, Value>, LinkError> {
        const WHAT: &str = "OpenAI transcription failed";
        let mut form = multipart::Form::new()
            .file("file", filename, mediatype, bytes)
            .text("model", &self.model);
        if let Some(language) = &self.language {
            form = form.text("language", language);
        }
        let (content_type, body) = form.finish();
        let mut headers = self.headers.clone();
        headers.insert(CONTENT_TYPE, content_type);
        let answer = post_for_object(shared, &self.url, headers, body, WHAT).await?;
        if !answer.get("text").is_some_and(Value::is_string) {
            return Err(undocumented(
                WHAT,
                &self.url,
                "the answer has no text string",
            ));
        }
        Ok(answer)
    }
}

/// Several chunk results as one (modules.md §3.11).
pub fn combine(results: Vec<Map<String, Value>>) -> Value {
    if results.len() == 1 {
        return Value::Object(results.into_iter().next().unwrap_or_default());
    }
    let text = results
        .iter()
        .filter_map(|r| r.get("text").and_then(Value::as_str))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let sum = |key: &str| -> u64 {
        results
            .iter()
            .filter_map(|r| {
                r.get("usage")
                    .and_then(|u| u.get(key))
                    .and_then(Value::as_u64)
            })
            .sum()
    };
    let (input, output, total) = (
        sum("input_tokens"),
        sum("output_tokens"),
        sum("total_tokens"),
    );
    let mut combined = results.first().cloned().unwrap_or_default();
    combined.insert("text".to_owned(), json!(text));
    combined.insert(
        "usage".to_owned(),
        json!({
            "type": "tokens",
            "input_tokens": input,
            "total_tokens": total,
            "output_tokens": output,
            "input_token_details": {"text_tokens": 0, "audio_tokens": input}
        }),
    );
    combined.insert(
        "chunked_transcription".to_owned(),
        json!({"total_chunks": results.len(), "chunk_results": results}),
    );
    Value::Object(combined)
}

#[async_trait]
impl Vendor for OpenAi {
    fn analysis_vendor(&self) -> &'static str {
        "openai"
    }

    fn minimum_duration(&self) -> f64 {
        self.minimum_duration
    }

    fn takes_inline(&self) -> bool {
        false
    }

    async fn transcribe(
        &self,
        dialog: &Dialog<'_>,
        shared: &Shared,
    ) -> Result<Option<Value>, LinkError> {
        let Some(url) = dialog.url else {
            return Ok(None);
        };
        let audio = shared.fetcher.download(url, dialog.dialog).await?;
        let filename = upload_name(&audio, dialog.dialog, dialog.index);
        let known = dialog
            .dialog
            .get("duration")
            .and_then(Value::as_f64)
            .or_else(|| wav::duration(&audio.bytes));
        let chunks = match known {
            Some(seconds) if seconds <= self.splitter.max_seconds => vec![audio.bytes.clone()],
            _ => match self.splitter.split(&audio.bytes, &filename).await {
                Ok(chunks) => chunks,
                // Not known to be too long and not measurable: sent whole.
                Err(why) if known.is_none() => {
                    tracing::warn!(dialog = dialog.index, reason = %why, "the recording could not be measured; it is sent whole");
                    vec![audio.bytes.clone()]
                }
                Err(why) => {
                    return Err(LinkError::Content(format!(
                        "dialog {}: the recording is longer than max_chunk_duration and could not be split: {why}",
                        dialog.index
                    )))
                }
            },
        };
        let (name, kind) = if chunks.len() == 1 {
            (filename.clone(), mediatype(dialog.dialog))
        } else {
            (String::new(), "audio/mpeg".to_owned())
        };
        let mut results = Vec::with_capacity(chunks.len());
        for (n, chunk) in chunks.iter().enumerate() {
            let chunk_name = if chunks.len() == 1 {
                name.clone()
            } else {
                format!("chunk_{n:03}.mp3")
            };
            results.push(self.send_chunk(chunk, &chunk_name, &kind, shared).await?);
        }
        let result = combine(results);
        if let Some(usage) = &self.usage {
            let tokens = |key: &str| {
                result
                    .get("usage")
                    .and_then(|u| u.get(key))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            usage
                .report(
                    &shared.deliveries,
                    dialog.uuid,
                    Cost {
                        sub_type: "OPENAI_TRANSCRIBE",
                        unit_type: "tokens",
                        input_units: tokens("input_tokens"),
                        output_units: tokens("output_tokens"),
                        model: &self.model,
                    },
                )
                .await;
        }
        non_empty(
            result
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            "openai",
            dialog.index,
        )?;
        Ok(Some(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str, input: u64, output: u64) -> Map<String, Value> {
        json!({"text": text, "usage": {"type": "tokens", "input_tokens": input, "output_tokens": output, "total_tokens": input + output}})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn chunk_results_are_combined_as_the_python_server_did() {
        let one = combine(vec![chunk("hello", 1, 2)]);
        assert_eq!(
            one,
            json!({"text": "hello", "usage": {"type": "tokens", "input_tokens": 1, "output_tokens": 2, "total_tokens": 3}})
        );
        let both = combine(vec![chunk("hello", 10, 2), chunk("world", 20, 3)]);
        assert_eq!(both["text"], "hello world");
        assert_eq!(
            both["usage"],
            json!({"type": "tokens", "input_tokens": 30, "output_tokens": 5, "total_tokens": 35,
                   "input_token_details": {"text_tokens": 0, "audio_tokens": 30}})
        );
        assert_eq!(both["chunked_transcription"]["total_chunks"], 2);
        assert_eq!(
            both["chunked_transcription"]["chunk_results"][1]["text"],
            "world"
        );
    }
}
