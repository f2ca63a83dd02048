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

use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::read::optional_positive_seconds;
use crate::config::Module;
use crate::http::{self, Deliveries, HttpError, Request};
use crate::metrics::Metrics;
use crate::modules::values::{Headers, HttpUrl};
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::{Document, IngestOptions};

/// The version of the request/answer contract described in modules.md §3.8.
const PROTOCOL_VERSION: &str = "1";

/// The options of `http_link`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLinkOptions {
    /// The service's http(s) URL (required).
    pub url: HttpUrl,
    /// `POST` or `PUT` (any case).
    #[serde(default)]
    pub method: HttpMethod,
    /// Headers added to each request (`Content-Type: application/json` is sent unless
    /// overridden here; the `X-Conserver-*` and `X-Vcon-Uuid` headers always are).
    #[serde(default)]
    pub headers: Headers,
    /// Seconds (> 0) one request may take, answer included; default `limits.http_timeout`.
    #[serde(default, deserialize_with = "optional_positive_seconds")]
    pub timeout: Option<Duration>,
    /// The status (400 … 599) by which the service halts the chain for this vCon.
    #[serde(default = "default_halt_status", deserialize_with = "halt_status")]
    pub halt_status: StatusCode,
}

fn default_halt_status() -> StatusCode {
    StatusCode::UNPROCESSABLE_ENTITY
}

fn halt_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<StatusCode, D::Error> {
    let code = u16::deserialize(deserializer)?;
    (400..=599)
        .contains(&code)
        .then(|| StatusCode::from_u16(code).ok())
        .flatten()
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "must be an HTTP status between 400 and 599, found {code}"
            ))
        })
}

impl ModuleOptions for HttpLinkOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];
    /// Headers carry credentials under any name (`X-Auth`, `Cookie`, a signature).
    const SECRETS: &'static [&'static str] = &["headers"];
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
        let name = String::deserialize(deserializer)?;
        match name.to_ascii_uppercase().as_str() {
            "POST" => Ok(HttpMethod::Post),
            "PUT" => Ok(HttpMethod::Put),
            _ => Err(serde::de::Error::unknown_variant(&name, &["POST", "PUT"])),
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
    deliveries: Deliveries,
    metrics: std::sync::Arc<Metrics>,
    retry: RetryPolicy,
    component: String,
}

impl LinkModule for HttpLink {
    type Options = HttpLinkOptions;

    fn build(
        options: HttpLinkOptions,
        module: &Module<LinkKind>,
        ctx: &ModuleContext,
    ) -> Result<HttpLink, BuildError> {
        Ok(HttpLink {
            url: options.url.0,
            method: match options.method {
                HttpMethod::Post => Method::POST,
                HttpMethod::Put => Method::PUT,
            },
            headers: http::json_headers(&options.headers.0),
            timeout: options.timeout.unwrap_or(ctx.limits.http_timeout),
            halt_status: options.halt_status,
            ingest: IngestOptions {
                accept_signed: true,
                max_bytes: ctx.limits.max_vcon_bytes,
            },
            deliveries: ctx.deliveries.clone(),
            metrics: ctx.metrics.clone(),
            retry: http::retry_policy(&module.retry),
            component: module.name.clone(),
        })
    }
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
            let value = HeaderValue::from_str(value).map_err(|_| {
                LinkError::Content(format!("'{value}' cannot be sent as the {name} header"))
            })?;
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
        let response = self.deliveries.send(request).await?;
        if response.status == self.halt_status {
            return Ok(Answer::Halt);
        }
        if !response.status.is_success() {
            return Err(response.into_error(&self.url));
        }
        if response.truncated {
            return Err(HttpError::Permanent {
                url: crate::config::redact::url_secrets(self.url.as_str()),
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
        let answer = http::with_retries(&self.retry, &self.metrics, &self.component, || {
            self.call(&request)
        })
        .await
        .map_err(|source| LinkError::Call {
            what: "the http_link call failed",
            source,
        })?;
        match answer {
            Answer::Halt => Ok(LinkOutcome::Halt),
            Answer::Unchanged => Ok(LinkOutcome::Continue),
            // The same text back: nothing to replace or write.
            Answer::Replace(body) if body == sent => Ok(LinkOutcome::Continue),
            Answer::Replace(body) => {
                vcon.replace(&body, &self.ingest).map_err(|source| {
                    tracing::debug!(
                        link = %self.component,
                        body = %http::logged_body(&body),
                        "the http_link answer is not a valid vCon"
                    );
                    LinkError::Refused {
                        what: "the http_link answer is not a valid vCon",
                        source,
                    }
                })?;
                Ok(LinkOutcome::Continue)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_support::{self, context, module};
    use serde_json::json;

    fn build(module: &Module<LinkKind>) -> Result<HttpLink, Vec<String>> {
        test_support::build(module)
    }

    #[test]
    fn options_defaults_and_checks() {
        let link = build(&module("http_link", json!({"url": "http://svc.local/run"}))).unwrap();
        assert_eq!(link.method, Method::POST);
        assert_eq!(link.halt_status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(link.timeout, context().limits.http_timeout);
        let link = build(&module(
            "http_link",
            json!({"url": "https://svc/x", "method": "put", "halt_status": "409", "timeout": 3}),
        ))
        .unwrap();
        assert_eq!(link.method, Method::PUT);
        assert_eq!(link.halt_status, StatusCode::CONFLICT);
        assert_eq!(
            build(&module("http_link", json!({}))).err().unwrap(),
            ["options.url: is required"]
        );
        let problems = build(&module(
            "http_link",
            json!({"url": "svc/x", "method": "GET", "halt_status": 200, "verb": 1}),
        ))
        .err()
        .unwrap();
        assert_eq!(
            problems,
            [
                "options.url: 'svc/x' has no scheme; write http://… or https://…",
                "options.method: must be one of POST, PUT, found \"GET\"",
                "options.halt_status: must be an HTTP status between 400 and 599, found 200",
                "options.verb: unknown key \"verb\"; valid keys: url, method, headers, timeout, halt_status",
            ]
        );
    }
}
