//! The storage phase of a run (modules.md §1.3): every storage of the chain written
//! concurrently (or in chain order when `limits.parallel_storage` is false), each through its
//! `StorageSink` actor, which bounds its concurrency and retries transient errors. A write that
//! still fails is reported back so the run dead-letters it; one failing storage never stops
//! the others. And the second chance of a dead-lettered write: [`reprocess_dead_letters`]
//! (`POST /dlq/storage/reprocess`).

use std::sync::Arc;
use std::time::Instant;

use conserver_actors::{BoxFuture, Deliver, RetryPolicy, Sink, SinkError};
use futures_util::future::join_all;
use tracing::Instrument;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::report::report;
use crate::storages::{Saved, Storage, StorageError, Storages};
use crate::store::{self, EgressRelease, Store, StoreError};
use crate::vcon::{self, Document};

/// One write to deliver: the vCon, and the span of the run it belongs to (the sink's actor
/// runs it, so the storage's log lines still say which run).
pub struct Delivery {
    saved: Arc<Saved>,
    span: tracing::Span,
}

/// Delivers vCons to one storage: what a `StorageSink` actor runs.
pub struct StorageDelivery(pub Arc<dyn Storage>);

impl Deliver for StorageDelivery {
    type Item = Delivery;
    type Error = StorageError;

    fn deliver(self: Arc<Self>, item: Arc<Delivery>) -> BoxFuture<Result<(), StorageError>> {
        let span = item.span.clone();
        Box::pin(async move { self.0.save(&item.saved).await }.instrument(span))
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
    let delivery = Arc::new(Delivery {
        saved,
        span: tracing::Span::current(),
    });
    let write = |name: &str, sink: &StorageSink| {
        let delivery = delivery.clone();
        let sink = sink.clone();
        let name = name.to_owned();
        async move {
            let started = Instant::now();
            let outcome = sink.deliver(delivery).await;
            metrics
                .storage_duration
                .with_label_values(&[name.as_str()])
                .observe(started.elapsed().as_secs_f64());
            let ok = match outcome {
                Ok(()) => true,
                Err(SinkError::Failed(error)) => {
                    tracing::error!(storage = %name, error = %report(&error), "storage write failed: dead-lettered to DLQ:storage:{name}");
                    false
                }
                Err(SinkError::Closed) => {
                    tracing::error!(storage = %name, "storage sink stopped during the write: dead-lettered to DLQ:storage:{name}");
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

/// What a reprocessing of one storage's DLQ needs.
pub struct DeadLetters<'a> {
    /// The server's store (the DLQ, the egress-pending records, the vCons).
    pub store: &'a dyn Store,
    /// Every configured storage (a vCon missing from the store is read back from them).
    pub storages: &'a Storages,
    /// The storage whose DLQ this is.
    pub name: &'a str,
    /// Its retry policy.
    pub retry: RetryPolicy,
    /// Ingress lists of enabled chains: released egress onto these uses the enqueue protocol.
    pub enqueue_lists: &'a [String],
    /// Read vCons missing from the store back from the storages.
    pub storage_fallback: bool,
}

/// Retry the dead-lettered writes of one storage, oldest first, at most `count`; stop at the
/// first that fails again (it stays at the head). When a write succeeds, the egress its
/// failure held back is released once no other storage of that run is still failing
/// (redis.md §4.3). The number of successful writes.
pub async fn reprocess_dead_letters(
    dead: DeadLetters<'_>,
    count: usize,
) -> Result<u64, StoreError> {
    let DeadLetters {
        store,
        storages,
        name,
        ..
    } = dead;
    let Some(storage) = storages.get(name) else {
        return Ok(0);
    };
    let mut written = 0u64;
    for item in store.storage_dlq_head(name, count).await? {
        let span = tracing::error_span!("storage_dlq", storage = %name, vcon_id = %item);
        let found = match vcon::parse_uuid(&item) {
            Some(uuid) => read(&dead, uuid).instrument(span.clone()).await?,
            None => None,
        };
        let Some(saved) = found else {
            span.in_scope(|| {
                tracing::error!("storage DLQ entry dropped: its vCon is found nowhere")
            });
            store
                .storage_dlq_done(name, &item, false, dead.enqueue_lists)
                .await?;
            continue;
        };
        let outcome = dead
            .retry
            .run(
                || storage.save(&saved),
                |_, e, _| tracing::warn!(error = %report(e), "retrying a storage DLQ write"),
            )
            .instrument(span.clone())
            .await;
        if let Err(error) = outcome {
            span.in_scope(|| tracing::error!(error = %report(&error), "storage DLQ write failed again: left at the head of DLQ:storage:{name}"));
            break;
        }
        let release = store
            .storage_dlq_done(name, &item, true, dead.enqueue_lists)
            .await?;
        if let EgressRelease::Released(lists) = release {
            span.in_scope(|| tracing::info!(lists = ?lists, "pending egress completed after the storage DLQ write"));
        }
        written += 1;
    }
    Ok(written)
}

/// The vCon of a dead-lettered write: from the store, else (when allowed) read back from a
/// storage and re-cached.
async fn read(dead: &DeadLetters<'_>, uuid: Uuid) -> Result<Option<Saved>, StoreError> {
    let (text, read_back) = match dead.store.get_vcon(uuid).await? {
        Some(text) => (text, false),
        None if dead.storage_fallback => {
            match dead.storages.read_back(uuid, dead.storages.names()).await {
                Some((_, text)) => (text, true),
                None => return Ok(None),
            }
        }
        None => return Ok(None),
    };
    let mut doc = match Document::from_stored(uuid, text) {
        Ok(doc) => doc,
        Err(error) => {
            tracing::error!(error = %report(&error), "the stored vCon is unreadable");
            return Ok(None);
        }
    };
    if read_back {
        store::recache(dead.store, &mut doc).await?;
    }
    Ok(Some(Saved::from(doc)))
}
