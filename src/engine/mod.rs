//! The processing engine: runs the chains of the configuration on the actor runtime
//! (`conserver-actors`), with the at-least-once queue of redis.md §3.
//!
//! - [`pipelines`] — the built links and storages of a configuration, and each chain's plan.
//! - [`runner`] — one chain run: load, links, write-back, storages, finish; the `Work` of a chain.
//! - [`storage_phase`] — the `StorageSink` deliveries of a run, and the reprocessing of a
//!   storage's DLQ.
//! - [`instance`] — heartbeat, the reaper of dead instances' processing lists, the sweeper of
//!   this instance's stranded items; [`held`] — what this instance runs.
//! - [`observer`] — runtime events as metrics.

pub mod held;
pub mod instance;
pub mod observer;
pub mod pipelines;
pub mod runner;
pub mod storage_phase;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conserver_actors::{ChainSpec, ChainState, Runtime, Sink};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;
use held::Held;
use observer::MetricsObserver;
pub use pipelines::Pipelines;
use runner::{ChainRunner, RunSettings};
use storage_phase::{StorageDelivery, StorageSink};

/// Deliveries one storage handles at once on this instance.
const STORAGE_CONCURRENCY: usize = 32;

/// The running engine of this instance.
pub struct Engine {
    runtime: Runtime,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    instance_id: String,
    /// Chains started by the last [`Engine::apply`].
    running: Mutex<Vec<String>>,
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
        let runtime = Runtime::start(Arc::new(MetricsObserver(metrics.clone())));
        let engine = Engine {
            runtime,
            store,
            metrics,
            instance_id: id,
            running: Mutex::new(Vec::new()),
            consumed,
            held,
            background,
        };
        engine.apply(config, pipelines).await;
        Ok(engine)
    }

    /// Put `config` in force: chains added, changed (in-flight runs finish with the definition
    /// they started with), disabled or removed (their in-flight runs finish). Every plan was
    /// resolved when `pipelines` was built; this only starts them.
    pub async fn apply(&self, config: &Config, pipelines: &Pipelines) {
        self.metrics.declare(config);
        let sinks: Vec<(String, StorageSink)> = pipelines
            .sinks
            .iter()
            .map(|(name, storage, retry)| {
                let sink = Sink::start(
                    name.clone(),
                    Arc::new(StorageDelivery(storage.clone())),
                    STORAGE_CONCURRENCY,
                    crate::http::retry_policy(retry),
                    Arc::new(MetricsObserver(self.metrics.clone())),
                );
                (name.clone(), sink)
            })
            .collect();
        let enqueue_lists: Arc<HashSet<String>> = Arc::new(
            config
                .chains
                .iter()
                .filter(|c| c.enabled)
                .flat_map(|c| c.ingress_lists.iter().cloned())
                .collect(),
        );
        let mut started = Vec::new();
        for plan in pipelines
            .plans
            .iter()
            .filter(|p| p.chain.enabled && !p.chain.ingress_lists.is_empty())
        {
            let chain = &plan.chain;
            let chain_sinks = chain
                .storages
                .iter()
                .filter_map(|name| sinks.iter().find(|(n, _)| n == name).cloned())
                .collect();
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
                settings: RunSettings {
                    vcon_ttl: config.redis.vcon_ttl,
                    dlq_ttl: config.redis.dlq_ttl,
                    storage_fallback: config.redis.storage_fallback,
                    parallel_storage: config.limits.parallel_storage,
                    enqueue_lists: enqueue_lists.clone(),
                },
                metrics: self.metrics.clone(),
                held: self.held.clone(),
            };
            let spec = ChainSpec {
                name: chain.name.clone(),
                sources: chain.ingress_lists.len(),
                workers: chain.workers,
            };
            self.runtime.start_chain(spec, Arc::new(runner)).await;
            started.push(chain.name.clone());
        }
        let stopped: Vec<String> = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let stopped = running
                .iter()
                .filter(|name| !started.contains(name))
                .cloned()
                .collect();
            *running = started;
            stopped
        };
        for name in stopped {
            tracing::info!(chain = %name, "chain stopped by the new configuration; its in-flight vCons finish");
            self.runtime.stop_chain(&name).await;
        }
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
