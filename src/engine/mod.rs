//! The processing engine: runs the chains of the configuration on the actor runtime
//! (`conserver-actors`), with the at-least-once queue of redis.md §3.
//!
//! - [`pipelines`] — the built links and storages of a configuration, and each chain's plan.
//! - [`runner`] — one chain run: load, links, write-back, storages, finish; the `Work` of a chain.
//! - [`storage_phase`] — the `StorageSink` deliveries of a run, and the reprocessing of a
//!   storage's DLQ.
//! - [`instance`] — heartbeat, the reaper of dead instances' processing lists, the sweeper of
//!   this instance's stranded items; [`held`] — what this instance runs.
//! - [`observer`] — runtime events as metrics; `summary` — the periodic INFO line of each chain.

pub mod held;
pub mod instance;
pub mod observer;
pub mod pipelines;
pub mod runner;
pub mod storage_phase;
mod summary;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conserver_actors::{ChainSpec, ChainState, Runtime, Sink};

use crate::config::{Chain, Config, Retry};
use crate::metrics::Metrics;
use crate::storages::Storage;
use crate::store::Store;
use held::Held;
use observer::MetricsObserver;
pub use pipelines::Pipelines;
use runner::{ChainRunner, RunSettings};
use storage_phase::{StorageDelivery, StorageSink};

/// Deliveries one storage handles at once on this instance.
const STORAGE_CONCURRENCY: usize = 32;

/// The sink of one storage instance, and what it was started for.
#[derive(Clone)]
struct SinkEntry {
    name: String,
    storage: Arc<dyn Storage>,
    retry: Retry,
    sink: StorageSink,
}

/// What a running chain is made of: a new configuration that gives a chain the same leaves
/// it running.
#[derive(Debug, PartialEq)]
struct Definition {
    chain: Chain,
    /// The instances of its links, by address.
    links: Vec<usize>,
    /// Its sinks, by the address of their storage instance, with their retry policy.
    sinks: Vec<(usize, Retry)>,
    /// Every configured storage (the fallback reads), by name and address.
    storages: Vec<(String, usize)>,
    settings: RunSettings,
}

impl Definition {
    fn of(
        plan: &pipelines::ChainPlan,
        sinks: &[SinkEntry],
        pipelines: &Pipelines,
        settings: &RunSettings,
    ) -> Definition {
        let address = |storage: &Arc<dyn Storage>| Arc::as_ptr(storage) as *const () as usize;
        Definition {
            chain: plan.chain.clone(),
            links: plan
                .links
                .iter()
                .map(|l| Arc::as_ptr(&l.link) as *const () as usize)
                .collect(),
            sinks: plan
                .chain
                .storages
                .iter()
                .filter_map(|name| sinks.iter().find(|entry| &entry.name == name))
                .map(|entry| (address(&entry.storage), entry.retry.clone()))
                .collect(),
            storages: pipelines
                .sinks
                .iter()
                .map(|(name, storage, _)| (name.clone(), address(storage)))
                .collect(),
            settings: settings.clone(),
        }
    }
}

/// The running engine of this instance.
pub struct Engine {
    runtime: Runtime,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    instance_id: String,
    /// The chains started by the last [`Engine::apply`], by what defines them.
    running: Mutex<Vec<Definition>>,
    /// Their names and ingress lists, for the periodic summaries.
    summarised: summary::Chains,
    /// The storage sinks of the configuration in force.
    sinks: Mutex<Vec<SinkEntry>>,
    /// Every ingress list this instance has consumed (noted in the store for recovery).
    consumed: instance::ConsumedLists,
    /// What this instance runs, to tell stranded items from running ones.
    held: Held,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Engine {
    /// Register this instance, recover what a previous run with the same id left in flight,
    /// start the heartbeat and the reaper, and start the chains of `config`. Must run inside an
    /// actix `System`.
    pub async fn start(
        config: &Config,
        pipelines: &Pipelines,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Engine, crate::store::StoreError> {
        let id = config.redis.instance_id.clone();
        let ttl = config.redis.heartbeat_ttl;
        let info = instance::info(&id);
        // An instance restarted under a fixed id takes back what it had in flight.
        for (list, count) in store.recover_instance(&id).await? {
            if count > 0 {
                tracing::warn!(list = %list, count, "items left in flight by a previous run of this instance were put back");
            }
        }
        store.register_instance(&id, &info, ttl).await?;
        let consumed = instance::ConsumedLists::default();
        let held = Held::default();
        let background = vec![
            tokio::spawn(instance::heartbeat(
                store.clone(),
                id.clone(),
                info,
                ttl,
                consumed.clone(),
            )),
            tokio::spawn(instance::reaper(
                store.clone(),
                id.clone(),
                ttl,
                metrics.clone(),
            )),
            tokio::spawn(instance::sweeper(
                store.clone(),
                id.clone(),
                ttl,
                consumed.clone(),
                held.clone(),
                metrics.clone(),
            )),
        ];
        let summarised = summary::Chains::default();
        let mut background = background;
        background.push(tokio::spawn(summary::summaries(
            store.clone(),
            metrics.clone(),
            summarised.clone(),
            summary::PERIOD,
        )));
        let runtime = Runtime::start(Arc::new(MetricsObserver(metrics.clone())));
        let engine = Engine {
            runtime,
            store,
            metrics,
            instance_id: id,
            running: Mutex::new(Vec::new()),
            summarised,
            sinks: Mutex::new(Vec::new()),
            consumed,
            held,
            background,
        };
        engine.apply(config, pipelines).await;
        Ok(engine)
    }

    /// Put `config` in force: chains added, changed (in-flight runs finish with the definition
    /// they started with), disabled or removed (their in-flight runs finish). A chain whose
    /// definition did not change keeps running as it is, and a storage whose instance did not
    /// change keeps its sink. Every plan was resolved when `pipelines` was built; this only
    /// starts them.
    pub async fn apply(&self, config: &Config, pipelines: &Pipelines) {
        self.metrics.declare(config);
        let sinks = self.sinks_for(pipelines);
        let enqueue_lists: Arc<HashSet<String>> = Arc::new(
            config
                .chains
                .iter()
                .filter(|c| c.enabled)
                .flat_map(|c| c.ingress_lists.iter().cloned())
                .collect(),
        );
        let settings = RunSettings {
            vcon_ttl: config.redis.vcon_ttl,
            dlq_ttl: config.redis.dlq_ttl,
            storage_fallback: config.redis.storage_fallback,
            parallel_storage: config.limits.parallel_storage,
            enqueue_lists,
        };
        let previous: Vec<Definition> =
            std::mem::take(&mut *self.running.lock().unwrap_or_else(|p| p.into_inner()));
        let mut started = Vec::new();
        for plan in pipelines
            .plans
            .iter()
            .filter(|p| p.chain.enabled && !p.chain.ingress_lists.is_empty())
        {
            let chain = &plan.chain;
            let chain_sinks: Vec<(String, StorageSink)> = chain
                .storages
                .iter()
                .filter_map(|name| {
                    let entry = sinks.iter().find(|entry| &entry.name == name)?;
                    Some((name.clone(), entry.sink.clone()))
                })
                .collect();
            let definition = Definition::of(plan, &sinks, pipelines, &settings);
            if previous.contains(&definition) {
                started.push(definition);
                continue;
            }
            for list in &chain.ingress_lists {
                self.consumed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(list.clone());
                if let Err(e) = self.store.note_consumed_list(&self.instance_id, list).await {
                    tracing::warn!(list = %list, error = %crate::report(&e), "could not note the list this instance consumes; recovery after a crash may miss it");
                }
            }
            let runner = ChainRunner {
                chain: chain.clone(),
                links: plan.links.clone(),
                sinks: chain_sinks,
                storages: pipelines.storages.clone(),
                store: self.store.clone(),
                instance_id: self.instance_id.clone(),
                settings: settings.clone(),
                metrics: self.metrics.clone(),
                held: self.held.clone(),
            };
            let spec = ChainSpec {
                name: chain.name.clone(),
                sources: chain.ingress_lists.len(),
                workers: chain.workers,
            };
            self.runtime.start_chain(spec, Arc::new(runner)).await;
            self.metrics
                .chain_starts
                .with_label_values(&[chain.name.as_str()])
                .inc();
            tracing::info!(chain = %chain.name, "chain started");
            started.push(definition);
        }
        let stopped: Vec<String> = previous
            .iter()
            .filter(|old| !started.iter().any(|new| new.chain.name == old.chain.name))
            .map(|old| old.chain.name.clone())
            .collect();
        *self.summarised.lock().unwrap_or_else(|p| p.into_inner()) = started
            .iter()
            .map(|d| (d.chain.name.clone(), d.chain.ingress_lists.clone()))
            .collect();
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = started;
        *self.sinks.lock().unwrap_or_else(|p| p.into_inner()) = sinks;
        for name in stopped {
            tracing::info!(chain = %name, "chain stopped by the new configuration; its in-flight vCons finish");
            self.runtime.stop_chain(&name).await;
        }
    }

    /// The sinks of `pipelines`' storages: the running one of a storage whose instance and
    /// retry policy did not change, a new one otherwise.
    fn sinks_for(&self, pipelines: &Pipelines) -> Vec<SinkEntry> {
        let running = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        pipelines
            .sinks
            .iter()
            .map(|(name, storage, retry)| {
                let kept = running.iter().find(|entry| {
                    &entry.name == name
                        && Arc::ptr_eq(&entry.storage, storage)
                        && &entry.retry == retry
                });
                match kept {
                    Some(entry) => entry.clone(),
                    None => SinkEntry {
                        name: name.clone(),
                        storage: storage.clone(),
                        retry: retry.clone(),
                        sink: Sink::start(
                            name.clone(),
                            Arc::new(StorageDelivery(storage.clone())),
                            STORAGE_CONCURRENCY,
                            crate::http::retry_policy(retry),
                            Arc::new(MetricsObserver(self.metrics.clone())),
                        ),
                    },
                }
            })
            .collect()
    }

    /// The chains of this instance, for `/ready`.
    pub async fn chains(&self) -> Vec<ChainState> {
        self.runtime.chains().await
    }

    /// Stop taking work, let in-flight runs finish for up to `grace`, hand back what remains
    /// (redis.md §3.6), and leave the cluster.
    pub async fn shutdown(&self, grace: Duration) {
        let cancelled = self.runtime.shutdown(grace).await;
        if cancelled > 0 {
            tracing::warn!(cancelled, "in-flight vCons did not finish within the shutdown grace; handed back to their ingress lists");
        }
        for task in &self.background {
            task.abort();
        }
        match self.store.recover_instance(&self.instance_id).await {
            Ok(moved) => {
                let total: u64 = moved.iter().map(|(_, n)| n).sum();
                if total > 0 {
                    tracing::info!(
                        items = total,
                        "unfinished items put back at the head of their ingress lists"
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %crate::report(&e), "unfinished items could not be handed back; another instance will recover them when this heartbeat expires")
            }
        }
        if let Err(e) = self.store.deregister_instance(&self.instance_id).await {
            tracing::warn!(error = %crate::report(&e), "heartbeat not removed; it expires by itself");
        }
    }
}
