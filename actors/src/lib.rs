//! conserver-actors: the supervised runtime that runs conserver's chains, generic over the work
//! it runs. It knows nothing of vCons, Redis or HTTP: the root crate implements its traits.
//!
//! - [`work`] — the traits the product implements (`Work`, `Deliver`, `Observer`) and the
//!   handles it drives the runtime with (`Runtime`, `Sink`).
//! - [`retry`] — retry with exponential backoff, jitter and `Retry-After`, for transient errors.
pub mod retry;
pub mod work;

pub use retry::{Retriable, RetryPolicy};
pub use work::{BoxFuture, ChainSpec, ChainState, Deliver, Observer, Runtime, Sink, SinkError, Work};
