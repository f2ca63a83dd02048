//! One chain run (modules.md §1.1, redis.md §4): load the vCon once, run the links in order on
//! the in-memory document, write it back, write the storages, then finish in one round trip
//! (DLQ or egress, routes, TTL, counters, acknowledgement). The runtime calls it through
//! [`Work`]: a panic anywhere in a run reaches [`Work::panicked`], which dead-letters the item.
//!
//! Every run has a span (`chain`, `ingress_list`, `vcon_id`), so each log line of the run —
//! a link's, the HTTP client's retries, a storage's — says which vCon and chain it is about.
//! The span is at the ERROR level so that it is enabled whatever the log filter keeps: a
//! warning logged with `RUST_LOG=warn` still names its run.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conserver_actors::{BoxFuture, RetryPolicy, TakeError, Work};
use tracing::Instrument;
use uuid::Uuid;

use super::held::Held;
use super::pipelines::ChainLink;
use super::storage_phase::{self, StorageSink};
use crate::config::Chain;
use crate::links::{LinkContext, LinkError, LinkOutcome, RunEffects};
use crate::metrics::Metrics;
use crate::report::report;
use crate::storages::{Saved, Storages};
use crate::store::{self, Finish, Push, RunOutcome, Store, StoreError};
use crate::vcon::{self, Document, NotADocument};

/// A uuid taken from one of the chain's ingress lists.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Index of the ingress list in the chain's `ingress_lists`.
    pub source: usize,
    /// The list item as taken (normally a lowercase uuid).
    pub item: String,
}

/// Settings of a run that come from the `redis` and `limits` sections.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    pub vcon_ttl: u64,
    pub dlq_ttl: u64,
    pub storage_fallback: bool,
    pub parallel_storage: bool,
    /// Ingress lists of enabled chains: pushes to these use the enqueue protocol.
    pub enqueue_lists: Arc<HashSet<String>>,
}

/// Everything a run of one chain needs; the [`Work`] of the chain.
pub struct ChainRunner {
    pub chain: Chain,
    pub links: Vec<ChainLink>,
    /// The chain's storages, in chain order.
    pub sinks: Vec<(String, StorageSink)>,
    /// Every configured storage, for reading back a vCon missing from Redis.
    pub storages: Arc<Storages>,
    pub store: Arc<dyn Store>,
    pub instance_id: String,
    pub settings: RunSettings,
    pub metrics: Arc<Metrics>,
    /// What this instance holds, shared by every chain of the instance.
    pub held: Held,
}

/// Why a run failed: the vCon goes to `DLQ:<ingress list>`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A link failed.
    #[error("link {link} failed")]
    Link {
        link: String,
        #[source]
        source: LinkError,
    },
    /// The links together took longer than the chain's `timeout`.
    #[error("the chain timeout of {} s expired", .0.as_secs_f64())]
    Timeout(Duration),
    /// The vCon could not be read from the store.
    #[error("the vCon could not be read")]
    Load(#[source] StoreError),
    /// What the store holds under the uuid is not a vCon.
    #[error("the stored vCon is unreadable")]
    Unreadable(#[source] NotADocument),
    /// The changed vCon could not be written back.
    #[error("the vCon could not be written back")]
    WriteBack(#[source] StoreError),
    /// A link produced a vCon with another uuid, which could not be stored.
    #[error("the new vCon of link {link} could not be stored")]
    NewVcon {
        link: String,
        #[source]
        source: StoreError,
    },
}

/// How a run ended, before it is finished in the store.
struct Ending {
    /// The vCon the run ended with (a link may have produced a new uuid).
    uuid: Option<Uuid>,
    outcome: RunOutcome,
    /// The uuid the run took, when a link replaced the vCon by one with another uuid.
    replaced: Option<Uuid>,
    failed_storages: Vec<String>,
    effects: RunEffects,
}

impl Ending {
    fn new(uuid: Option<Uuid>, outcome: RunOutcome) -> Ending {
        Ending {
            uuid,
            outcome,
            replaced: None,
            failed_storages: Vec::new(),
            effects: RunEffects::default(),
        }
    }
}

/// Waits between tries of a store call the run cannot do without (load, write-back, finish).
const STORE_RETRY: RetryPolicy = RetryPolicy {
    attempts: 12,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(10),
    multiplier: 2.0,
};

impl conserver_actors::Retriable for StoreError {
    fn is_retriable(&self) -> bool {
        self.is_unavailable()
    }
}

/// A take that failed: the store could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot take from {list}")]
struct TakeFailed {
    list: String,
    #[source]
    source: StoreError,
}

impl Work for ChainRunner {
    type Item = Claimed;

    fn take(
        self: Arc<Self>,
        source: usize,
        wait: Duration,
    ) -> BoxFuture<Result<Option<Claimed>, TakeError>> {
        Box::pin(async move {
            let list = &self.chain.ingress_lists[source];
            match self.store.claim(list, &self.instance_id, wait).await {
                Ok(item) => Ok(item.map(|item| {
                    self.held.hold(list, &item);
                    Claimed { source, item }
                })),
                Err(source) => Err(TakeFailed {
                    list: list.clone(),
                    source,
                }
                .into()),
            }
        })
    }

    fn run(self: Arc<Self>, claimed: Claimed) -> BoxFuture<()> {
        let list = self.chain.ingress_lists[claimed.source].clone();
        let span = self.span(&list, &claimed);
        Box::pin(
            async move {
                let started = Instant::now();
                self.metrics
                    .vcons_received
                    .with_label_values(&[self.chain.name.as_str(), list.as_str()])
                    .inc();
                let ending = self.process(&claimed, &list).await;
                self.finish(&claimed, &list, ending).await;
                self.held.release(&list, &claimed.item);
                self.metrics
                    .chain_duration
                    .with_label_values(&[self.chain.name.as_str()])
                    .observe(started.elapsed().as_secs_f64());
            }
            .instrument(span),
        )
    }

    fn panicked(self: Arc<Self>, claimed: Claimed, message: String) -> BoxFuture<()> {
        let list = self.chain.ingress_lists[claimed.source].clone();
        let span = self.span(&list, &claimed);
        Box::pin(
            async move {
                tracing::error!(panic = %message, "a link panicked: the vCon goes to DLQ:{list}");
                let uuid = vcon::parse_uuid(&claimed.item);
                self.finish(&claimed, &list, Ending::new(uuid, RunOutcome::Failed))
                    .await;
                self.held.release(&list, &claimed.item);
            }
            .instrument(span),
        )
    }
}

impl ChainRunner {
    /// The span of the run of `claimed`, taken from `list`.
    fn span(&self, list: &str, claimed: &Claimed) -> tracing::Span {
        tracing::error_span!(
            "run",
            chain = %self.chain.name,
            ingress_list = %list,
            vcon_id = %claimed.item
        )
    }

    async fn process(&self, claimed: &Claimed, list: &str) -> Ending {
        let Some(uuid) = vcon::parse_uuid(&claimed.item) else {
            tracing::warn!("not a vCon uuid: dropped from {list}");
            return Ending::new(None, RunOutcome::Missing);
        };
        let mut doc = match self.load(uuid).await {
            Ok(Some(doc)) => doc,
            Ok(None) => {
                tracing::warn!("vCon found nowhere: dropped from {list}");
                return Ending::new(Some(uuid), RunOutcome::Missing);
            }
            Err(error) => {
                tracing::error!(error = %report(&error), "the run failed: the vCon goes to DLQ:{list}");
                return Ending::new(Some(uuid), RunOutcome::Failed);
            }
        };
        let mut effects = RunEffects::default();
        let links = self.link_phase(&mut doc, list, &mut effects);
        let result = match self.chain.timeout {
            Some(limit) => tokio::time::timeout(limit, links)
                .await
                .unwrap_or(Err(RunError::Timeout(limit))),
            None => links.await,
        };
        let replaced = (doc.uuid() != uuid).then_some(uuid);
        // Whatever the outcome, what the links changed is kept (modules.md §1.1 step 4).
        if let Err(error) = self.write_back(&mut doc).await {
            tracing::error!(error = %report(&error), "the run failed: the vCon goes to DLQ:{list}");
            return Ending {
                replaced,
                effects,
                ..Ending::new(Some(doc.uuid()), RunOutcome::Failed)
            };
        }
        let outcome = match result {
            Err(error) => {
                tracing::warn!(error = %report(&error), "the run failed: the vCon goes to DLQ:{list}");
                RunOutcome::Failed
            }
            Ok(LinkOutcome::Halt) => RunOutcome::Halted,
            Ok(_) => RunOutcome::Processed,
        };
        let mut ending = Ending {
            replaced,
            effects,
            ..Ending::new(Some(doc.uuid()), outcome)
        };
        if outcome == RunOutcome::Processed && !self.sinks.is_empty() {
            ending.failed_storages = storage_phase::write_all(
                &self.sinks,
                Arc::new(Saved::from(doc)),
                self.settings.parallel_storage,
                &self.metrics,
            )
            .await;
        }
        ending
    }

    /// The links in order. `Ok(Halt)` as soon as one halts; `Err` when one fails.
    async fn link_phase(
        &self,
        doc: &mut Document,
        list: &str,
        effects: &mut RunEffects,
    ) -> Result<LinkOutcome, RunError> {
        for step in &self.links {
            let before = doc.uuid();
            let started = Instant::now();
            let mut ctx = LinkContext {
                chain: &self.chain.name,
                link: &step.name,
                ingress_list: list,
                effects,
            };
            let result = step.link.run(doc, &mut ctx).await;
            let labels = [self.chain.name.as_str(), step.name.as_str()];
            self.metrics
                .link_duration
                .with_label_values(&labels)
                .observe(started.elapsed().as_secs_f64());
            let label = match &result {
                Ok(LinkOutcome::Continue) => "continue",
                Ok(LinkOutcome::Skipped) => "skipped",
                Ok(LinkOutcome::Halt) => "halt",
                Err(_) => "error",
            };
            self.metrics
                .link_runs
                .with_label_values(&[labels[0], labels[1], label])
                .inc();
            let outcome = result.map_err(|source| RunError::Link {
                link: step.name.clone(),
                source,
            })?;
            if doc.uuid() != before {
                tracing::info!(link = %step.name, new_vcon_id = %doc.uuid(), "a link produced a new vCon");
                store::recache(self.store.as_ref(), doc)
                    .await
                    .map_err(|source| RunError::NewVcon {
                        link: step.name.clone(),
                        source,
                    })?;
                doc.mark_written();
            } else if step.calls_network {
                self.write_back(doc).await?;
            }
            if outcome == LinkOutcome::Halt {
                tracing::debug!(link = %step.name, "halted");
                return Ok(LinkOutcome::Halt);
            }
        }
        Ok(LinkOutcome::Continue)
    }

    /// Redis first; on a miss, the chain's storages in chain order, then the others (redis.md
    /// §5), re-cached without a TTL (the vCon is in flight).
    async fn load(&self, uuid: Uuid) -> Result<Option<Document>, RunError> {
        let cached = STORE_RETRY
            .run(
                || self.store.get_vcon(uuid),
                |_, e, _| tracing::warn!(error = %report(e), "retrying the read of a vCon"),
            )
            .await
            .map_err(RunError::Load)?;
        match cached.map(|text| Document::from_stored(uuid, text)) {
            Some(Ok(doc)) => return Ok(Some(doc)),
            // Not a vCon, whatever left it there: missing, so the storages are asked.
            Some(Err(error)) => {
                tracing::warn!(error = %report(&error), "the stored value is not a vCon; treated as missing")
            }
            None => {}
        }
        if !self.settings.storage_fallback {
            return Ok(None);
        }
        let order = self.storages.chain_order(&self.chain.storages);
        let Some((storage, text)) = self.storages.read_back(uuid, order).await else {
            return Ok(None);
        };
        let mut doc = Document::from_stored(uuid, text).map_err(RunError::Unreadable)?;
        store::recache(self.store.as_ref(), &mut doc)
            .await
            .map_err(RunError::Load)?;
        tracing::info!(storage = %storage, "vCon read back from a storage and re-cached");
        Ok(Some(doc))
    }

    async fn write_back(&self, doc: &mut Document) -> Result<(), RunError> {
        if !doc.is_changed() {
            return Ok(());
        }
        let uuid = doc.uuid();
        let text = doc.text();
        STORE_RETRY
            .run(
                || self.store.write_back(uuid, text),
                |_, e, _| tracing::warn!(error = %report(e), "retrying a write-back"),
            )
            .await
            .map_err(RunError::WriteBack)?;
        doc.mark_written();
        Ok(())
    }

    /// Finish the run in the store; retried while the store is unreachable, so the item leaves
    /// the processing list only once everything else is done.
    async fn finish(&self, claimed: &Claimed, list: &str, ending: Ending) {
        let chain = self.chain.name.as_str();
        let outcome_label = ending.outcome.label();
        self.metrics
            .chain_runs
            .with_label_values(&[chain, outcome_label])
            .inc();
        let push = |list: &String| Push {
            list: list.clone(),
            enqueue: self.settings.enqueue_lists.contains(list),
        };
        let egress: Vec<Push> = if ending.outcome == RunOutcome::Processed {
            self.chain.egress_lists.iter().map(push).collect()
        } else {
            Vec::new()
        };
        let routes: Vec<Push> = ending.effects.routes.iter().map(push).collect();
        let dead_lettered =
            ending.outcome == RunOutcome::Failed || !ending.failed_storages.is_empty();
        let ttl = if dead_lettered {
            self.settings.dlq_ttl
        } else {
            ending
                .effects
                .expire_seconds
                .unwrap_or(self.settings.vcon_ttl)
        };
        let finish = Finish {
            chain,
            ingress_list: list,
            instance_id: &self.instance_id,
            item: &claimed.item,
            uuid: ending.uuid.unwrap_or(Uuid::nil()),
            outcome: ending.outcome,
            failed_storages: &ending.failed_storages,
            egress: &egress,
            routes: &routes,
            ttl,
            decrement: ending.uuid.is_some() && ending.replaced.is_none(),
            replaced: ending.replaced,
        };
        let result = STORE_RETRY
            .run(
                || self.store.finish(&finish),
                |_, e, wait| tracing::warn!(error = %report(e), ?wait, "retrying the end of a run"),
            )
            .await;
        match result {
            Ok(()) => tracing::debug!(outcome = outcome_label, "run finished"),
            Err(e) => {
                tracing::error!(error = %report(&e), "the end of a run could not be recorded: the item stays in this instance's processing list and is taken again after a restart")
            }
        }
    }
}
