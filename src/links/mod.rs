//! The links (modules.md §1–§3): one folder per link, each with its options struct (serde,
//! unknown keys rejected, a doc comment on every field: it is the documentation) and its run.
//! Links are a closed set: [`LinkKind`] has one arm per built-in module.
//!
//! Shared by the links: [`tags`] (the tags attachment) and [`json_text`] (JSON text in the
//! Python server's style).

pub mod delay;
pub mod diet;
pub mod expire_vcon;
pub mod http_link;
pub mod jq_link;
pub mod json_text;
mod kind;
pub mod post_analysis_to_slack;
pub mod sampler;
pub mod tag;
pub mod tag_router;
pub mod tags;
pub mod transcribe;
pub mod webhook;
pub mod wtf_transcribe;

use async_trait::async_trait;

use crate::config::Module;
use crate::http::HttpError;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::{Document, IngestError};

pub use kind::LinkKind;

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
pub enum LinkError {
    /// A network service failed.
    #[error("{what}")]
    Call {
        /// What was being done ("webhook delivery").
        what: &'static str,
        #[source]
        source: HttpError,
    },
    /// What the link produced is not a vCon conserver can keep.
    #[error("{what}")]
    Refused {
        /// Who produced it ("the http_link answer").
        what: &'static str,
        #[source]
        source: IngestError,
    },
    /// The vCon holds something the link cannot work with, or the link's own work failed.
    #[error("{0}")]
    Content(String),
}

impl LinkError {
    /// Whether the same run may succeed later (a service that was down); the run is
    /// dead-lettered either way, this says what an operator may expect of a reprocess.
    pub fn is_retriable(&self) -> bool {
        use conserver_actors::Retriable;
        matches!(self, LinkError::Call { source, .. } if source.is_retriable())
    }
}

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

/// A built-in link: its options and how it is built from them.
pub trait LinkModule: Link + Sized + 'static {
    /// The options struct: its fields and their doc comments are the link's reference.
    type Options: ModuleOptions;

    /// Build the instance `module` (its options already read as `options`).
    fn build(
        options: Self::Options,
        module: &Module<LinkKind>,
        ctx: &ModuleContext,
    ) -> Result<Self, BuildError>;
}

/// The key the Python server read on every link and conserver ignores: chains order links.
const AFTER_LINK: (&str, &str) = ("after_link", "chains give the order of links");

#[cfg(test)]
pub(crate) mod test_support {
    //! What link tests share: documents, a context, an instance with some options.

    use std::sync::Arc;

    use super::*;
    use crate::config::{Config, Env, Retry};
    use crate::metrics::Metrics;
    use crate::modules::Kind;
    use serde_json::Value;

    /// The uuid test documents get when they have none.
    pub const U: &str = "0191a3f4-5b6c-7d8e-9f00-000000000001";

    /// A document from a JSON object, under its `uuid` (else [`U`]).
    pub fn document(value: Value) -> Document {
        let uuid = value.get("uuid").and_then(Value::as_str).unwrap_or(U);
        Document::from_stored(uuid.parse().unwrap(), value.to_string()).unwrap()
    }

    /// The default config's limits, a fresh registry, the server's client, a memory store.
    pub fn context() -> ModuleContext {
        let config = Config::from_yaml("{}", None, &Env::default()).unwrap();
        let store = Arc::new(crate::store::memory::MemoryStore::new(
            crate::server::store_settings(&config),
        ));
        ModuleContext::new(config.limits, Arc::new(Metrics::new()), store)
    }

    /// An instance of the link `name` named `my_<name>` with `options` (a JSON object) and
    /// quick retries.
    pub fn module(name: &str, options: Value) -> Module<LinkKind> {
        let kind = match LinkKind::resolve(name) {
            crate::modules::Resolved::Built(kind) => kind,
            other => panic!("{name} is not a link of this build: {other:?}"),
        };
        Module {
            name: format!("my_{name}"),
            kind,
            options: options.as_object().cloned().unwrap_or_default(),
            retry: Retry {
                attempts: 3,
                initial_backoff: std::time::Duration::from_millis(1),
                max_backoff: std::time::Duration::from_millis(5),
                multiplier: 2.0,
            },
        }
    }

    /// Build `module` as `L`, or every problem as `options.<key>: message` (the path below the
    /// instance's `options`, as a reader of its options would see it).
    pub fn build<L: LinkModule>(module: &Module<LinkKind>) -> Result<L, Vec<String>> {
        let at = crate::config::path::YamlPath::root().key("options");
        let mut problems = crate::config::read::Problems::new(None);
        let typed = crate::modules::read_options::<L::Options>(&module.options, &at, &mut problems);
        let (found, _) = problems.into_parts();
        match typed {
            Some(typed) if found.is_empty() => {
                L::build(typed, module, &context()).map_err(|e| vec![e.to_string()])
            }
            _ => Err(found.iter().map(ToString::to_string).collect()),
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
