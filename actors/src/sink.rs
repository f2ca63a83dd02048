//! The sink actor (`StorageSink`, `WebhookDelivery`) and its `Sink` handle. The actor admits
//! deliveries: at most `concurrency` hold a slot at once, and while none is free it stops
//! reading its bounded mailbox, so further callers wait in `send().await`. An admitted delivery
//! runs, with its retries, in a task of its own on the caller's thread — the work spreads over
//! the threads of the runs that deliver, and a panicking backend cannot kill the actor.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use actix::fut::WrapFuture;
use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, ResponseFuture};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::{JoinError, JoinHandle};

use crate::panics::panic_text;
use crate::retry::{Retriable, RetryPolicy};
use crate::work::{Deliver, Observer, SinkError};

/// The handle of a sink actor: bounded concurrency (a bounded mailbox: a caller waits when it
/// is full) and retries of transient errors. Cheap to clone.
pub struct Sink<D: Deliver> {
    shared: Arc<Shared<D>>,
    actor: Addr<SinkActor>,
}

/// What every delivery of a sink needs.
struct Shared<D> {
    name: String,
    deliver: Arc<D>,
    policy: RetryPolicy,
    observer: Arc<dyn Observer>,
    /// The delivery slots, also held here so `stop` takes effect at once.
    slots: Arc<Semaphore>,
}

impl<D: Deliver> Clone for Sink<D> {
    fn clone(&self) -> Self {
        Sink {
            shared: self.shared.clone(),
            actor: self.actor.clone(),
        }
    }
}

impl<D: Deliver> Sink<D> {
    /// Start a sink named `name` (for logs and metrics), `concurrency` deliveries at once (at
    /// least 1). Must be called inside an actix `System`.
    pub fn start(
        name: String,
        deliver: Arc<D>,
        concurrency: usize,
        policy: RetryPolicy,
        observer: Arc<dyn Observer>,
    ) -> Sink<D> {
        let concurrency = concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let actor = SinkActor::create({
            let slots = slots.clone();
            move |ctx| {
                ctx.set_mailbox_capacity(concurrency);
                SinkActor { slots }
            }
        });
        Sink {
            shared: Arc::new(Shared {
                name,
                deliver,
                policy,
                observer,
                slots,
            }),
            actor,
        }
    }

    /// Deliver `item` with retries; waits for a free slot first. Each retry is reported to
    /// `Observer::retried` with the error's `retry_reason`.
    ///
    /// # Panics
    /// When the backend's `deliver` panics: the panic is resumed here, in the caller (a chain's
    /// run, whose panic the runtime contains), after counting a restart of the sink.
    pub async fn deliver(&self, item: Arc<D::Item>) -> Result<(), SinkError<D::Error>> {
        let slot = match self.actor.send(Admit).await {
            Ok(Some(slot)) => slot,
            Ok(None) | Err(_) => return Err(SinkError::Closed),
        };
        let shared = self.shared.clone();
        let delivery = AbortOnDrop(tokio::spawn(async move {
            let result = shared.deliver_with_retries(item).await;
            drop(slot);
            result
        }));
        match delivery.await {
            Ok(result) => result.map_err(SinkError::Failed),
            Err(error) if error.is_panic() => {
                let payload = error.into_panic();
                tracing::error!(sink = %self.shared.name, panic = %panic_text(&*payload), "a delivery panicked");
                self.shared.observer.restarted("sink", &self.shared.name);
                std::panic::resume_unwind(payload)
            }
            Err(_) => Err(SinkError::Closed),
        }
    }

    /// Stop the sink: deliveries waiting for a slot, and later ones, get `SinkError::Closed`;
    /// deliveries in progress finish.
    pub fn stop(&self) {
        self.shared.slots.close();
    }
}

impl<D: Deliver> Shared<D> {
    async fn deliver_with_retries(&self, item: Arc<D::Item>) -> Result<(), D::Error> {
        let call = || self.deliver.clone().deliver(item.clone());
        let on_retry = |attempt: u32, error: &D::Error, wait| {
            self.observer.retried(&self.name, error.retry_reason());
            tracing::debug!(sink = %self.name, attempt, %error, ?wait, "delivery failed; retrying");
        };
        self.policy.run(call, on_retry).await
    }
}

/// A task aborted when its handle is dropped: a caller that gives up (a cancelled run) takes
/// its delivery with it instead of leaving it running unowned.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Admits deliveries, `concurrency` at a time.
struct SinkActor {
    slots: Arc<Semaphore>,
}

impl Actor for SinkActor {
    type Context = Context<Self>;
}

/// Ask for a delivery slot; `None` when the sink is stopped.
struct Admit;

impl Message for Admit {
    type Result = Option<OwnedSemaphorePermit>;
}

impl Handler<Admit> for SinkActor {
    type Result = ResponseFuture<Option<OwnedSemaphorePermit>>;

    fn handle(&mut self, _: Admit, ctx: &mut Context<Self>) -> Self::Result {
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => {
                if self.slots.available_permits() == 0 {
                    // Read no more of the mailbox until a slot is free: callers queue in the
                    // bounded mailbox, then wait in `send()`. (The permit taken here is given
                    // back at once, for the next `Admit`.)
                    let slots = self.slots.clone();
                    ctx.wait(async move { drop(slots.acquire_owned().await) }.into_actor(self));
                }
                Box::pin(async move { Some(slot) })
            }
            Err(TryAcquireError::Closed) => Box::pin(async { None }),
            // Not expected (the mailbox pauses while no slot is free); wait for one anyway.
            Err(TryAcquireError::NoPermits) => {
                let slots = self.slots.clone();
                Box::pin(async move { slots.acquire_owned().await.ok() })
            }
        }
    }
}
