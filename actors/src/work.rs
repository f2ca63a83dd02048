//! The traits the product implements, the types it exchanges with the runtime, and (re-exported
//! from their modules) the handles it drives the runtime with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::retry::Retriable;
pub use crate::runtime::{Runtime, RuntimeOptions};
pub use crate::sink::Sink;

/// A boxed, sendable, `'static` future: what the runtime spawns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why a take failed: the product's own error, with its causes (the poller logs all of them).
pub type TakeError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What one chain does, in the runtime's terms: take items from its sources, run each to its
/// end. The product's implementation (the chain runner) owns every side effect; the runtime
/// owns concurrency, backpressure, panic containment, restarts and draining.
pub trait Work: Send + Sync + 'static {
    /// One unit of work (for conserver: a claimed uuid and the list it came from).
    type Item: Clone + Send + std::fmt::Debug + 'static;

    /// The next item of source `source` (0 .. `ChainSpec::sources`), waiting at most `wait`;
    /// `Ok(None)` when none came. An error is transient (the store is down): the poller logs
    /// it, counts a restart of itself, backs off and tries again.
    fn take(
        self: Arc<Self>,
        source: usize,
        wait: Duration,
    ) -> BoxFuture<Result<Option<Self::Item>, TakeError>>;

    /// Process one item to its end (the product acknowledges it). Runs in a task of its own: a
    /// panic is caught by the runtime and handed to [`Work::panicked`].
    fn run(self: Arc<Self>, item: Self::Item) -> BoxFuture<()>;

    /// `run` panicked for `item`: account for it (dead-letter it). `message` is the panic text.
    fn panicked(self: Arc<Self>, item: Self::Item, message: String) -> BoxFuture<()>;
}

/// How to run one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    /// The chain's name: unique in the runtime, used in logs and metrics.
    pub name: String,
    /// Number of sources (ingress lists): one poller each.
    pub sources: usize,
    /// Items of this chain in flight at once on this instance (≥ 1; 0 is taken as 1). A poller takes an item
    /// only when a slot is free, so a slow chain slows its intake.
    pub workers: usize,
}

/// What the runtime reports to the product's metrics and logs.
pub trait Observer: Send + Sync + 'static {
    /// An actor of `kind` (`poller`, `chain`, `sink`) serving `name` failed and was restarted:
    /// a poller after a failed take, a chain's worker after a run panicked, a sink after a
    /// delivery panicked.
    fn restarted(&self, kind: &'static str, name: &str);
    /// Items of chain `chain` now in flight on this instance.
    fn in_flight(&self, chain: &str, count: usize);
    /// A delivery of sink `name` is retried for `reason`.
    fn retried(&self, name: &str, reason: &'static str);
}

/// The state of one chain in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// The chain's name.
    pub name: String,
    /// Its items in flight at most (of its current generation).
    pub workers: usize,
    /// Its pollers are running (false while restarting after a failure, or when stopped).
    pub running: bool,
    /// Its items in flight now (a replaced or stopped chain's draining runs included).
    pub in_flight: usize,
}

/// Delivers items to one backend (a storage, a webhook target).
pub trait Deliver: Send + Sync + 'static {
    /// What is delivered (shared by the tries, and by the sinks a vCon goes to).
    type Item: Send + Sync + 'static;
    /// A failed try; whether it is worth another is its own call ([`Retriable`]).
    type Error: Retriable + std::fmt::Display + Send + 'static;

    /// One try.
    fn deliver(self: Arc<Self>, item: Arc<Self::Item>) -> BoxFuture<Result<(), Self::Error>>;
}

/// Why a delivery did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError<E> {
    /// The last error, after the retry policy gave up or at once for a permanent error.
    #[error("{0}")]
    Failed(E),
    /// The sink was stopped.
    #[error("the sink is stopped")]
    Closed,
}
