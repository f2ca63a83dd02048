//! The `vcon_mcp` storage (modules.md §4.8): the vcon-mcp server's REST API — `POST
//! {base_url}/vcons` (the server upserts by uuid, so a retried save is safe), `GET` and
//! `DELETE {base_url}/vcons/{uuid}` — with `Authorization: Bearer <api_key>` when a key is
//! set. It goes through the process's HTTP client; failures are classified by [`crate::http`]
//! (connection errors, timeouts, 408, 429 and 5xx transient; other statuses permanent, with the
//! server's message). One try per call: the storage sink retries a failed save.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use conserver_actors::Retriable;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Saved, Storage, StorageError, StorageKind, StorageModule, NAME_OPTION};
use crate::config::read::positive_seconds;
use crate::config::Module;
use crate::http::{self, HttpError, Request, Response, LOGGED_BODY_BYTES};
use crate::modules::values::HttpUrl;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};

/// The address vcon-mcp serves its REST API at by default.
const DEFAULT_BASE_URL: &str = "http://127.0.0.1:3000/api/v1";

/// Room in a `GET` answer beyond the largest vCon, for the envelope around it.
const ENVELOPE_BYTES: usize = 64 * 1024;

/// The options of the `vcon_mcp` storage.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VconMcpOptions {
    /// The REST API's base URL, up to its version (`https://mcp.example.com/api/v1`);
    /// requests go to `{base_url}/vcons`.
    #[serde(default = "default_base_url")]
    pub base_url: HttpUrl,
    /// One of the server's `API_KEYS`, sent as `Authorization: Bearer <api_key>`; empty sends
    /// no `Authorization` (a server with `API_AUTH_REQUIRED=false`).
    #[serde(default, deserialize_with = "bearer")]
    pub api_key: Option<HeaderValue>,
    /// Seconds (> 0) one request may take, answer included.
    #[serde(default = "default_timeout", deserialize_with = "positive_seconds")]
    pub timeout: Duration,
}

impl fmt::Debug for VconMcpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VconMcpOptions")
            .field("base_url", &self.base_url.0.as_str())
            .field(
                "api_key",
                &self.api_key.as_ref().map(|_| crate::config::redact::MASK),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ModuleOptions for VconMcpOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[NAME_OPTION];
}

fn default_base_url() -> HttpUrl {
    // A constant that parses.
    HttpUrl(Url::parse(DEFAULT_BASE_URL).expect("the default base URL is a URL"))
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `Bearer <key>` as a header value hidden from logs; `None` for an empty key.
fn bearer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<HeaderValue>, D::Error> {
    let key = String::deserialize(deserializer)?;
    if key.is_empty() {
        return Ok(None);
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
        de::Error::custom("cannot be sent in a header (control characters or non-ASCII)")
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// A configured `vcon_mcp` storage.
pub struct VconMcpStorage {
    /// `{base_url}/vcons`.
    collection: Url,
    headers: HeaderMap,
    timeout: Duration,
    /// The largest answer read: a vCon of `limits.max_vcon_bytes` in its envelope.
    max_answer_bytes: usize,
    http: reqwest::Client,
}

impl StorageModule for VconMcpStorage {
    type Options = VconMcpOptions;

    fn build(
        options: VconMcpOptions,
        _module: &Module<StorageKind>,
        ctx: &ModuleContext,
    ) -> Result<VconMcpStorage, BuildError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(bearer) = options.api_key {
            headers.insert(AUTHORIZATION, bearer);
        }
        Ok(VconMcpStorage {
            collection: joined(&options.base_url.0, &["vcons"]),
            headers,
            timeout: options.timeout,
            max_answer_bytes: ctx.limits.max_vcon_bytes.saturating_add(ENVELOPE_BYTES),
            http: ctx.http.clone(),
        })
    }
}

/// `base` with `segments` appended to its path (a trailing `/` of `base` is not doubled).
fn joined(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

impl VconMcpStorage {
    fn one(&self, uuid: Uuid) -> Url {
        let uuid = uuid.to_string();
        joined(&self.collection, &[uuid.as_str()])
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Bytes,
        max_response_bytes: usize,
    ) -> Result<Response, HttpError> {
        let request = Request {
            method,
            url,
            headers: self.headers.clone(),
            body,
            timeout: self.timeout,
            max_response_bytes,
        };
        http::send(&self.http, &request).await
    }
}

/// A failed call as a storage error: `what`, the server's `message` when it sent one, and the
/// HTTP error (its status and body) as the source.
fn failure(what: String, error: HttpError) -> StorageError {
    let what = match &error {
        HttpError::Status { body, .. } => match server_message(body.as_bytes()) {
            Some(message) => format!("{what}: {message}"),
            None => what,
        },
        _ => what,
    };
    if error.is_retriable() {
        StorageError::transient(what, error)
    } else {
        StorageError::permanent(what, error)
    }
}

/// The `message` of vcon-mcp's error envelope (`{"success": false, "error": …, "message": …}`).
fn server_message(body: &[u8]) -> Option<String> {
    let envelope: Value = serde_json::from_slice(body).ok()?;
    envelope
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[async_trait]
impl Storage for VconMcpStorage {
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError> {
        let what = || {
            format!(
                "vcon_mcp: POST {} of vCon {} failed",
                self.collection, vcon.uuid
            )
        };
        let body = Bytes::from(vcon.text.clone());
        let response = self
            .call(
                Method::POST,
                self.collection.clone(),
                body,
                LOGGED_BODY_BYTES,
            )
            .await
            .map_err(|e| failure(what(), e))?;
        if response.status.is_success() {
            return Ok(());
        }
        Err(failure(what(), response.into_error(&self.collection)))
    }

    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        let url = self.one(uuid);
        let what = || format!("vcon_mcp: GET {url} failed");
        let response = self
            .call(
                Method::GET,
                url.clone(),
                Bytes::new(),
                self.max_answer_bytes,
            )
            .await
            .map_err(|e| failure(what(), e))?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status.is_success() {
            return Err(failure(what(), response.into_error(&url)));
        }
        if response.truncated {
            return Err(StorageError::refused(format!(
                "{}: the answer is larger than {} bytes",
                what(),
                self.max_answer_bytes
            )));
        }
        let envelope: Value = serde_json::from_slice(&response.body).map_err(|e| {
            StorageError::permanent(format!("{}: the answer is not JSON", what()), e)
        })?;
        match envelope.get("vcon") {
            Some(vcon @ Value::Object(_)) => Ok(Some(vcon.to_string())),
            _ => Err(StorageError::refused(format!(
                "{}: the answer has no \"vcon\" object",
                what()
            ))),
        }
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        let url = self.one(uuid);
        let what = || format!("vcon_mcp: DELETE {url} failed");
        let response = self
            .call(Method::DELETE, url.clone(), Bytes::new(), LOGGED_BODY_BYTES)
            .await
            .map_err(|e| failure(what(), e))?;
        match response.status {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => Ok(true),
            _ => Err(failure(what(), response.into_error(&url))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::read_in_test;
    use serde_json::json;

    fn options(options: Value) -> Result<VconMcpOptions, Vec<String>> {
        read_in_test(options)
    }

    #[test]
    fn defaults_are_the_python_server_s() {
        let defaults = options(json!({})).unwrap();
        assert_eq!(defaults.base_url.0.as_str(), "http://127.0.0.1:3000/api/v1");
        assert!(defaults.api_key.is_none());
        assert_eq!(defaults.timeout, Duration::from_secs(30));
        assert!(options(json!({"api_key": ""})).unwrap().api_key.is_none());
    }

    #[test]
    fn given_values_and_bad_ones() {
        let given = options(json!({
            "base_url": "https://mcp.example/api/v1/", "api_key": "k-123", "timeout": "2.5",
            "name": "vcon_mcp",
        }))
        .unwrap();
        assert_eq!(given.api_key.as_ref().unwrap(), "Bearer k-123");
        assert!(given.api_key.as_ref().unwrap().is_sensitive());
        assert_eq!(given.timeout, Duration::from_millis(2500));
        let problems = options(json!({
            "base_url": "mcp.example", "api_key": "a\nb", "timeout": 0, "url": "x",
        }))
        .unwrap_err()
        .join("\n");
        for expected in [
            "options.base_url: 'mcp.example' has no scheme",
            "options.api_key: cannot be sent in a header",
            "options.timeout:",
            "options.url: unknown key \"url\"",
        ] {
            assert!(problems.contains(expected), "{expected} in:\n{problems}");
        }
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let given = options(json!({"api_key": "k-123"})).unwrap();
        let shown = format!("{given:?}");
        assert!(!shown.contains("k-123"), "{shown}");
        assert!(shown.contains("\"***\""), "{shown}");
    }

    #[test]
    fn urls_are_joined_without_doubled_slashes() {
        for base in ["http://h:3000/api/v1", "http://h:3000/api/v1/"] {
            let base = Url::parse(base).unwrap();
            assert_eq!(
                joined(&base, &["vcons"]).as_str(),
                "http://h:3000/api/v1/vcons"
            );
        }
        let root = Url::parse("http://h/").unwrap();
        assert_eq!(
            joined(
                &joined(&root, &["vcons"]),
                &["0194a3f4-5b6c-7d8e-9f00-000000000001"]
            )
            .as_str(),
            "http://h/vcons/0194a3f4-5b6c-7d8e-9f00-000000000001"
        );
    }

    #[test]
    fn the_server_s_message_is_read_from_its_envelope() {
        assert_eq!(
            server_message(br#"{"success":false,"error":"Error","message":"Invalid party"}"#)
                .as_deref(),
            Some("Invalid party")
        );
        assert_eq!(server_message(b"<html>"), None);
        let error = failure(
            "vcon_mcp: POST x failed".to_owned(),
            HttpError::from_status(
                "http://h/vcons",
                StatusCode::BAD_REQUEST,
                &HeaderMap::new(),
                br#"{"message":"Missing required field: parties"}"#,
            ),
        );
        assert!(matches!(error, StorageError::Permanent { .. }));
        assert_eq!(
            error.to_string(),
            "vcon_mcp: POST x failed: Missing required field: parties"
        );
    }
}
