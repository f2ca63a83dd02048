//! `webhook` (modules.md §3.7): POSTs the vCon's stored JSON text to each URL in order. The
//! options and the delivery of one POST are shared with the `webhook` storage (§4.7).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use conserver_actors::RetryPolicy;
use reqwest::header::HeaderMap;
use reqwest::Url;
use serde::Deserialize;

use super::options::{self, lenient, lenient_option, string_map, strings};
use super::{Link, LinkContext, LinkError, LinkOutcome, Shared};
use crate::config::Module;
use crate::http::{self, HttpError};
use crate::vcon::Document;

/// The options of the `webhook` link and storage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookOptions {
    /// The http(s) URLs the vCon is POSTed to, in order. None: nothing is sent (a warning).
    #[serde(rename = "webhook-urls", default, deserialize_with = "strings")]
    pub webhook_urls: Vec<String>,
    /// Headers added to each request (`Content-Type: application/json` is sent unless
    /// overridden here).
    #[serde(default, deserialize_with = "string_map")]
    pub headers: Vec<(String, String)>,
    /// A non-2xx answer fails the delivery (429 and 5xx after retries, other statuses at
    /// once); `false` logs the status and carries on, as the Python server did.
    #[serde(default = "default_fail_on_non_2xx", deserialize_with = "lenient")]
    pub fail_on_non_2xx: bool,
    /// Seconds one request may take, answer included; default `limits.http_timeout`.
    #[serde(default, deserialize_with = "lenient_option")]
    pub timeout: Option<f64>,
}

fn default_fail_on_non_2xx() -> bool {
    true
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
    /// Read and check the options of `module`; `ignored` are the keys accepted and ignored.
    pub fn from_module(
        module: &Module,
        shared: &Shared,
        ignored: &[&str],
    ) -> Result<Targets, Vec<String>> {
        let targets = options::parse_checked(module, ignored, |options: WebhookOptions| {
            Targets::check(options, shared)
        })?;
        if targets.urls.is_empty() {
            tracing::warn!(module = %module.name, "webhook has no webhook-urls: nothing will be sent");
        }
        Ok(targets)
    }

    fn check(options: WebhookOptions, shared: &Shared) -> Result<Targets, Vec<String>> {
        let mut problems = Vec::new();
        let mut urls = Vec::new();
        for (i, text) in options.webhook_urls.iter().enumerate() {
            match http::parse_url(text) {
                Ok(url) => urls.push(url),
                Err(why) => problems.push(format!("options.webhook-urls[{i}]: {why}")),
            }
        }
        let headers = http::parse_headers(options.headers.iter().map(|(k, v)| (k, v)))
            .unwrap_or_else(|bad| {
                problems.extend(
                    bad.into_iter()
                        .map(|(name, why)| format!("options.headers.{name}: {why}")),
                );
                HeaderMap::new()
            });
        let timeout = timeout_option(options.timeout, shared).unwrap_or_else(|why| {
            problems.push(why);
            shared.limits.http_timeout
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Targets {
            urls,
            headers: http::json_headers(&headers),
            fail_on_non_2xx: options.fail_on_non_2xx,
            timeout,
        })
    }

    /// POST `body` to `url` once. A non-2xx answer is an error only with `fail_on_non_2xx`
    /// (otherwise it is logged).
    pub async fn post_once(
        &self,
        client: &reqwest::Client,
        url: &Url,
        body: Bytes,
    ) -> Result<(), HttpError> {
        let response = http::post_json(client, url, &self.headers, body, self.timeout).await?;
        if response.status.is_success() {
            return Ok(());
        }
        if self.fail_on_non_2xx {
            return Err(response.into_error(url));
        }
        tracing::warn!(
            %url,
            status = response.status.as_u16(),
            body = %http::logged_body(&response.body),
            "webhook answered a non-2xx status; ignored (fail_on_non_2xx: false)"
        );
        Ok(())
    }
}

/// The `timeout` option (seconds > 0) as a duration; absent: `limits.http_timeout`.
pub(crate) fn timeout_option(seconds: Option<f64>, shared: &Shared) -> Result<Duration, String> {
    match seconds {
        None => Ok(shared.limits.http_timeout),
        Some(s) if s > 0.0 => {
            Duration::try_from_secs_f64(s).map_err(|_| format!("options.timeout: {s} is too long"))
        }
        Some(s) => Err(format!(
            "options.timeout: {s} must be greater than 0 seconds"
        )),
    }
}

/// The `webhook` link.
pub struct Webhook {
    targets: Targets,
    shared: Shared,
    retry: RetryPolicy,
    component: String,
}

/// Build from the module's options.
pub fn build(module: &Module, shared: &Shared) -> Result<Webhook, Vec<String>> {
    Ok(Webhook {
        targets: Targets::from_module(module, shared, &["after_link"])?,
        shared: shared.clone(),
        retry: http::retry_policy(&module.retry),
        component: module.name.clone(),
    })
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
            http::with_retries(&self.retry, &self.shared.metrics, &self.component, || {
                self.targets.post_once(&self.shared.http, url, body.clone())
            })
            .await
            .map_err(|e| LinkError(format!("webhook delivery failed: {e}")))?;
        }
        Ok(LinkOutcome::Continue)
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
        let link = build(&module("webhook", json!({})), &shared()).unwrap();
        assert!(link.targets.urls.is_empty());
        assert!(link.targets.fail_on_non_2xx);
        assert_eq!(link.targets.timeout, shared().limits.http_timeout);
        assert_eq!(link.targets.headers["content-type"], "application/json");
        let link = build(
            &module(
                "webhook",
                json!({"webhook-urls": ["https://a.example/x"], "headers": {"X-Key": 5}, "fail_on_non_2xx": "off", "timeout": "2.5"}),
            ),
            &shared(),
        )
        .unwrap();
        assert_eq!(link.targets.urls[0].as_str(), "https://a.example/x");
        assert_eq!(link.targets.headers["x-key"], "5");
        assert!(!link.targets.fail_on_non_2xx);
        assert_eq!(link.targets.timeout, Duration::from_millis(2500));
        assert_eq!(link.component, "my_webhook");
    }

    #[test]
    fn bad_options_are_all_reported() {
        let problems = build(
            &module(
                "webhook",
                json!({"webhook-urls": ["a.example/x", "https://ok.example"], "headers": {"bad name": "v"}, "timeout": 0, "webhook_urls": []}),
            ),
            &shared(),
        )
        .err()
        .unwrap();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("options.webhook_urls: unknown option"));
        assert!(problems[1].starts_with("options.webhook-urls[0]: 'a.example/x' has no scheme"));
        assert!(problems[2].starts_with("options.headers.bad name: "));
        assert!(problems[3].starts_with("options.timeout: 0 must be greater"));
    }
}
