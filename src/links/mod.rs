//! The links (modules.md §1–§3): one folder per link, each with its options struct (serde,
//! unknown keys rejected, a doc comment on every field: it is the documentation) and its run.
//! Links are a closed set: [`build`] has one arm per built-in module.
//!
//! Shared by the links: [`options`] (reading `options` with every problem named by its path),
//! [`tags`] (the tags attachment) and [`json_text`] (JSON text in the Python server's style).

pub mod delay;
pub mod expire_vcon;
pub mod http_link;
pub mod jq_link;
pub mod json_text;
pub mod options;
pub mod sampler;
pub mod tag;
pub mod tag_router;
pub mod tags;
pub mod webhook;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Limits, Module};
use crate::metrics::Metrics;
use crate::vcon::{Document, IngestError};

/// What a link decided (modules.md §1.2). "Continue as another vCon" is a `Continue` after
/// [`Document::replace`] changed the uuid; "fail" is an `Err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The link is done (the vCon may have changed): the next link runs.
    Continue,
    /// The link chose not to act (filter, sampling, nothing to do, signed vCon).
    Skipped,
    /// The vCon goes no further: no storage, no egress.
    Halt,
}

/// A failure the link could not overcome (after its retries): the run fails.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(pub String);

/// What a link sees of its run besides the vCon.
pub struct LinkContext<'a> {
    /// The chain's name in the config.
    pub chain: &'a str,
    /// This link's name in the config.
    pub link: &'a str,
    /// The ingress list the vCon was taken from (its DLQ is `DLQ:<ingress_list>`).
    pub ingress_list: &'a str,
    /// The run's outputs that take effect when the run ends (redis.md §4).
    pub effects: &'a mut RunEffects,
}

/// Effects of links that are applied when the run ends, whatever its outcome.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunEffects {
    /// `expire_vcon`: the TTL the vCon gets when this run finishes.
    pub expire_seconds: Option<u64>,
    /// `tag_router`: lists the uuid is pushed to when the run ends, each once, in order.
    pub routes: Vec<String>,
}

/// What every link is built with.
#[derive(Clone)]
pub struct Shared {
    /// One HTTP client for the process (connection reuse); `User-Agent: conserver/<version>`.
    pub http: reqwest::Client,
    /// The `limits` section: default timeout, largest vCon a link may produce, …
    pub limits: Limits,
    /// The process's metrics (retries, jq errors).
    pub metrics: Arc<Metrics>,
}

/// One link instance.
#[async_trait]
pub trait Link: Send + Sync {
    /// Process `vcon` once; the outcome says what the chain does next.
    async fn run(
        &self,
        vcon: &mut Document,
        ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError>;
}

/// Build the link of `module` (options checked: every problem as a message naming its option,
/// e.g. `"options.tags: expected a list of strings"`).
pub fn build(module: &Module, shared: &Shared) -> Result<Arc<dyn Link>, Vec<String>> {
    fn shared_link<L: Link + 'static>(
        link: Result<L, Vec<String>>,
    ) -> Result<Arc<dyn Link>, Vec<String>> {
        link.map(|l| Arc::new(l) as Arc<dyn Link>)
    }
    match module.module.as_str() {
        "tag" => shared_link(tag::build(module)),
        "tag_router" => shared_link(tag_router::build(module)),
        "jq_link" => shared_link(jq_link::build(module, shared)),
        "sampler" => shared_link(sampler::build(module)),
        "expire_vcon" => shared_link(expire_vcon::build(module)),
        "delay" => shared_link(delay::build(module)),
        "webhook" => shared_link(webhook::build(module, shared)),
        "http_link" => shared_link(http_link::build(module, shared)),
        other => Err(vec![format!(
            "module '{other}' is not available in this build yet"
        )]),
    }
}

/// Why a replacement vCon was refused, in one line (for link errors and logs).
pub(crate) fn ingest_error_text(error: &IngestError) -> String {
    match error {
        IngestError::Malformed {
            line,
            column,
            message,
        } => {
            format!("not JSON (line {line}, column {column}): {message}")
        }
        IngestError::Empty => "an empty body".to_owned(),
        IngestError::Invalid(problems) => problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.msg))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! What link tests share: documents, a context, a `Shared` with the default limits.

    use super::*;
    use crate::config::{Config, Env};
    use serde_json::Value;

    /// The uuid test documents get when they have none.
    pub const U: &str = "0191a3f4-5b6c-7d8e-9f00-000000000001";

    /// A document from a JSON object, under its `uuid` (else [`U`]).
    pub fn document(value: Value) -> Document {
        let uuid = value.get("uuid").and_then(Value::as_str).unwrap_or(U);
        Document::from_stored(uuid.parse().unwrap(), value.to_string()).unwrap()
    }

    /// The default config's limits, a fresh registry, the server's client.
    pub fn shared() -> Shared {
        let limits = Config::from_yaml("{}", None, &Env::default())
            .unwrap()
            .limits;
        Shared {
            http: crate::http::http_client(&limits),
            limits,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Run `link` in chain `main` as link `under_test`, collecting effects in `effects`.
    pub async fn run_with(
        link: &dyn Link,
        vcon: &mut Document,
        effects: &mut RunEffects,
    ) -> Result<LinkOutcome, LinkError> {
        let mut ctx = LinkContext {
            chain: "main",
            link: "under_test",
            ingress_list: "default",
            effects,
        };
        link.run(vcon, &mut ctx).await
    }

    /// Run `link`, dropping its effects.
    pub async fn run(link: &dyn Link, vcon: &mut Document) -> Result<LinkOutcome, LinkError> {
        run_with(link, vcon, &mut RunEffects::default()).await
    }
}
