//! conserver-actors: the supervised runtime that runs conserver's chains, generic over the work
//! it runs. It knows nothing of vCons, Redis or HTTP: the root crate implements its traits.
//!
//! The map (actix actors; DESIGN.md "The actors"):
//!
//! ```text
//! Runtime (handle) ──▶ Supervisor ── per chain generation ──▶ IngressPoller × sources
//!                      (supervisor.rs)                          (poller.rs: slot, then take)
//!                                                                    │ Run { item, slot }
//!                                                                    ▼
//!                                                              ChainWorker (chain.rs)
//!                                                                    │ one task per run,
//!                                                                    ▼ on the run pool (pool.rs)
//!                                                              Work::run / Work::panicked
//! Sink (handle) ──▶ SinkActor (sink.rs): admits `concurrency` deliveries; each retried
//! ```
//!
//! - [`work`] — the traits the product implements (`Work`, `Deliver`, `Observer`) and the types
//!   it exchanges with the runtime (`ChainSpec`, `ChainState`, `SinkError`); it re-exports the
//!   handles below.
//! - `runtime` — the [`Runtime`] handle and its [`RuntimeOptions`].
//! - `supervisor` — the root actor: starts, replaces and stops chains; drains and shuts down.
//! - `poller` — `IngressPoller`: a worker slot first, then a take (the backpressure); restarted
//!   by its actix `Supervisor` after a failed take, with backoff.
//! - `chain` — `ChainWorker`: the accounting of a chain's runs; each run a task of its own, so
//!   a panic is caught and handed to `Work::panicked`, and a cancellation is an abort.
//! - `pool` — the threads runs are spread over.
//! - `sink` — [`Sink`]: bounded concurrency through a bounded mailbox, retries per delivery.
//! - [`retry`] — retry with exponential backoff, jitter and `Retry-After`, for transient errors.
//! - `panics` — the text of a caught panic.
//!
//! The queue in the store, not a mailbox, is the source of truth for work (redis.md §3): the
//! runtime never holds an item it has not been given a worker slot for, and everything it
//! cancels is still in the store for the product to hand back.
mod chain;
mod panics;
mod poller;
mod pool;
pub mod retry;
mod runtime;
mod sink;
mod supervisor;
pub mod work;

pub use retry::{Retriable, RetryPolicy};
pub use work::{
    BoxFuture, ChainSpec, ChainState, Deliver, Observer, Runtime, RuntimeOptions, Sink, SinkError,
    TakeError, Work,
};
