//! `post_analysis_to_slack` (modules.md §3.22): posts the flagged analyses of a vCon to Slack
//! (`chat.postMessage` of the Web API), then marks each one `was_posted_to_slack: true`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use conserver_actors::RetryPolicy;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};

use super::transcribe::{build_problem, secret_header};
use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::read::optional_positive_seconds;
use crate::config::Module;
use crate::http::{self, Deliveries, HttpError, Request};
use crate::metrics::Metrics;
use crate::modules::values::{non_empty, HttpUrl};
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;

/// The options of `post_analysis_to_slack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackOptions {
    /// The Slack bot token (required).
    #[serde(deserialize_with = "non_empty")]
    pub token: String,
    /// The channel every post goes to (required).
    #[serde(deserialize_with = "non_empty")]
    pub default_channel_name: String,
    /// The details link; `{vcon_id}` is replaced by the uuid, else `?_vcon_id="<uuid>"` is
    /// appended.
    #[serde(default)]
    pub url: String,
    /// The type of the analysis whose body is posted (of the flagged analysis's dialog).
    #[serde(default = "default_analysis_to_post")]
    pub analysis_to_post: String,
    /// Which analyses are posted.
    #[serde(default)]
    pub only_if: Trigger,
    /// Slack's Web API root.
    #[serde(default = "default_base_url")]
    pub base_url: HttpUrl,
    /// Seconds (> 0) one post may take; default `limits.http_timeout`.
    #[serde(default, deserialize_with = "optional_positive_seconds")]
    pub timeout: Option<Duration>,
}

/// The analyses posted: type `analysis_type` with a body containing `includes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The analysis type.
    #[serde(default = "default_analysis_type")]
    pub analysis_type: String,
    /// Text the body must contain.
    #[serde(default = "default_includes")]
    pub includes: String,
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger {
            analysis_type: default_analysis_type(),
            includes: default_includes(),
        }
    }
}

fn default_analysis_to_post() -> String {
    "summary".to_owned()
}
fn default_analysis_type() -> String {
    "customer_frustration".to_owned()
}
fn default_includes() -> String {
    "NEEDS REVIEW".to_owned()
}
fn default_base_url() -> HttpUrl {
    HttpUrl(Url::parse("https://slack.com/api").expect("a valid URL literal"))
}

impl ModuleOptions for SlackOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[
        AFTER_LINK,
        (
            "channel_name",
            "the Python module never used it; posts go to default_channel_name",
        ),
    ];
}

/// The `post_analysis_to_slack` link.
pub struct PostAnalysisToSlack {
    post_url: Url,
    authorization: HeaderValue,
    default_channel: String,
    details: String,
    analysis_to_post: String,
    trigger: Trigger,
    timeout: Duration,
    deliveries: Deliveries,
    metrics: Arc<Metrics>,
    retry: RetryPolicy,
    component: String,
}

impl LinkModule for PostAnalysisToSlack {
    type Options = SlackOptions;

    fn build(
        options: SlackOptions,
        module: &Module<LinkKind>,
        ctx: &ModuleContext,
    ) -> Result<Self, BuildError> {
        Ok(PostAnalysisToSlack {
            post_url: super::transcribe::deepgram::join(&options.base_url.0, "chat.postMessage"),
            authorization: secret_header(&format!("Bearer {}", options.token), "token")
                .map_err(|m| build_problem(module, &["token"], m))?,
            default_channel: options.default_channel_name,
            details: options.url,
            analysis_to_post: options.analysis_to_post,
            trigger: options.only_if,
            timeout: options.timeout.unwrap_or(ctx.limits.http_timeout),
            deliveries: ctx.deliveries.clone(),
            metrics: ctx.metrics.clone(),
            retry: http::retry_policy(&module.retry),
            component: module.name.clone(),
        })
    }
}

/// The details URL of a vCon.
pub fn details_url(template: &str, uuid: &str) -> String {
    if template.contains("{vcon_id}") {
        template.replace("{vcon_id}", uuid)
    } else {
        format!("{template}?_vcon_id=\"{uuid}\"")
    }
}

/// The message blocks of a post.
pub fn blocks(abstract_text: &str, url: &str) -> Value {
    json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": "Check this out :neutral_face:"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": abstract_text}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "Please review the details here:"},
            "accessory": {
                "type": "button",
                "text": {"type": "plain_text", "text": "Details", "emoji": true},
                "value": "click_me_123",
                "url": url,
                "action_id": "button-action"
            }
        }
    ])
}

/// A body as text: a string as it is, anything else as its JSON text.
fn text_of(body: &Value) -> String {
    match body {
        Value::String(text) => text.clone(),
        other => super::json_text::python_json(other),
    }
}

/// A decoded attachment body: a JSON value, or JSON text.
fn decoded(body: &Value) -> Option<Value> {
    match body {
        Value::String(text) => serde_json::from_str(text).ok(),
        other => Some(other.clone()),
    }
}

/// The team and dealer of the last `strolid_dealer` attachment with a team.
fn team_and_dealer(vcon: &Value) -> Option<(String, Option<String>)> {
    let mut found = None;
    for attachment in vcon
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let purpose = attachment
            .get("purpose")
            .or_else(|| attachment.get("type"))
            .and_then(Value::as_str);
        if purpose != Some("strolid_dealer") {
            continue;
        }
        let Some(body) = attachment.get("body").and_then(decoded) else {
            continue;
        };
        let Some(team) = body
            .get("team")
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let team = team
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase();
        let dealer = body.get("name").and_then(Value::as_str).map(str::to_owned);
        found = Some((team, dealer));
    }
    found
}

impl PostAnalysisToSlack {
    /// Post `text` to `channel`: `Ok(Err(code))` when Slack refused it (`{"ok": false}`),
    /// `ratelimited` retried as a 429.
    async fn post(
        &self,
        channel: &str,
        text: &str,
        blocks: Option<&Value>,
    ) -> Result<Result<(), String>, HttpError> {
        let mut message = json!({"channel": channel, "text": text});
        if let Some(blocks) = blocks {
            message["blocks"] = blocks.clone();
        }
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let request = Request {
            method: Method::POST,
            url: self.post_url.clone(),
            headers,
            body: Bytes::from(message.to_string()),
            timeout: self.timeout,
            max_response_bytes: 1 << 20,
        };
        http::with_retries(&self.retry, &self.metrics, &self.component, || async {
            let response = self.deliveries.send(&request).await?;
            if !response.status.is_success() {
                return Err(response.into_error(&self.post_url));
            }
            let answer: Value =
                serde_json::from_slice(&response.body).map_err(|_| HttpError::Permanent {
                    url: self.post_url.to_string(),
                    message: format!(
                        "Slack's answer is not JSON: {}",
                        http::logged_body(&response.body)
                    ),
                })?;
            if answer.get("ok").and_then(Value::as_bool) == Some(true) {
                return Ok(Ok(()));
            }
            let code = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error")
                .to_owned();
            if code == "ratelimited" {
                return Err(HttpError::from_status(
                    self.post_url.as_str(),
                    StatusCode::TOO_MANY_REQUESTS,
                    &response.headers,
                    &response.body,
                ));
            }
            Ok(Err(code))
        })
        .await
    }

    /// Post, a refusal being a failure.
    async fn post_or_fail(
        &self,
        channel: &str,
        text: &str,
        blocks: Option<&Value>,
    ) -> Result<(), LinkError> {
        match self.post(channel, text, blocks).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(code)) => Err(LinkError::Call {
                what: "the Slack post failed",
                source: HttpError::Permanent {
                    url: self.post_url.to_string(),
                    message: format!("Slack answered error {code:?} for channel {channel}"),
                },
            }),
            Err(source) => Err(LinkError::Call {
                what: "the Slack post failed",
                source,
            }),
        }
    }
}

#[async_trait]
impl Link for PostAnalysisToSlack {
    async fn run(
        &self,
        vcon: &mut Document,
        _ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        if !vcon.is_unsigned() {
            return Ok(LinkOutcome::Skipped);
        }
        let uuid = vcon.uuid().to_string();
        let analysis = vcon
            .value()
            .get("analysis")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut posted = Vec::new();
        for (index, entry) in analysis.iter().enumerate() {
            if entry.get("type").and_then(Value::as_str)
                != Some(self.trigger.analysis_type.as_str())
                || !entry
                    .get("body")
                    .and_then(Value::as_str)
                    .is_some_and(|b| b.contains(&self.trigger.includes))
                || entry.get("was_posted_to_slack").and_then(Value::as_bool) == Some(true)
            {
                continue;
            }
            let dialog = entry.get("dialog");
            let Some(summary) = analysis.iter().find(|a| {
                a.get("type").and_then(Value::as_str) == Some(self.analysis_to_post.as_str())
                    && a.get("dialog") == dialog
            }) else {
                tracing::warn!(analysis = index, wanted = %self.analysis_to_post, "no analysis to post for the flagged one's dialog; skipped");
                continue;
            };
            let mut abstract_text = summary.get("body").map(text_of).unwrap_or_default();
            let url = details_url(&self.details, &uuid);
            if let Some((team, dealer)) =
                team_and_dealer(vcon.value()).filter(|(team, _)| team != "strolid")
            {
                let channel = format!("team-{team}-alerts");
                if let Some(dealer) = dealer {
                    abstract_text = format!("{abstract_text} #{dealer}");
                }
                let message = blocks(&abstract_text, &url);
                match self.post(&channel, &abstract_text, Some(&message)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(code)) if code == "channel_not_found" => {
                        tracing::warn!(%channel, "the team channel does not exist; said so in the default channel");
                        self.post_or_fail(
                            &self.default_channel,
                            &format!("The channel name doesn't exist - {channel}"),
                            None,
                        )
                        .await?;
                    }
                    Ok(Err(code)) => {
                        return Err(LinkError::Call {
                            what: "the Slack post failed",
                            source: HttpError::Permanent {
                                url: self.post_url.to_string(),
                                message: format!(
                                    "Slack answered error {code:?} for channel {channel}"
                                ),
                            },
                        })
                    }
                    Err(source) => {
                        return Err(LinkError::Call {
                            what: "the Slack post failed",
                            source,
                        })
                    }
                }
            }
            let message = blocks(&abstract_text, &url);
            self.post_or_fail(&self.default_channel, &abstract_text, Some(&message))
                .await?;
            posted.push(index);
        }
        if posted.is_empty() {
            return Ok(LinkOutcome::Skipped);
        }
        if let Some(Value::Array(entries)) = vcon.value_mut().get_mut("analysis") {
            for index in posted {
                if let Some(Value::Object(entry)) = entries.get_mut(index) {
                    entry.insert("was_posted_to_slack".to_owned(), Value::Bool(true));
                }
            }
        }
        Ok(LinkOutcome::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_details_url_and_the_team() {
        assert_eq!(
            details_url("https://p/v/{vcon_id}/x", "U"),
            "https://p/v/U/x"
        );
        assert_eq!(
            details_url("https://hex/app", "U"),
            "https://hex/app?_vcon_id=\"U\""
        );
        let vcon = json!({"attachments": [
            {"purpose": "strolid_dealer", "body": "{\"name\": \"Acme Motors\", \"team\": {\"name\": \"North East\"}}", "encoding": "json"}
        ]});
        assert_eq!(
            team_and_dealer(&vcon),
            Some(("north".to_owned(), Some("Acme Motors".to_owned())))
        );
        assert_eq!(
            team_and_dealer(
                &json!({"attachments": [{"type": "strolid_dealer", "body": {"name": "x"}}]})
            ),
            None
        );
    }
}
