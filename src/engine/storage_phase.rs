//! The storage phase of a run (modules.md §1.3): every storage of the chain written
//! concurrently (or in chain order when `limits.parallel_storage` is false), each through its
//! `StorageSink` actor, which bounds its concurrency and retries transient errors. A write that
//! still fails is reported back so the run dead-letters it; one failing storage never stops
//! the others.

use std::sync::Arc;
use std::time::Instant;

use conserver_actors::{BoxFuture, Deliver, Sink, SinkError};
use futures_util::future::join_all;

use crate::metrics::Metrics;
use crate::storages::{Saved, Storage, StorageError};

/// Delivers vCons to one storage: what a `StorageSink` actor runs.
pub struct StorageDelivery(pub Arc<dyn Storage>);

impl Deliver for StorageDelivery {
    type Item = Saved;
    type Error = StorageError;

    fn deliver(self: Arc<Self>, item: Arc<Saved>) -> BoxFuture<Result<(), StorageError>> {
        Box::pin(async move { self.0.save(&item).await })
    }
}

/// The sink of one storage, by name.
pub type StorageSink = Sink<StorageDelivery>;

/// Write `saved` to every sink; the names of the storages whose write failed for good.
pub async fn write_all(
    sinks: &[(String, StorageSink)],
    saved: Arc<Saved>,
    parallel: bool,
    metrics: &Metrics,
) -> Vec<String> {
    let write = |name: &str, sink: &StorageSink| {
        let saved = saved.clone();
        let sink = sink.clone();
        let name = name.to_owned();
        async move {
            let started = Instant::now();
            let outcome = sink.deliver(saved.clone()).await;
            metrics
                .storage_duration
                .with_label_values(&[name.as_str()])
                .observe(started.elapsed().as_secs_f64());
            let ok = match outcome {
                Ok(()) => true,
                Err(SinkError::Failed(error)) => {
                    tracing::error!(storage = %name, vcon_id = %saved.uuid, %error, "storage write failed: dead-lettered to DLQ:storage:{name}");
                    false
                }
                Err(SinkError::Closed) => {
                    tracing::error!(storage = %name, vcon_id = %saved.uuid, "storage sink stopped during the write: dead-lettered to DLQ:storage:{name}");
                    false
                }
            };
            let label = if ok { "ok" } else { "dead_lettered" };
            metrics
                .storage_writes
                .with_label_values(&[name.as_str(), label])
                .inc();
            (name, ok)
        }
    };
    let results = if parallel {
        join_all(sinks.iter().map(|(name, sink)| write(name, sink))).await
    } else {
        let mut results = Vec::with_capacity(sinks.len());
        for (name, sink) in sinks {
            results.push(write(name, sink).await);
        }
        results
    };
    results
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect()
}
