//! `http_link` (modules.md §3.8): custom processing in any language, as an HTTP service. The
//! vCon is sent; a 2xx JSON answer is the new vCon, 204 or an empty answer leaves it unchanged,
//! `halt_status` halts the chain, 429/5xx/connection failures are retried, anything else fails.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use conserver_actors::RetryPolicy;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Deserializer};

use super::options::{self, lenient, lenient_option, string_map};
use super::webhook::timeout_option;
use super::{ingest_error_text, Link, LinkContext, LinkError, LinkOutcome, Shared};
use crate::config::Module;
use crate::http::{self, HttpError, Request};
use crate::vcon::{Document, IngestOptions};

/// The version of the request/answer contract described in modules.md §3.8.
const PROTOCOL_VERSION: &str = "1";

/// The options of `http_link`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLinkOptions {
    /// The service's http(s) URL (required).
    #[serde(deserialize_with = "lenient")]
    pub url: String,
    /// `POST` or `PUT`.
    #[serde(default)]
    pub method: HttpMethod,
    /// Headers added to each request (`Content-Type: application/json` is sent unless
    /// overridden here; the `X-Conserver-*` and `X-Vcon-Uuid` headers always are).
    #[serde(default, deserialize_with = "string_map")]
    pub headers: Vec<(String, String)>,
    /// Seconds one request may take, answer included; default `limits.http_timeout`.
    #[serde(default, deserialize_with = "lenient_option")]
    pub timeout: Option<f64>,
    /// The status (400 … 599) by which the service halts the chain for this vCon.
    #[serde(default = "default_halt_status", deserialize_with = "lenient")]
    pub halt_status: i64,
}

fn default_halt_status() -> i64 {
    422
}

/// The request method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpMethod {
    /// `POST`.
    #[default]
    Post,
    /// `PUT`.
    Put,
}

impl<'de> Deserialize<'de> for HttpMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name: String = lenient(deserializer)?;
        match name.to_ascii_uppercase().as_str() {
            "POST" => Ok(HttpMethod::Post),
            "PUT" => Ok(HttpMethod::Put),
            _ => Err(serde::de::Error::custom(format!(
                "unknown variant '{name}', expected one of POST, PUT"
            ))),
        }
    }
}

/// The `http_link` link.
pub struct HttpLink {
    url: Url,
    method: Method,
    headers: HeaderMap,
    timeout: Duration,
    halt_status: StatusCode,
    ingest: IngestOptions,
    shared: Shared,
    retry: RetryPolicy,
    component: String,
}

/// Build from the module's options.
pub fn build(module: &Module, shared: &Shared) -> Result<HttpLink, Vec<String>> {
    options::parse_checked(module, &["after_link"], |options: HttpLinkOptions| {
        let mut problems = Vec::new();
        let url = http::parse_url(&options.url)
            .map_err(|why| problems.push(format!("options.url: {why}")));
        let headers =
            http::parse_headers(options.headers.iter().map(|(k, v)| (k, v))).map_err(|bad| {
                problems.extend(
                    bad.into_iter()
                        .map(|(name, why)| format!("options.headers.{name}: {why}")),
                )
            });
        let timeout = timeout_option(options.timeout, shared).map_err(|why| problems.push(why));
        let halt_status = u16::try_from(options.halt_status)
            .ok()
            .filter(|code| (400..=599).contains(code))
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or_else(|| {
                problems.push(format!(
                    "options.halt_status: {} must be an HTTP status between 400 and 599",
                    options.halt_status
                ))
            });
        match (url, headers, timeout, halt_status) {
            (Ok(url), Ok(headers), Ok(timeout), Ok(halt_status)) => Ok(HttpLink {
                url,
                method: match options.method {
                    HttpMethod::Post => Method::POST,
                    HttpMethod::Put => Method::PUT,
                },
                headers: http::json_headers(&headers),
                timeout,
                halt_status,
                ingest: IngestOptions {
                    accept_signed: true,
                    max_bytes: shared.limits.max_vcon_bytes,
                },
                shared: shared.clone(),
                retry: http::retry_policy(&module.retry),
                component: module.name.clone(),
            }),
            _ => Err(problems),
        }
    })
}

/// What the service decided.
enum Answer {
    /// A 2xx with a body: the new vCon's text.
    Replace(Bytes),
    /// 204, or a 2xx with an empty body.
    Unchanged,
    /// `halt_status`.
    Halt,
}

impl HttpLink {
    /// The request for this run: the vCon as body, the protocol headers over the configured ones.
    fn request(
        &self,
        body: Bytes,
        ctx: &LinkContext<'_>,
        uuid: &str,
    ) -> Result<Request, LinkError> {
        let mut headers = self.headers.clone();
        for (name, value) in [
            ("x-conserver-link-protocol", PROTOCOL_VERSION),
            ("x-conserver-chain", ctx.chain),
            ("x-conserver-link", ctx.link),
            ("x-vcon-uuid", uuid),
        ] {
            let value = HeaderValue::from_str(value)
                .map_err(|_| LinkError(format!("'{value}' cannot be sent as the {name} header")))?;
            headers.insert(HeaderName::from_static(name), value);
        }
        Ok(Request {
            method: self.method.clone(),
            url: self.url.clone(),
            headers,
            body,
            timeout: self.timeout,
            max_response_bytes: self.ingest.max_bytes,
        })
    }

    /// One exchange, classified.
    async fn call(&self, request: &Request) -> Result<Answer, HttpError> {
        let response = http::send(&self.shared.http, request).await?;
        if response.status == self.halt_status {
            return Ok(Answer::Halt);
        }
        if !response.status.is_success() {
            return Err(response.into_error(&self.url));
        }
        if response.truncated {
            return Err(HttpError::Permanent {
                url: self.url.to_string(),
                message: format!(
                    "the answer is larger than limits.max_vcon_bytes ({} bytes)",
                    self.ingest.max_bytes
                ),
            });
        }
        if response.status == StatusCode::NO_CONTENT
            || response.body.iter().all(u8::is_ascii_whitespace)
        {
            return Ok(Answer::Unchanged);
        }
        Ok(Answer::Replace(response.body))
    }
}

#[async_trait]
impl Link for HttpLink {
    async fn run(
        &self,
        vcon: &mut Document,
        ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        let sent = Bytes::from(vcon.text().to_owned());
        let request = self.request(sent.clone(), ctx, &vcon.uuid().to_string())?;
        let answer = http::with_retries(&self.retry, &self.shared.metrics, &self.component, || self.call(&request))
            .await
            .map_err(|e| {
                tracing::warn!(link = %self.component, vcon_id = %vcon.uuid(), error = %e, "http_link failed");
                LinkError(format!("http_link call failed: {e}"))
            })?;
        match answer {
            Answer::Halt => Ok(LinkOutcome::Halt),
            Answer::Unchanged => Ok(LinkOutcome::Continue),
            // The same text back: nothing to replace or write.
            Answer::Replace(body) if body == sent => Ok(LinkOutcome::Continue),
            Answer::Replace(body) => {
                vcon.replace(&body, &self.ingest).map_err(|e| {
                    let why = ingest_error_text(&e);
                    tracing::warn!(
                        link = %self.component,
                        vcon_id = %vcon.uuid(),
                        body = %http::logged_body(&body),
                        "http_link answered something that is not a valid vCon: {why}"
                    );
                    LinkError(format!(
                        "http_link answered something that is not a valid vCon: {why}"
                    ))
                })?;
                Ok(LinkOutcome::Continue)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::options::tests::module;
    use crate::links::test_support::shared;
    use serde_json::json;

    #[test]
    fn options_defaults_and_checks() {
        let link = build(
            &module("http_link", json!({"url": "http://svc.local/run"})),
            &shared(),
        )
        .unwrap();
        assert_eq!(link.method, Method::POST);
        assert_eq!(link.halt_status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(link.timeout, shared().limits.http_timeout);
        let link = build(
            &module("http_link", json!({"url": "https://svc/x", "method": "put", "halt_status": "409", "timeout": 3})),
            &shared(),
        )
        .unwrap();
        assert_eq!(link.method, Method::PUT);
        assert_eq!(link.halt_status, StatusCode::CONFLICT);
        assert_eq!(
            build(&module("http_link", json!({})), &shared())
                .err()
                .unwrap(),
            ["options.url: required"]
        );
        let problems = build(
            &module(
                "http_link",
                json!({"url": "svc/x", "method": "GET", "halt_status": 200, "verb": 1}),
            ),
            &shared(),
        )
        .err()
        .unwrap();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("options.verb: unknown option"));
        assert_eq!(
            problems[1],
            "options.method: unknown variant 'GET', expected one of POST, PUT"
        );
        assert!(problems[2].starts_with("options.url: 'svc/x' has no scheme"));
        assert!(problems[3].starts_with("options.halt_status: 200 must be"));
        let problems = build(
            &module("http_link", json!({"url": "http://x", "halt_status": 200})),
            &shared(),
        )
        .err()
        .unwrap();
        assert_eq!(
            problems,
            ["options.halt_status: 200 must be an HTTP status between 400 and 599"]
        );
    }
}
