//! `wtf_transcribe` (modules.md §3.14): WTF-format transcription of each recording by a
//! self-hosted vfun server, written as `{"type": "wtf_transcription", "dialog": i, "vendor":
//! "vfun", "body", "encoding": "json", "mediatype": "application/json", "schema": "wtf-1.0"}`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use conserver_actors::RetryPolicy;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::transcribe::media::{self, Audio, Fetcher};
use super::transcribe::{dialogs, has_analysis, push_analysis, undocumented};
use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::read::positive_seconds;
use crate::config::Module;
use crate::http::{self, multipart, Deliveries, Request};
use crate::modules::values::HttpUrl;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;

/// The options of `wtf_transcribe`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WtfTranscribeOptions {
    /// The vfun server's transcription URL (required).
    #[serde(rename = "vfun-server-url")]
    pub vfun_server_url: HttpUrl,
    /// The language (`en`, `es`, …); none: the server detects it.
    #[serde(default)]
    pub language: Option<String>,
    /// Ask the server to tell the speakers apart.
    #[serde(default)]
    pub diarize: bool,
    /// Seconds (> 0) one transcription request may take.
    #[serde(
        rename = "vfun-timeout",
        default = "default_vfun_timeout",
        deserialize_with = "positive_seconds"
    )]
    pub vfun_timeout: Duration,
    /// Seconds (> 0) one media download may take.
    #[serde(
        rename = "url-timeout",
        default = "default_url_timeout",
        deserialize_with = "positive_seconds"
    )]
    pub url_timeout: Duration,
    /// Bearer token for the server.
    #[serde(rename = "api-key", default)]
    pub api_key: Option<String>,
    /// Allow `file://` dialog URLs (they let a vCon read any file this server can read).
    #[serde(default)]
    pub allow_file_urls: bool,
}

fn default_vfun_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_url_timeout() -> Duration {
    Duration::from_secs(60)
}

impl ModuleOptions for WtfTranscribeOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];
}

/// The `wtf_transcribe` link.
pub struct WtfTranscribe {
    url: Url,
    authorization: Option<HeaderValue>,
    language: Option<String>,
    diarize: bool,
    timeout: Duration,
    allow_file_urls: bool,
    fetcher: Fetcher,
    deliveries: Deliveries,
    retry: RetryPolicy,
    component: String,
}

impl LinkModule for WtfTranscribe {
    type Options = WtfTranscribeOptions;

    fn build(
        options: WtfTranscribeOptions,
        module: &Module<LinkKind>,
        ctx: &ModuleContext,
    ) -> Result<WtfTranscribe, BuildError> {
        let authorization = match options.api_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => Some(
                super::transcribe::secret_header(&format!("Bearer {key}"), "api-key")
                    .map_err(|m| super::transcribe::build_problem(module, &["api-key"], m))?,
            ),
            None => None,
        };
        let retry = http::retry_policy(&module.retry);
        Ok(WtfTranscribe {
            url: options.vfun_server_url.0,
            authorization,
            language: options.language.filter(|l| !l.is_empty()),
            diarize: options.diarize,
            timeout: options.vfun_timeout,
            allow_file_urls: options.allow_file_urls,
            fetcher: Fetcher {
                deliveries: ctx.deliveries.clone(),
                timeout: options.url_timeout,
                max_bytes: ctx.limits.max_media_bytes,
                retry: retry.clone(),
                component: module.name.clone(),
            },
            deliveries: ctx.deliveries.clone(),
            retry,
            component: module.name.clone(),
        })
    }
}

impl WtfTranscribe {
    /// The audio of dialog `index`: from its URL, else its body; `None` when it has neither.
    async fn audio(
        &self,
        index: usize,
        dialog: &Map<String, Value>,
    ) -> Result<Option<Audio>, LinkError> {
        if let Some(text) = media::string(dialog, "url").filter(|u| !u.trim().is_empty()) {
            if let Some(path) = text.strip_prefix("file://") {
                if !self.allow_file_urls {
                    return Err(LinkError::Content(format!(
                        "dialog {index}: the url {text:?} is a local file, and allow_file_urls is false"
                    )));
                }
                return self.local_file(index, path, dialog).await.map(Some);
            }
            let url = media::dialog_url(index, dialog)?;
            if let Some(url) = url {
                return self.fetcher.download(&url, dialog).await.map(Some);
            }
        }
        if media::has_body(dialog) {
            return self.fetcher.inline(index, dialog).map(Some);
        }
        Ok(None)
    }

    async fn local_file(
        &self,
        index: usize,
        path: &str,
        dialog: &Map<String, Value>,
    ) -> Result<Audio, LinkError> {
        let failed = |e: std::io::Error| {
            LinkError::Content(format!(
                "dialog {index}: the file {path} could not be read: {e}"
            ))
        };
        let size = tokio::fs::metadata(path).await.map_err(failed)?.len();
        if size > self.fetcher.max_bytes as u64 {
            return Err(LinkError::Content(format!(
                "dialog {index}: the file {path} is larger than limits.max_media_bytes ({} bytes)",
                self.fetcher.max_bytes
            )));
        }
        let bytes = tokio::fs::read(path).await.map_err(failed)?;
        media::check_hashes(path, dialog, &bytes)?;
        Ok(Audio {
            bytes: Bytes::from(bytes),
            filename: None,
        })
    }

    /// The server's WTF document for one recording.
    async fn transcribe(
        &self,
        index: usize,
        dialog: &Map<String, Value>,
        audio: &Audio,
    ) -> Result<Value, LinkError> {
        const WHAT: &str = "vfun transcription failed";
        let filename = media::string(dialog, "filename")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("audio_{index}.wav"));
        let part_type = dialog
            .get("mediatype")
            .or_else(|| dialog.get("mimetype"))
            .and_then(Value::as_str)
            .unwrap_or("audio/wav");
        let mut form = multipart::Form::new()
            .file("file-binary", &filename, part_type, &audio.bytes)
            .text("diarize", if self.diarize { "true" } else { "false" });
        if let Some(language) = &self.language {
            form = form.text("language", language);
        }
        let (content_type, body) = form.finish();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type);
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        let request = Request {
            method: Method::POST,
            url: self.url.clone(),
            headers,
            body,
            timeout: self.timeout,
            max_response_bytes: 32 << 20,
        };
        let response = self
            .deliveries
            .exchange(&request, &self.retry, &self.component)
            .await
            .map_err(|source| LinkError::Call { what: WHAT, source })?;
        let mut answer: Value = serde_json::from_slice(&response.body).map_err(|_| {
            undocumented(
                WHAT,
                &self.url,
                format!(
                    "the answer is not JSON: {}",
                    http::logged_body(&response.body)
                ),
            )
        })?;
        if let Value::String(text) = &answer {
            answer = serde_json::from_str(text).map_err(|_| {
                undocumented(
                    WHAT,
                    &self.url,
                    "the answer is a JSON string that does not hold JSON",
                )
            })?;
        }
        if !answer.is_object() {
            return Err(undocumented(
                WHAT,
                &self.url,
                "the answer is not a JSON object",
            ));
        }
        if let (Some(language), Some(Value::Object(transcript))) =
            (&self.language, answer.get_mut("transcript"))
        {
            transcript.insert("language".to_owned(), json!(language));
        }
        Ok(answer)
    }
}

#[async_trait]
impl Link for WtfTranscribe {
    async fn run(
        &self,
        vcon: &mut Document,
        _ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        if !vcon.is_unsigned() {
            return Ok(LinkOutcome::Skipped);
        }
        let mut added = 0;
        for index in 0..dialogs(vcon.value()).len() {
            let Some(dialog) = dialogs(vcon.value())[index].as_object().cloned() else {
                continue;
            };
            if media::string(&dialog, "type") != Some("recording")
                || has_analysis(vcon.value(), "wtf_transcription", index)
            {
                continue;
            }
            let Some(audio) = self.audio(index, &dialog).await? else {
                tracing::debug!(dialog = index, "a recording without url or body; skipped");
                continue;
            };
            let document = self.transcribe(index, &dialog, &audio).await?;
            push_analysis(
                vcon,
                json!({
                    "type": "wtf_transcription",
                    "dialog": index,
                    "vendor": "vfun",
                    "body": super::json_text::python_json(&document),
                    "encoding": "json",
                    "mediatype": "application/json",
                    "schema": "wtf-1.0",
                }),
            )?;
            added += 1;
        }
        Ok(if added > 0 {
            LinkOutcome::Continue
        } else {
            LinkOutcome::Skipped
        })
    }
}
