//! The traits the product implements, and the handles it drives the runtime with.
//!
//! OWNER: actors helper. The signatures below are the interface the root crate is being
//! written against; bodies are to be written.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::retry::{Retriable, RetryPolicy};

/// A boxed, sendable, `'static` future: what the runtime spawns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What one chain does, in the runtime's terms: take items from its sources, run each to its
/// end. The product's implementation (the chain runner) owns every side effect; the runtime
/// owns concurrency, backpressure, panic containment, restarts and draining.
pub trait Work: Send + Sync + 'static {
    /// One unit of work (for conserver: a claimed uuid and the list it came from).
    type Item: Clone + Send + std::fmt::Debug + 'static;

    /// The next item of source `source` (0 .. `ChainSpec::sources`), waiting at most `wait`;
    /// `Ok(None)` when none came. An error is transient (the store is down): the poller logs
    /// it, counts a restart of itself, backs off and tries again.
    fn take(self: Arc<Self>, source: usize, wait: Duration) -> BoxFuture<Result<Option<Self::Item>, String>>;

    /// Process one item to its end (the product acknowledges it). Runs in a task of its own: a
    /// panic is caught by the runtime and handed to [`Work::panicked`].
    fn run(self: Arc<Self>, item: Self::Item) -> BoxFuture<()>;

    /// `run` panicked for `item`: account for it (dead-letter it). `message` is the panic text.
    fn panicked(self: Arc<Self>, item: Self::Item, message: String) -> BoxFuture<()>;
}

/// How to run one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    pub name: String,
    /// Number of sources (ingress lists): one poller each.
    pub sources: usize,
    /// Items of this chain in flight at once on this instance (≥ 1). A poller takes an item
    /// only when a slot is free, so a slow chain slows its intake.
    pub workers: usize,
}

/// What the runtime reports to the product's metrics and logs.
pub trait Observer: Send + Sync + 'static {
    /// An actor of `kind` (`poller`, `chain`, `sink`) serving `name` failed and was restarted.
    fn restarted(&self, kind: &'static str, name: &str);
    /// Items of chain `chain` now in flight on this instance.
    fn in_flight(&self, chain: &str, count: usize);
    /// A delivery of sink `name` is retried for `reason`.
    fn retried(&self, name: &str, reason: &'static str);
}

/// The state of one chain in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub name: String,
    pub workers: usize,
    /// Its pollers are running (false while restarting after a failure, or when stopped).
    pub running: bool,
    pub in_flight: usize,
}

/// The handle of the supervisor (the root actor). Cheap to clone.
#[derive(Clone)]
pub struct Runtime {}

impl Runtime {
    /// Start the supervisor. Must be called inside an actix `System`.
    pub fn start(observer: Arc<dyn Observer>) -> Runtime {
        let _ = observer;
        todo!("actors helper")
    }

    /// Run `work` as chain `spec.name`. A chain of the same name already running is replaced:
    /// it stops taking items at once and its in-flight items finish with the old `work`.
    pub async fn start_chain<W: Work>(&self, spec: ChainSpec, work: Arc<W>) {
        let _ = (spec, work);
        todo!("actors helper")
    }

    /// Stop taking items for chain `name`; its in-flight items finish. Unknown names are ignored.
    pub async fn stop_chain(&self, name: &str) {
        let _ = name;
        todo!("actors helper")
    }

    /// Every chain, in start order.
    pub async fn chains(&self) -> Vec<ChainState> {
        todo!("actors helper")
    }

    /// Stop every poller, let in-flight items finish for up to `grace`, then cancel what
    /// remains. Returns how many items were cancelled (the product hands them back).
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let _ = grace;
        todo!("actors helper")
    }
}

/// Delivers items to one backend (a storage, a webhook target).
pub trait Deliver: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Error: Retriable + std::fmt::Display + Send + 'static;

    /// One try.
    fn deliver(self: Arc<Self>, item: Arc<Self::Item>) -> BoxFuture<Result<(), Self::Error>>;
}

/// Why a delivery did not succeed.
#[derive(Debug)]
pub enum SinkError<E> {
    /// The last error, after the retry policy gave up or at once for a permanent error.
    Failed(E),
    /// The sink was stopped.
    Closed,
}

/// The handle of a sink actor (`StorageSink`, `WebhookDelivery`): bounded concurrency (a
/// bounded mailbox: a caller waits when it is full) and retries of transient errors.
pub struct Sink<D: Deliver> {
    _deliver: std::marker::PhantomData<D>,
}

impl<D: Deliver> Clone for Sink<D> {
    fn clone(&self) -> Self {
        Sink { _deliver: std::marker::PhantomData }
    }
}

impl<D: Deliver> Sink<D> {
    /// Start a sink named `name` (for logs and metrics). Must be called inside an actix `System`.
    pub fn start(name: String, deliver: Arc<D>, concurrency: usize, policy: RetryPolicy, observer: Arc<dyn Observer>) -> Sink<D> {
        let _ = (name, deliver, concurrency, policy, observer);
        todo!("actors helper")
    }

    /// Deliver `item` with retries; waits for a free slot first.
    pub async fn deliver(&self, item: Arc<D::Item>) -> Result<(), SinkError<D::Error>> {
        let _ = item;
        todo!("actors helper")
    }
}
