//! `webhook` (modules.md §3.7): POSTs the vCon's stored JSON text to each URL in order. The
//! options and the delivery of one POST are shared with the `webhook` storage (§4.7).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use conserver_actors::RetryPolicy;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde::Deserialize;

use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::path::YamlPath;
use crate::config::read::{optional_positive_seconds, Problems};
use crate::config::{Limits, Module};
use crate::http::{self, Deliveries, HttpError, Request};
use crate::metrics::Metrics;
use crate::modules::values::{Headers, HttpUrl};
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;

/// The options of the `webhook` link and storage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookOptions {
    /// The http(s) URLs the vCon is POSTed to, in order. None: nothing is sent (a warning).
    #[serde(rename = "webhook-urls", default)]
    pub webhook_urls: Vec<HttpUrl>,
    /// Headers added to each request (`Content-Type: application/json` is sent unless
    /// overridden here).
    #[serde(default)]
    pub headers: Headers,
    /// A non-2xx answer fails the delivery (429 and 5xx after retries, other statuses at
    /// once); `false` logs the status and carries on, as the Python server did.
    #[serde(default = "default_fail_on_non_2xx")]
    pub fail_on_non_2xx: bool,
    /// Seconds (> 0) one request may take, answer included; default `limits.http_timeout`.
    #[serde(default, deserialize_with = "optional_positive_seconds")]
    pub timeout: Option<Duration>,
}

fn default_fail_on_non_2xx() -> bool {
    true
}

impl ModuleOptions for WebhookOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];
    /// Headers carry credentials under any name (`X-Auth`, `Cookie`, a signature).
    const SECRETS: &'static [&'static str] = &["headers"];

    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        self.warn_without_urls(at, problems);
    }
}

impl WebhookOptions {
    /// A webhook without URLs sends nothing: say so.
    pub fn warn_without_urls(&self, at: &YamlPath, problems: &mut Problems) {
        if self.webhook_urls.is_empty() {
            problems.warn(format!(
                "{}: none, so this webhook sends nothing",
                at.key("webhook-urls")
            ));
        }
    }
}

/// Where and how a webhook delivers: the options, checked.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The URLs, in order.
    pub urls: Vec<Url>,
    headers: HeaderMap,
    fail_on_non_2xx: bool,
    timeout: Duration,
}

impl Targets {
    /// The targets the options name; the timeout defaults to `limits.http_timeout`.
    pub fn new(options: WebhookOptions, limits: &Limits) -> Targets {
        Targets {
            urls: options.webhook_urls.into_iter().map(|url| url.0).collect(),
            headers: http::json_headers(&options.headers.0),
            fail_on_non_2xx: options.fail_on_non_2xx,
            timeout: options.timeout.unwrap_or(limits.http_timeout),
        }
    }

    /// POST `body` to `url` once, through the target's delivery actor. A non-2xx answer is an error only with `fail_on_non_2xx`
    /// (otherwise it is logged).
    pub async fn post_once(
        &self,
        deliveries: &Deliveries,
        url: &Url,
        body: Bytes,
    ) -> Result<(), HttpError> {
        let request = Request {
            method: Method::POST,
            url: url.clone(),
            headers: self.headers.clone(),
            body,
            timeout: self.timeout,
            max_response_bytes: http::LOGGED_BODY_BYTES,
        };
        let response = deliveries.send(&request).await?;
        if response.status.is_success() {
            return Ok(());
        }
        if self.fail_on_non_2xx {
            return Err(response.into_error(url));
        }
        tracing::warn!(
            url = %crate::config::redact::url_secrets(url.as_str()),
            status = response.status.as_u16(),
            body = %http::logged_body(&response.body),
            "webhook answered a non-2xx status; ignored (fail_on_non_2xx: false)"
        );
        Ok(())
    }
}

/// The `webhook` link.
pub struct Webhook {
    targets: Targets,
    deliveries: Deliveries,
    metrics: std::sync::Arc<Metrics>,
    retry: RetryPolicy,
    component: String,
}

impl LinkModule for Webhook {
    type Options = WebhookOptions;

    fn build(
        options: WebhookOptions,
        module: &Module<LinkKind>,
        ctx: &ModuleContext,
    ) -> Result<Webhook, BuildError> {
        Ok(Webhook {
            targets: Targets::new(options, &ctx.limits),
            deliveries: ctx.deliveries.clone(),
            metrics: ctx.metrics.clone(),
            retry: http::retry_policy(&module.retry),
            component: module.name.clone(),
        })
    }
}

#[async_trait]
impl Link for Webhook {
    async fn run(
        &self,
        vcon: &mut Document,
        _ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        if self.targets.urls.is_empty() {
            return Ok(LinkOutcome::Continue);
        }
        let body = Bytes::from(vcon.text().to_owned());
        for url in &self.targets.urls {
            http::with_retries(&self.retry, &self.metrics, &self.component, || {
                self.targets.post_once(&self.deliveries, url, body.clone())
            })
            .await
            .map_err(|source| LinkError::Call {
                what: "webhook delivery failed",
                source,
            })?;
        }
        Ok(LinkOutcome::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_support::{self, context, module};
    use serde_json::json;

    fn build(module: &Module<LinkKind>) -> Result<Webhook, Vec<String>> {
        test_support::build(module)
    }

    #[test]
    fn options_defaults_and_checks() {
        let link = build(&module("webhook", json!({}))).unwrap();
        assert!(link.targets.urls.is_empty());
        assert!(link.targets.fail_on_non_2xx);
        assert_eq!(link.targets.timeout, context().limits.http_timeout);
        assert_eq!(link.targets.headers["content-type"], "application/json");
        let link = build(&module(
            "webhook",
            json!({"webhook-urls": ["https://a.example/x"], "headers": {"X-Key": 5}, "fail_on_non_2xx": "off", "timeout": "2.5"}),
        ))
        .unwrap();
        assert_eq!(link.targets.urls[0].as_str(), "https://a.example/x");
        assert_eq!(link.targets.headers["x-key"], "5");
        assert!(!link.targets.fail_on_non_2xx);
        assert_eq!(link.targets.timeout, Duration::from_millis(2500));
        assert_eq!(link.component, "my_webhook");
    }

    #[test]
    fn bad_options_are_all_reported() {
        let problems = build(&module(
            "webhook",
            json!({"webhook-urls": ["a.example/x", "https://ok.example"], "headers": {"bad name": "v"}, "timeout": 0, "webhook_urls": []}),
        ))
        .err()
        .unwrap();
        assert_eq!(
            problems,
            [
                "options.webhook-urls[0]: 'a.example/x' has no scheme; write http://… or https://…",
                "options.headers[\"bad name\"]: is not a valid header name",
                "options.timeout: must be a number of seconds > 0, found 0",
                "options.webhook_urls: unknown key \"webhook_urls\" (did you mean \"webhook-urls\"?)",
            ]
        );
    }
}
