//! One chain run (modules.md §1.1, redis.md §4): load the vCon once, run the links in order on
//! the in-memory document, write it back, write the storages, then finish in one round trip
//! (DLQ or egress, routes, TTL, counters, acknowledgement). The runtime calls it through
//! [`Work`]: a panic anywhere in a run reaches [`Work::panicked`], which dead-letters the item.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conserver_actors::{BoxFuture, RetryPolicy, Work};
use uuid::Uuid;

use super::storage_phase::{self, StorageSink};
use crate::config::Chain;
use crate::links::{Link, LinkContext, LinkOutcome, RunEffects};
use crate::metrics::Metrics;
use crate::storages::registry::Storages;
use crate::storages::Saved;
use crate::store::{self, Finish, Push, RunOutcome, Store, StoreError};
use crate::vcon::{self, Document};

/// A uuid taken from one of the chain's ingress lists.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Index of the ingress list in the chain's `ingress_lists`.
    pub source: usize,
    /// The list item as taken (normally a lowercase uuid).
    pub item: String,
}

/// A link of the chain, as it runs.
pub struct ChainLink {
    pub name: String,
    pub link: Arc<dyn Link>,
    /// The link calls a network service: its changes are written back at once, so a crash
    /// does not make the next attempt pay for the call again (modules.md §1.1 step 4).
    pub calls_network: bool,
}

/// Settings of a run that come from the `redis` and `limits` sections.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub vcon_ttl: u64,
    pub dlq_ttl: u64,
    pub storage_fallback: bool,
    pub parallel_storage: bool,
    /// Ingress lists of enabled chains: pushes to these use the enqueue protocol.
    pub enqueue_lists: Arc<HashSet<String>>,
}

/// The items this instance holds in its processing lists *and runs*: `(ingress list, item)`.
/// Anything else in its processing lists is stranded (see `instance::sweeper`).
pub type InFlight = Arc<Mutex<HashSet<(String, String)>>>;

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
    /// Shared by every chain of the instance.
    pub in_flight: InFlight,
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

impl Work for ChainRunner {
    type Item = Claimed;

    fn take(
        self: Arc<Self>,
        source: usize,
        wait: Duration,
    ) -> BoxFuture<Result<Option<Claimed>, String>> {
        Box::pin(async move {
            let list = &self.chain.ingress_lists[source];
            match self.store.claim(list, &self.instance_id, wait).await {
                Ok(item) => Ok(item.map(|item| {
                    self.hold(list, &item, true);
                    Claimed { source, item }
                })),
                Err(e) => Err(format!("cannot take from {list}: {e}")),
            }
        })
    }

    fn run(self: Arc<Self>, claimed: Claimed) -> BoxFuture<()> {
        Box::pin(async move {
            let started = Instant::now();
            let list = self.chain.ingress_lists[claimed.source].clone();
            self.metrics
                .vcons_received
                .with_label_values(&[self.chain.name.as_str(), list.as_str()])
                .inc();
            let ending = self.process(&claimed, &list).await;
            self.finish(&claimed, &list, ending).await;
            self.hold(&list, &claimed.item, false);
            self.metrics
                .chain_duration
                .with_label_values(&[self.chain.name.as_str()])
                .observe(started.elapsed().as_secs_f64());
        })
    }

    fn panicked(self: Arc<Self>, claimed: Claimed, message: String) -> BoxFuture<()> {
        Box::pin(async move {
            let list = self.chain.ingress_lists[claimed.source].clone();
            tracing::error!(chain = %self.chain.name, item = %claimed.item, panic = %message, "a link panicked: the vCon goes to DLQ:{list}");
            let uuid = vcon::parse_uuid(&claimed.item);
            self.finish(&claimed, &list, Ending::new(uuid, RunOutcome::Failed))
                .await;
        })
    }
}

impl ChainRunner {
    /// Note that this instance runs `item` of `list` (or no longer does).
    fn hold(&self, list: &str, item: &str, held: bool) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if held {
            in_flight.insert((list.to_owned(), item.to_owned()));
        } else {
            in_flight.remove(&(list.to_owned(), item.to_owned()));
        }
    }

    async fn process(&self, claimed: &Claimed, list: &str) -> Ending {
        let Some(uuid) = vcon::parse_uuid(&claimed.item) else {
            tracing::warn!(chain = %self.chain.name, item = %claimed.item, "not a vCon uuid: dropped from {list}");
            return Ending::new(None, RunOutcome::Missing);
        };
        let text = match self.load(uuid).await {
            Ok(Some(text)) => text,
            Ok(None) => {
                tracing::warn!(chain = %self.chain.name, vcon_id = %uuid, "vCon found nowhere: dropped from {list}");
                return Ending::new(Some(uuid), RunOutcome::Missing);
            }
            Err(e) => {
                tracing::error!(chain = %self.chain.name, vcon_id = %uuid, error = %e, "vCon could not be read: it goes to DLQ:{list}");
                return Ending::new(Some(uuid), RunOutcome::Failed);
            }
        };
        let mut doc = match Document::from_stored(uuid, text) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::error!(chain = %self.chain.name, vcon_id = %uuid, error = %e, "stored vCon unreadable: it goes to DLQ:{list}");
                return Ending::new(Some(uuid), RunOutcome::Failed);
            }
        };
        let mut effects = RunEffects::default();
        let links = self.link_phase(&mut doc, list, &mut effects);
        let result = match self.chain.timeout {
            Some(limit) => tokio::time::timeout(limit, links)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "the chain timeout of {} s expired",
                        limit.as_secs_f64()
                    ))
                }),
            None => links.await,
        };
        // Whatever the outcome, what the links changed is kept (modules.md §1.1 step 4).
        if let Err(e) = self.write_back(&mut doc).await {
            tracing::error!(chain = %self.chain.name, vcon_id = %doc.uuid(), error = %e, "vCon could not be written back: it goes to DLQ:{list}");
            return Ending {
                effects,
                ..Ending::new(Some(doc.uuid()), RunOutcome::Failed)
            };
        }
        let outcome = match result {
            Err(reason) => {
                tracing::warn!(chain = %self.chain.name, vcon_id = %doc.uuid(), %reason, "chain run failed: the vCon goes to DLQ:{list}");
                RunOutcome::Failed
            }
            Ok(LinkOutcome::Halt) => RunOutcome::Halted,
            Ok(_) => RunOutcome::Processed,
        };
        let mut ending = Ending {
            effects,
            ..Ending::new(Some(doc.uuid()), outcome)
        };
        if outcome == RunOutcome::Processed && !self.sinks.is_empty() {
            let saved = Arc::new(saved(doc.uuid(), doc.text().to_owned()));
            ending.failed_storages = storage_phase::write_all(
                &self.sinks,
                saved,
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
    ) -> Result<LinkOutcome, String> {
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
            let outcome = result.map_err(|e| format!("link {} failed: {e}", step.name))?;
            if doc.uuid() != before {
                self.store_new_vcon(doc).await.map_err(|e| {
                    format!(
                        "the new vCon of link {} could not be stored: {e}",
                        step.name
                    )
                })?;
            } else if step.calls_network {
                self.write_back(doc)
                    .await
                    .map_err(|e| format!("write-back after link {} failed: {e}", step.name))?;
            }
            if outcome == LinkOutcome::Halt {
                tracing::debug!(chain = %self.chain.name, link = %step.name, vcon_id = %doc.uuid(), "halted");
                return Ok(LinkOutcome::Halt);
            }
        }
        Ok(LinkOutcome::Continue)
    }

    /// Redis first; on a miss, the chain's storages in chain order, then the others (redis.md
    /// §5), re-cached without a TTL (the vCon is in flight).
    async fn load(&self, uuid: Uuid) -> Result<Option<String>, StoreError> {
        let cached = STORE_RETRY.run(|| self.store.get_vcon(uuid), |_, e, _| tracing::warn!(vcon_id = %uuid, error = %e, "retrying the read of a vCon")).await?;
        if cached.is_some() || !self.settings.storage_fallback {
            return Ok(cached);
        }
        let order = self.storages.chain_order(&self.chain.storages);
        let Some((storage, text)) = self.storages.read_back(uuid, order).await else {
            return Ok(None);
        };
        tracing::info!(vcon_id = %uuid, storage = %storage, "vCon read back from a storage and re-cached");
        store::recache(self.store.as_ref(), uuid, &text).await?;
        Ok(Some(text))
    }

    /// A link produced a vCon with another uuid (modules.md §1.2): stored and indexed like a
    /// posted one; the rest of the run uses it.
    async fn store_new_vcon(&self, doc: &mut Document) -> Result<(), StoreError> {
        let uuid = doc.uuid();
        tracing::info!(chain = %self.chain.name, vcon_id = %uuid, "a link produced a new vCon");
        store::recache(self.store.as_ref(), uuid, doc.text()).await?;
        doc.mark_written();
        Ok(())
    }

    async fn write_back(&self, doc: &mut Document) -> Result<(), StoreError> {
        if !doc.is_changed() {
            return Ok(());
        }
        let uuid = doc.uuid();
        let text = doc.text().to_owned();
        STORE_RETRY
            .run(
                || self.store.write_back(uuid, &text),
                |_, e, _| tracing::warn!(vcon_id = %uuid, error = %e, "retrying a write-back"),
            )
            .await?;
        doc.mark_written();
        Ok(())
    }

    /// Finish the run in the store; retried while the store is unreachable, so the item leaves
    /// the processing list only once everything else is done.
    async fn finish(&self, claimed: &Claimed, list: &str, ending: Ending) {
        let chain = self.chain.name.as_str();
        let outcome_label = match ending.outcome {
            RunOutcome::Processed => "processed",
            RunOutcome::Halted => "halted",
            RunOutcome::Failed => "failed",
            RunOutcome::Missing => "missing",
        };
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
            .run(|| self.store.finish(&finish), |_, e, wait| tracing::warn!(chain, item = %claimed.item, error = %e, ?wait, "retrying the end of a run"))
            .await;
        match result {
            Ok(()) => {
                tracing::debug!(chain, item = %claimed.item, outcome = outcome_label, "run finished")
            }
            Err(e) => {
                tracing::error!(chain, item = %claimed.item, error = %e, "the end of a run could not be recorded: the item stays in this instance's processing list and is taken again after a restart")
            }
        }
    }
}

/// What the storages receive for a vCon text (the end of a link phase, or a storage DLQ
/// retry): date paths come from `created_at` as written, else from the index instant.
pub fn saved(uuid: Uuid, text: String) -> Saved {
    #[derive(serde::Deserialize)]
    struct CreatedAt {
        created_at: Option<serde_json::Value>,
    }
    let created_at = serde_json::from_str::<CreatedAt>(&text)
        .ok()
        .and_then(|c| c.created_at)
        .and_then(|v| v.as_str().map(str::to_owned));
    let index_instant = vcon::describe(&text)
        .and_then(|d| d.created_at)
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    Saved {
        uuid,
        text,
        created_at,
        index_instant,
    }
}
