//! The audio of a dialog, as the transcription links get it (modules.md §3.9): downloaded
//! from its `url` through the target's delivery actor, bounded by `limits.max_media_bytes`
//! and checked against the dialog's `content_hash` (or legacy `alg` + `signature`); or decoded
//! from its inline `body` (base64url, padded or not, or standard base64).

use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use bytes::Bytes;
use conserver_actors::RetryPolicy;
use reqwest::header::{HeaderMap, CONTENT_DISPOSITION};
use reqwest::{Method, Url};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

use crate::http::{Deliveries, HttpError, Request};
use crate::links::LinkError;

/// base64url, with or without padding.
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Standard base64, with or without padding.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Downloaded or decoded audio.
#[derive(Debug, Clone)]
pub struct Audio {
    /// The bytes.
    pub bytes: Bytes,
    /// A file name for a multipart upload: the dialog's `filename`, the download's
    /// `Content-Disposition`, or the last segment of the URL; `None` when none says.
    pub filename: Option<String>,
}

/// How media is fetched: through the delivery actors, with a timeout, a size bound and the
/// module's retry policy.
#[derive(Clone)]
pub struct Fetcher {
    /// The delivery actors.
    pub deliveries: Deliveries,
    /// Bound on one download.
    pub timeout: Duration,
    /// `limits.max_media_bytes`.
    pub max_bytes: usize,
    /// Retries of a download that failed transiently.
    pub retry: RetryPolicy,
    /// For `conserver_retries_total{component}`.
    pub component: String,
}

impl Fetcher {
    /// Download `url` whole, checked against the hashes `dialog` states.
    pub async fn download(
        &self,
        url: &Url,
        dialog: &Map<String, Value>,
    ) -> Result<Audio, LinkError> {
        let request = Request {
            method: Method::GET,
            url: url.clone(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: self.timeout,
            max_response_bytes: self.max_bytes,
        };
        let response = self
            .deliveries
            .exchange(&request, &self.retry, &self.component)
            .await
            .map_err(|source| LinkError::Call {
                what: "the recording could not be downloaded",
                source,
            })?;
        if response.truncated {
            return Err(LinkError::Call {
                what: "the recording could not be downloaded",
                source: HttpError::Permanent {
                    url: url.to_string(),
                    message: format!(
                        "the recording is larger than limits.max_media_bytes ({} bytes)",
                        self.max_bytes
                    ),
                },
            });
        }
        check_hashes(url.as_str(), dialog, &response.body)?;
        let filename = string(dialog, "filename")
            .map(str::to_owned)
            .or_else(|| disposition_filename(&response.headers))
            .or_else(|| url_filename(url));
        Ok(Audio {
            bytes: response.body,
            filename,
        })
    }

    /// The first `bytes` of `url` (a `Range` request; a server that ignores it is read only
    /// that far).
    pub async fn head_bytes(&self, url: &Url, bytes: usize) -> Result<Bytes, HttpError> {
        let mut headers = HeaderMap::new();
        if let Ok(range) = format!("bytes=0-{}", bytes.saturating_sub(1)).parse() {
            headers.insert(reqwest::header::RANGE, range);
        }
        let request = Request {
            method: Method::GET,
            url: url.clone(),
            headers,
            body: Bytes::new(),
            timeout: self.timeout,
            max_response_bytes: bytes,
        };
        let response = self
            .deliveries
            .exchange(&request, &self.retry, &self.component)
            .await?;
        Ok(response.body)
    }

    /// The dialog's inline `body` decoded (`encoding` `none` is taken as it is).
    pub fn inline(&self, index: usize, dialog: &Map<String, Value>) -> Result<Audio, LinkError> {
        let body = string(dialog, "body").unwrap_or_default();
        let bytes = decode_body(body, string(dialog, "encoding"), self.max_bytes)
            .map_err(|why| LinkError::Content(format!("dialog {index}: the inline body {why}")))?;
        Ok(Audio {
            bytes: Bytes::from(bytes),
            filename: string(dialog, "filename").map(str::to_owned),
        })
    }
}

/// A string member of `object`.
pub fn string<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
    object.get(key).and_then(Value::as_str)
}

/// The dialog's `url`, when it is a non-empty string; a value that is no http(s) URL is an
/// error.
pub fn dialog_url(index: usize, dialog: &Map<String, Value>) -> Result<Option<Url>, LinkError> {
    let Some(text) = string(dialog, "url").filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let url = Url::parse(text.trim()).map_err(|e| {
        LinkError::Content(format!(
            "dialog {index}: the url {text:?} is not a URL: {e}"
        ))
    })?;
    match url.scheme() {
        "http" | "https" => Ok(Some(url)),
        other => Err(LinkError::Content(format!(
            "dialog {index}: the url {text:?} has the scheme {other:?}; only http and https recordings are fetched"
        ))),
    }
}

/// Whether the dialog has a non-empty inline `body`.
pub fn has_body(dialog: &Map<String, Value>) -> bool {
    string(dialog, "body").is_some_and(|b| !b.is_empty())
}

/// Decode an inline body: base64url or standard base64 (padded or not, line breaks allowed),
/// or the text itself for `encoding: none`. At most `max_bytes` decoded.
pub fn decode_body(
    body: &str,
    encoding: Option<&str>,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    if encoding == Some("none") {
        return Ok(body.as_bytes().to_vec());
    }
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.len() / 4 * 3 > max_bytes {
        return Err(format!(
            "is larger than limits.max_media_bytes ({max_bytes} bytes)"
        ));
    }
    let engine = if compact.contains(['-', '_']) {
        &URL_SAFE
    } else {
        &STANDARD
    };
    engine
        .decode(compact.as_bytes())
        .map_err(|e| format!("is not base64url or base64: {e}"))
}

/// Check `content` against every SHA-512 the dialog states: `content_hash` (`sha512-<base64url>`,
/// or an array of such), or legacy `alg: "SHA-512"` + `signature`. A mismatch names both.
pub fn check_hashes(
    url: &str,
    dialog: &Map<String, Value>,
    content: &[u8],
) -> Result<(), LinkError> {
    let mut stated: Vec<String> = Vec::new();
    match dialog.get("content_hash") {
        Some(Value::String(one)) => stated.push(one.clone()),
        Some(Value::Array(many)) => {
            stated.extend(many.iter().filter_map(Value::as_str).map(str::to_owned))
        }
        _ => {}
    }
    let expected: Vec<&str> = stated
        .iter()
        .filter_map(|h| {
            h.split_once('-')
                .filter(|(alg, _)| alg.eq_ignore_ascii_case("sha512"))
                .map(|(_, digest)| digest)
        })
        .collect();
    let legacy = (string(dialog, "alg").is_some_and(|a| a.eq_ignore_ascii_case("SHA-512")))
        .then(|| string(dialog, "signature"))
        .flatten();
    if expected.is_empty() && legacy.is_none() {
        return Ok(());
    }
    let digest = Sha512::digest(content);
    let actual = URL_SAFE_NO_PAD_ENCODE.encode(digest);
    for (member, stated) in expected
        .iter()
        .map(|d| ("content_hash", *d))
        .chain(legacy.map(|s| ("signature", s)))
    {
        let matches = URL_SAFE
            .decode(stated.trim().as_bytes())
            .or_else(|_| STANDARD.decode(stated.trim().as_bytes()))
            .is_ok_and(|bytes| bytes.as_slice() == digest.as_slice());
        if !matches {
            return Err(LinkError::Content(format!(
                "the recording at {url} does not match its {member}: the dialog states sha512-{stated}, the download is sha512-{actual}"
            )));
        }
    }
    Ok(())
}

/// base64url without padding, the form `content_hash` is written in.
const URL_SAFE_NO_PAD_ENCODE: GeneralPurpose =
    GeneralPurpose::new(&alphabet::URL_SAFE, base64::engine::general_purpose::NO_PAD);

/// `content_hash` of `content` as a vCon states it (`sha512-<base64url>`).
pub fn content_hash(content: &[u8]) -> String {
    format!(
        "sha512-{}",
        URL_SAFE_NO_PAD_ENCODE.encode(Sha512::digest(content))
    )
}

fn disposition_filename(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_DISPOSITION)?.to_str().ok()?;
    let start = value.find("filename=")? + "filename=".len();
    let rest = value[start..].trim_start_matches('"');
    let name: String = rest
        .chars()
        .take_while(|c| *c != '"' && *c != ';')
        .collect();
    (!name.trim().is_empty()).then(|| name.trim().to_owned())
}

fn url_filename(url: &Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?;
    let decoded = percent_decode(last);
    (!decoded.is_empty()).then_some(decoded)
}

fn percent_decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn inline_bodies_decode_in_every_accepted_form() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        for encoded in [
            base64::engine::general_purpose::URL_SAFE.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
        ] {
            assert_eq!(
                decode_body(&encoded, Some("base64url"), 1 << 20).unwrap(),
                bytes
            );
        }
        assert_eq!(decode_body("abc", Some("none"), 10).unwrap(), b"abc");
        assert!(decode_body("!!!", None, 10)
            .unwrap_err()
            .contains("not base64"));
        assert!(decode_body(&"A".repeat(400), None, 100)
            .unwrap_err()
            .contains("max_media_bytes"));
    }

    #[test]
    fn hashes_are_checked_in_both_forms() {
        let content = b"RIFF....WAVE";
        let hash = content_hash(content);
        let digest = hash.trim_start_matches("sha512-");
        assert!(check_hashes("u", &object(json!({"content_hash": hash})), content).is_ok());
        assert!(check_hashes(
            "u",
            &object(json!({"content_hash": [hash.clone(), "md5-x"]})),
            content
        )
        .is_ok());
        assert!(check_hashes(
            "u",
            &object(json!({"alg": "SHA-512", "signature": format!("{digest}==")})),
            content
        )
        .is_ok());
        assert!(check_hashes("u", &object(json!({})), content).is_ok());
        let wrong = content_hash(b"other");
        let error = check_hashes(
            "http://m/a.wav",
            &object(json!({"content_hash": wrong})),
            content,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            format!(
                "the recording at http://m/a.wav does not match its content_hash: the dialog states {wrong}, the download is {hash}"
            )
        );
        assert!(!LinkError::Content(error).is_retriable());
    }

    #[test]
    fn file_names_come_from_the_answer_or_the_url() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_DISPOSITION,
            "attachment; filename=\"track.mp4\"".parse().unwrap(),
        );
        assert_eq!(disposition_filename(&headers).as_deref(), Some("track.mp4"));
        let url = Url::parse("http://m/rec/my%20call.wav?sig=1").unwrap();
        assert_eq!(url_filename(&url).as_deref(), Some("my call.wav"));
        assert_eq!(url_filename(&Url::parse("http://m/").unwrap()), None);
    }
}
