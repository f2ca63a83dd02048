//! `transcribe` (modules.md §3.9–§3.13): speech-to-text of a vCon's recordings by one vendor —
//! `deepgram`, `openai` (whisper and gpt-4o-transcribe, also on Azure or a LiteLLM proxy),
//! `groq` or `hugging_face`. The legacy modules `deepgram_link`, `openai_transcribe`,
//! `groq_whisper` and `hugging_face_whisper` are this link with the vendor preset
//! ([`alias_options`]).
//!
//! For each dialog in order: a `recording` with a source the vendor can use, long enough, not
//! transcribed yet, is transcribed, and `{"type": "transcript", "dialog": i, "vendor", "body":
//! <JSON text>, "encoding": "json", "vendor_schema": {"opts": …}}` is appended. Every request
//! (downloads and vendor calls) goes through the target's delivery actor with the instance's
//! retry policy.
//!
//! - [`media`] — the audio of a dialog (download with size bound and hash check, inline
//!   bodies); [`wav`] — WAV header durations; [`usage`] — usage reports; [`chunks`] — splitting
//!   long audio with ffmpeg.
//! - [`deepgram`], [`openai`], [`groq`], [`hugging_face`] — one vendor each.

pub mod chunks;
pub mod deepgram;
pub mod groq;
pub mod hugging_face;
pub mod media;
pub mod openai;
pub mod usage;
pub mod wav;

use std::time::Duration;

use async_trait::async_trait;
use conserver_actors::RetryPolicy;
use reqwest::Url;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::path::YamlPath;
use crate::config::read::Problems;
use crate::config::Module;
use crate::http::{self, Deliveries};
use crate::modules::{read_options, BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;
use media::Fetcher;

/// The vendors, as `vendor` names them.
pub const VENDORS: &[&str] = &["openai", "groq", "hugging_face", "deepgram"];

/// The options of `transcribe`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscribeOptions {
    /// The vendor: `openai`, `groq`, `hugging_face` or `deepgram` (required).
    #[serde(default)]
    pub vendor: Option<VendorName>,
    /// The options of that vendor (modules.md §3.10–3.13); unknown keys are errors.
    #[serde(default)]
    pub vendor_options: Option<Map<String, Value>>,
    /// Legacy name of `vendor_options` (used when `vendor_options` is not given).
    #[serde(default)]
    pub transcribe_options: Option<Map<String, Value>>,
}

/// A supported vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorName {
    /// `openai`.
    OpenAi,
    /// `groq`.
    Groq,
    /// `hugging_face`.
    HuggingFace,
    /// `deepgram`.
    Deepgram,
}

impl VendorName {
    fn from_name(name: &str) -> Option<VendorName> {
        match name {
            "openai" => Some(VendorName::OpenAi),
            "groq" => Some(VendorName::Groq),
            "hugging_face" => Some(VendorName::HuggingFace),
            "deepgram" => Some(VendorName::Deepgram),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for VendorName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if let Some(vendor) = VendorName::from_name(&name) {
            return Ok(vendor);
        }
        if name == "whisper_builtin" {
            return Err(serde::de::Error::custom(format!(
                "whisper_builtin is not provided (the Python server's built-in whisper failed on every vCon); supported vendors: {}",
                VENDORS.join(", ")
            )));
        }
        Err(serde::de::Error::unknown_variant(&name, VENDORS))
    }
}

impl TranscribeOptions {
    /// The vendor options as written, and the key they are under.
    fn vendor_map(&self) -> (&'static str, Map<String, Value>) {
        match (&self.vendor_options, &self.transcribe_options) {
            (Some(own), _) => ("vendor_options", own.clone()),
            (None, Some(legacy)) => ("transcribe_options", legacy.clone()),
            (None, None) => ("vendor_options", Map::new()),
        }
    }
}

impl ModuleOptions for TranscribeOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];

    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        // A missing vendor is reported by [`check`], which sees what was written.
        let Some(vendor) = self.vendor else {
            return;
        };
        if self.vendor_options.is_some() && self.transcribe_options.is_some() {
            problems.warn(format!(
                "{}: ignored (vendor_options is given)",
                at.key("transcribe_options")
            ));
        }
        let (key, map) = self.vendor_map();
        let at = at.key(key);
        match vendor {
            VendorName::Deepgram => {
                read_options::<deepgram::DeepgramOptions>(&map, &at, problems);
            }
            VendorName::OpenAi => {
                read_options::<openai::OpenAiOptions>(&map, &at, problems);
            }
            VendorName::Groq => {
                read_options::<groq::GroqOptions>(&map, &at, problems);
            }
            VendorName::HuggingFace => {
                read_options::<hugging_face::HuggingFaceOptions>(&map, &at, problems);
            }
        }
    }
}

/// Check the options of a `transcribe` instance: those of [`TranscribeOptions`], and a
/// `vendor` that is missing (a bad one is reported as such).
pub fn check(options: &Map<String, Value>, at: &YamlPath, problems: &mut Problems) {
    if !options.contains_key("vendor") {
        problems.error(
            &at.key("vendor"),
            format!("is required: one of {}", VENDORS.join(", ")),
        );
    }
    crate::modules::check_options::<TranscribeOptions>(options, at, problems);
}

/// The options an instance named by a legacy alias runs with (modules.md §3.9): its options
/// become `vendor_options`, unless they already contain `vendor` or `vendor_options` (then
/// they are used as they are, with `vendor` defaulted); and the deprecation warning.
pub fn alias_options(
    alias: &str,
    options: &Map<String, Value>,
) -> Option<(Map<String, Value>, String)> {
    let vendor = match alias {
        "deepgram_link" => "deepgram",
        "openai_transcribe" => "openai",
        "groq_whisper" => "groq",
        "hugging_face_whisper" => "hugging_face",
        _ => return None,
    };
    let preset = if options.contains_key("vendor") || options.contains_key("vendor_options") {
        let mut preset = options.clone();
        if !preset.contains_key("vendor") {
            preset.insert("vendor".to_owned(), json!(vendor));
        }
        preset
    } else {
        let mut preset = Map::new();
        preset.insert("vendor".to_owned(), json!(vendor));
        preset.insert("vendor_options".to_owned(), Value::Object(options.clone()));
        preset
    };
    let warning = format!(
        "{alias:?} is a deprecated alias of the transcribe link with vendor {vendor}; write module: transcribe with options vendor: {vendor} and vendor_options: {{…}}"
    );
    Some((preset, warning))
}

/// What every vendor call of an instance shares.
pub struct Shared {
    /// The delivery actors.
    pub deliveries: Deliveries,
    /// Media downloads.
    pub fetcher: Fetcher,
    /// The instance's retry policy.
    pub retry: RetryPolicy,
    /// The instance's name (for retries and logs).
    pub component: String,
    /// Bound on one vendor call: the vendor's `timeout`, else `limits.http_timeout`.
    pub timeout: Duration,
}

/// One dialog to transcribe.
pub struct Dialog<'a> {
    /// Its index.
    pub index: usize,
    /// Its members.
    pub dialog: &'a Map<String, Value>,
    /// Its `url`, when it has one.
    pub url: Option<&'a Url>,
    /// The vCon's uuid.
    pub uuid: &'a str,
}

/// One vendor.
#[async_trait]
pub trait Vendor: Send + Sync {
    /// The `vendor` of the analysis it writes.
    fn analysis_vendor(&self) -> &'static str;
    /// Seconds a recording must last to be transcribed.
    fn minimum_duration(&self) -> f64;
    /// Whether an inline `body` is a source it can use (else only a `url`).
    fn takes_inline(&self) -> bool;
    /// Whether a dialog without `duration` gets it from the WAV header at its `.wav` URL.
    fn reads_wav_duration(&self) -> bool {
        false
    }
    /// The transcription of one dialog; `None`: the dialog is skipped (a result the options
    /// reject).
    async fn transcribe(
        &self,
        dialog: &Dialog<'_>,
        shared: &Shared,
    ) -> Result<Option<Value>, LinkError>;
}

/// The `transcribe` link.
pub struct Transcribe {
    vendor: Box<dyn Vendor>,
    /// `vendor_schema.opts`: the vendor's options over the Python defaults, secrets left out.
    schema_opts: Value,
    shared: Shared,
}

/// Read a vendor's options at `links.<name>.options.<key>`.
fn vendor_options<T: ModuleOptions>(
    module: &Module<LinkKind>,
    key: &str,
    map: &Map<String, Value>,
) -> Result<T, BuildError> {
    let at = YamlPath::root()
        .key("links")
        .key(&module.name)
        .key("options")
        .key(key);
    let mut problems = Problems::new(None);
    let typed = read_options::<T>(map, &at, &mut problems);
    let (found, _) = problems.into_parts();
    match typed {
        Some(typed) if found.is_empty() => Ok(typed),
        _ => Err(BuildError::Options(found)),
    }
}

/// A problem found when building (what the compiler could not see, such as the environment).
pub fn build_problem(module: &Module<LinkKind>, relative: &[&str], message: String) -> BuildError {
    let mut at = YamlPath::root()
        .key("links")
        .key(&module.name)
        .key("options");
    for key in relative {
        at = at.key(key);
    }
    BuildError::Options(vec![crate::config::ConfigProblem {
        path: at,
        line: None,
        message,
    }])
}

/// `vendor_schema.opts` (modules.md §1.5): the Python module's defaults overlaid with the
/// options as written, in that order, without secrets (the redaction rule of `GET /config`)
/// or the keys that name where usage reports and proxies go.
pub fn schema_opts(defaults: Value, written: &Map<String, Value>) -> Value {
    let mut opts = match defaults {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for (key, value) in written {
        opts.insert(key.clone(), value.clone());
    }
    opts.retain(|key, _| {
        !crate::config::redact::is_secret_key(key)
            && !matches!(
                key.as_str(),
                "send_ai_usage_data_to_url" | "LITELLM_PROXY_URL" | "AZURE_OPENAI_ENDPOINT"
            )
    });
    Value::Object(opts)
}

impl LinkModule for Transcribe {
    type Options = TranscribeOptions;

    fn build(
        options: TranscribeOptions,
        module: &Module<LinkKind>,
        ctx: &ModuleContext,
    ) -> Result<Transcribe, BuildError> {
        let vendor = options.vendor.ok_or_else(|| {
            build_problem(
                module,
                &["vendor"],
                format!("is required: one of {}", VENDORS.join(", ")),
            )
        })?;
        let (key, map) = options.vendor_map();
        let retry = http::retry_policy(&module.retry);
        let (vendor, defaults, timeout): (Box<dyn Vendor>, Value, Option<Duration>) = match vendor {
            VendorName::Deepgram => {
                let typed = vendor_options::<deepgram::DeepgramOptions>(module, key, &map)?;
                let timeout = typed.timeout;
                (
                    Box::new(deepgram::Deepgram::new(typed, module, key)?),
                    deepgram::python_defaults(),
                    timeout,
                )
            }
            VendorName::OpenAi => {
                let typed = vendor_options::<openai::OpenAiOptions>(module, key, &map)?;
                let timeout = typed.timeout;
                (
                    Box::new(openai::OpenAi::new(typed, module, key)?),
                    openai::python_defaults(),
                    timeout,
                )
            }
            VendorName::Groq => {
                let typed = vendor_options::<groq::GroqOptions>(module, key, &map)?;
                let timeout = typed.timeout;
                let environment = std::env::var("GROQ_API_KEY").ok();
                (
                    Box::new(groq::Groq::new(typed, environment, module, key)?),
                    groq::python_defaults(),
                    timeout,
                )
            }
            VendorName::HuggingFace => {
                let typed = vendor_options::<hugging_face::HuggingFaceOptions>(module, key, &map)?;
                let timeout = typed.timeout;
                (
                    Box::new(hugging_face::HuggingFace::new(typed)),
                    hugging_face::python_defaults(),
                    timeout,
                )
            }
        };
        let timeout = timeout.unwrap_or(ctx.limits.http_timeout);
        Ok(Transcribe {
            vendor,
            schema_opts: schema_opts(defaults, &map),
            shared: Shared {
                deliveries: ctx.deliveries.clone(),
                fetcher: Fetcher {
                    deliveries: ctx.deliveries.clone(),
                    timeout: ctx.limits.http_timeout,
                    max_bytes: ctx.limits.max_media_bytes,
                    retry: retry.clone(),
                    component: module.name.clone(),
                },
                retry,
                component: module.name.clone(),
                timeout,
            },
        })
    }
}

/// Whether the vCon has an analysis `{type: <kind>, dialog: index}`.
pub fn has_analysis(vcon: &Value, kind: &str, index: usize) -> bool {
    vcon.get("analysis")
        .and_then(Value::as_array)
        .is_some_and(|all| {
            all.iter().any(|a| {
                a.get("type").and_then(Value::as_str) == Some(kind)
                    && a.get("dialog").and_then(Value::as_u64) == Some(index as u64)
            })
        })
}

/// Append `entry` to the vCon's `analysis` (created when absent).
pub fn push_analysis(vcon: &mut Document, entry: Value) -> Result<(), LinkError> {
    let Value::Object(members) = vcon.value_mut() else {
        return Err(LinkError::Content(
            "the vCon is not a JSON object".to_owned(),
        ));
    };
    let analysis = members
        .entry("analysis")
        .or_insert_with(|| Value::Array(Vec::new()));
    if analysis.is_null() {
        *analysis = Value::Array(Vec::new());
    }
    match analysis {
        Value::Array(entries) => {
            entries.push(entry);
            Ok(())
        }
        _ => Err(LinkError::Content(
            "the vCon's analysis is not an array".to_owned(),
        )),
    }
}

/// The dialogs of the vCon (none when `dialog` is absent or not an array).
pub fn dialogs(vcon: &Value) -> &[Value] {
    vcon.get("dialog")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[async_trait]
impl Link for Transcribe {
    async fn run(
        &self,
        vcon: &mut Document,
        _ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        if !vcon.is_unsigned() {
            return Ok(LinkOutcome::Skipped);
        }
        let uuid = vcon.uuid().to_string();
        let mut added = 0;
        for index in 0..dialogs(vcon.value()).len() {
            let Some(dialog) = dialogs(vcon.value())[index].as_object().cloned() else {
                continue;
            };
            if media::string(&dialog, "type") != Some("recording")
                || has_analysis(vcon.value(), "transcript", index)
            {
                continue;
            }
            let url = media::dialog_url(index, &dialog)?;
            let inline = self.vendor.takes_inline() && media::has_body(&dialog);
            if url.is_none() && !inline {
                tracing::debug!(dialog = index, "no recording the vendor can use; skipped");
                continue;
            }
            let mut duration = dialog.get("duration").and_then(Value::as_f64);
            if duration.is_none() && self.vendor.reads_wav_duration() {
                if let Some(url) = url
                    .as_ref()
                    .filter(|u| u.path().to_ascii_lowercase().ends_with(".wav"))
                {
                    duration = self.wav_duration(url, index).await;
                    if let Some(seconds) = duration {
                        set_duration(vcon, index, seconds);
                    }
                }
            }
            if duration.is_some_and(|d| d < self.vendor.minimum_duration()) {
                tracing::debug!(
                    dialog = index,
                    ?duration,
                    "recording shorter than minimum_duration; skipped"
                );
                continue;
            }
            let call = Dialog {
                index,
                dialog: &dialog,
                url: url.as_ref(),
                uuid: &uuid,
            };
            let Some(result) = self.vendor.transcribe(&call, &self.shared).await? else {
                continue;
            };
            push_analysis(
                vcon,
                json!({
                    "type": "transcript",
                    "dialog": index,
                    "vendor": self.vendor.analysis_vendor(),
                    "body": super::json_text::python_json(&result),
                    "encoding": "json",
                    "vendor_schema": {"opts": self.schema_opts},
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

impl Transcribe {
    /// The duration in the WAV header at `url`; a failure is logged and the dialog is
    /// transcribed anyway (as in the Python server).
    async fn wav_duration(&self, url: &Url, index: usize) -> Option<f64> {
        match self.shared.fetcher.head_bytes(url, wav::HEADER_BYTES).await {
            Ok(head) => {
                let duration = wav::duration(&head);
                if duration.is_none() {
                    tracing::warn!(dialog = index, %url, "no WAV header at the recording's URL; transcribed without a duration");
                }
                duration
            }
            Err(error) => {
                tracing::warn!(dialog = index, error = %crate::report(&error), "the WAV header could not be read; transcribed without a duration");
                None
            }
        }
    }
}

/// Write `seconds` into the `duration` of dialog `index`.
fn set_duration(vcon: &mut Document, index: usize, seconds: f64) {
    let Some(number) = serde_json::Number::from_f64(seconds) else {
        return;
    };
    if let Some(Value::Object(dialog)) = vcon
        .value_mut()
        .get_mut("dialog")
        .and_then(|d| d.get_mut(index))
    {
        dialog.insert("duration".to_owned(), Value::Number(number));
    }
}

/// The largest vendor answer read (a transcript with every word and its timing).
const MAX_ANSWER_BYTES: usize = 32 << 20;

/// POST `body` to `url` until a 2xx answers (the instance's retry policy; other statuses fail
/// at once with the vendor's message); the answer must be a JSON object.
pub async fn post_for_object(
    shared: &Shared,
    url: &Url,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
    what: &'static str,
) -> Result<Map<String, Value>, LinkError> {
    let request = http::Request {
        method: reqwest::Method::POST,
        url: url.clone(),
        headers,
        body,
        timeout: shared.timeout,
        max_response_bytes: MAX_ANSWER_BYTES,
    };
    let response = shared
        .deliveries
        .exchange(&request, &shared.retry, &shared.component)
        .await
        .map_err(|source| LinkError::Call { what, source })?;
    let not_documented = |message: String| LinkError::Call {
        what,
        source: http::HttpError::Permanent {
            url: url.to_string(),
            message,
        },
    };
    if response.truncated {
        return Err(not_documented(format!(
            "the answer is larger than {MAX_ANSWER_BYTES} bytes"
        )));
    }
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(Value::Object(answer)) => Ok(answer),
        Ok(_) | Err(_) => Err(not_documented(format!(
            "the answer is not a JSON object: {}",
            http::logged_body(&response.body)
        ))),
    }
}

/// The answer is not what the vendor documents.
pub fn undocumented(what: &'static str, url: &Url, message: impl Into<String>) -> LinkError {
    LinkError::Call {
        what,
        source: http::HttpError::Permanent {
            url: url.to_string(),
            message: message.into(),
        },
    }
}

/// `text` is a transcript with words in it; else the vendor answered an empty one.
pub fn non_empty(text: &str, vendor: &str, index: usize) -> Result<(), LinkError> {
    if text.trim().is_empty() {
        return Err(LinkError::Content(format!(
            "{vendor} returned an empty transcript for dialog {index}"
        )));
    }
    Ok(())
}

/// An `Authorization` (or other) header value from a secret; one that cannot be sent is a
/// problem of the options, named without its value.
pub fn secret_header(value: &str, option: &str) -> Result<reqwest::header::HeaderValue, String> {
    let mut header = reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| format!("the value of {option} cannot be sent in an HTTP header"))?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_preset_the_vendor() {
        let options = json!({"DEEPGRAM_KEY": "k", "minimum_duration": 30});
        let (preset, warning) =
            alias_options("deepgram_link", options.as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(preset),
            json!({"vendor": "deepgram", "vendor_options": options})
        );
        assert!(warning.contains("deprecated alias of the transcribe link with vendor deepgram"));
        let own = json!({"vendor_options": {"API_KEY": "g"}});
        let (preset, _) = alias_options("groq_whisper", own.as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(preset),
            json!({"vendor_options": {"API_KEY": "g"}, "vendor": "groq"})
        );
        let given = json!({"vendor": "openai"});
        let (preset, _) =
            alias_options("hugging_face_whisper", given.as_object().unwrap()).unwrap();
        assert_eq!(Value::Object(preset), given, "a vendor given is kept");
        assert!(alias_options("transcribe", &Map::new()).is_none());
    }

    #[test]
    fn vendor_schema_leaves_secrets_out() {
        let written = json!({"API_KEY": "x", "ai_usage_api_token": "t", "send_ai_usage_data_to_url": "u", "model": "m", "minimum_duration": 10});
        assert_eq!(
            schema_opts(groq::python_defaults(), written.as_object().unwrap()),
            json!({"minimum_duration": 10, "Content-Type": "audio/flac", "model": "m"})
        );
    }
}
