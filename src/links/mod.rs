//! The links (modules.md §1–§3): one folder per link, each with its options struct (serde,
//! unknown keys rejected, a doc comment on every field: it is the documentation) and its run.
//! Links are a closed set: [`build`] has one arm per built-in module.
//!
//! OWNER: links helper. The items below are the interface the chain runner is being written
//! against; signatures are fixed, bodies to be written.

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Limits, Module};
use crate::metrics::Metrics;
use crate::vcon::Document;

/// What a link decided (modules.md §1.2). "Continue as another vCon" is a `Continue` after
/// [`Document::replace`] changed the uuid; "fail" is an `Err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
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
    pub chain: &'a str,
    /// This link's name in the config.
    pub link: &'a str,
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
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
}

/// One link instance.
#[async_trait]
pub trait Link: Send + Sync {
    async fn run(&self, vcon: &mut Document, ctx: &mut LinkContext<'_>) -> Result<LinkOutcome, LinkError>;
}

/// Build the link of `module` (options checked: every problem as a message naming its option,
/// e.g. `"options.tags: expected a list of strings"`).
pub fn build(module: &Module, shared: &Shared) -> Result<Arc<dyn Link>, Vec<String>> {
    let _ = (module, shared);
    todo!("links helper")
}
