//! Outbound HTTP shared by the network modules (webhooks, `http_link`, vendors): the process's
//! one client, a request with its own timeout and a bound on the answer it reads, the
//! transient/permanent classification of failures ([`HttpError`], modules.md §1.4), and the
//! retry loop that counts its retries in `conserver_retries_total`; [`delivery`] — the
//! per-target delivery actors every outbound request goes through; [`multipart`] — form bodies.

pub mod delivery;
mod error;
pub mod multipart;

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use conserver_actors::{Retriable, RetryPolicy};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};

use crate::config::{Limits, Retry};
use crate::metrics::Metrics;
use crate::version;

pub use delivery::Deliveries;
pub use error::{logged_body, transient_status, HttpError, LOGGED_BODY_BYTES};

/// The `User-Agent` of every outbound request (modules.md §1.4).
pub fn user_agent() -> String {
    format!("conserver/{}", version::VERSION)
}

/// The process's HTTP client: connection reuse across modules, `User-Agent: conserver/<version>`,
/// TLS certificates verified, connects bounded by `limits.http_timeout` (each request also sets
/// its own overall timeout).
pub fn http_client(limits: &Limits) -> reqwest::Client {
    client_builder(limits).build().unwrap_or_else(|error| {
        // Only a TLS backend that cannot start fails here; the plain client then fails the
        // same way at start-up, where it belongs.
        tracing::error!(%error, "the HTTP client could not be configured; using the default one");
        reqwest::Client::new()
    })
}

fn client_builder(limits: &Limits) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(user_agent())
        .connect_timeout(limits.http_timeout)
}

/// The retry object of the config as the retry loop's policy.
pub fn retry_policy(retry: &Retry) -> RetryPolicy {
    RetryPolicy {
        attempts: retry.attempts,
        initial_backoff: retry.initial_backoff,
        max_backoff: retry.max_backoff,
        multiplier: retry.multiplier,
    }
}

/// Run `call` under `policy`; each retry is logged and counted as
/// `conserver_retries_total{component, reason}`.
pub async fn with_retries<T, E, F, Fut>(
    policy: &RetryPolicy,
    metrics: &Metrics,
    component: &str,
    call: F,
) -> Result<T, E>
where
    E: Retriable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    policy
        .run(call, |attempt, error: &E, wait| {
            metrics
                .retries
                .with_label_values(&[component, error.retry_reason()])
                .inc();
            tracing::warn!(
                component,
                attempt,
                wait_ms = wait.as_millis() as u64,
                %error,
                "transient failure; retrying"
            );
        })
        .await
}

/// One outbound request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, `PUT`, …
    pub method: Method,
    /// Where to.
    pub url: Url,
    /// Sent as they are (`Content-Type` included when wanted).
    pub headers: HeaderMap,
    /// Cheap to clone, so a retried request does not copy the vCon again.
    pub body: Bytes,
    /// Bound on the whole exchange: connect, send, and reading the answer.
    pub timeout: Duration,
    /// The answer's body is read up to this many bytes; the rest is left unread.
    pub max_response_bytes: usize,
}

/// An answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, at most the request's `max_response_bytes`.
    pub body: Bytes,
    /// The body was longer than `max_response_bytes`.
    pub truncated: bool,
}

impl Response {
    /// This answer as an error (for a status the caller does not accept).
    pub fn into_error(self, url: &Url) -> HttpError {
        HttpError::from_status(url.as_str(), self.status, &self.headers, &self.body)
    }
}

/// Send `request` once; an answer of any status is `Ok`, a failure to get one is `Err`.
pub async fn send(client: &reqwest::Client, request: &Request) -> Result<Response, HttpError> {
    let url = request.url.as_str();
    let mut response = client
        .request(request.method.clone(), request.url.clone())
        .headers(request.headers.clone())
        .body(request.body.clone())
        .timeout(request.timeout)
        .send()
        .await
        .map_err(|e| HttpError::from_client(url, &e))?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let mut body = BytesMut::new();
    let mut truncated = false;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| HttpError::from_client(url, &e))?
    {
        let room = request.max_response_bytes - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body: body.freeze(),
        truncated,
    })
}

/// `Content-Type: application/json`, then `extra` (which may override it).
pub fn json_headers(extra: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(extra.len() + 1);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_configured_without_falling_back() {
        let limits = crate::config::Config::from_yaml("{}", None, &crate::config::Env::default())
            .unwrap()
            .limits;
        assert!(client_builder(&limits).build().is_ok());
        assert!(user_agent().starts_with("conserver/"));
    }

    #[test]
    fn json_headers_let_the_config_override_the_content_type() {
        let mut extra = HeaderMap::new();
        extra.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vcon+json"),
        );
        assert_eq!(json_headers(&extra)[CONTENT_TYPE], "application/vcon+json");
        assert_eq!(
            json_headers(&HeaderMap::new())[CONTENT_TYPE],
            "application/json"
        );
    }
}
