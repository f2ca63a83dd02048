//! The `IngressPoller`: one per source of a chain. It waits for a free worker slot, then takes
//! one item and hands it to the chain's worker together with the slot — so a chain whose
//! workers are all busy takes nothing (the backpressure: the queue in the store, not a mailbox,
//! holds the waiting work). A failed take stops the poller; its actix `Supervisor` restarts it
//! after a backoff (1 s doubling to 30 s by default, reset by a successful take).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::{ActorFutureExt, WrapFuture};
use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, ResponseFuture,
    SpawnHandle, Supervised,
};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use crate::chain::{ChainWorker, Gauges, Run};
use crate::panics::panic_text;
use crate::runtime::RuntimeOptions;
use crate::work::{Observer, Work};

/// Takes items of one source for one chain.
pub(crate) struct IngressPoller<W: Work> {
    chain: Arc<str>,
    source: usize,
    work: Arc<W>,
    /// The chain's worker slots, shared by its pollers.
    slots: Arc<Semaphore>,
    worker: Addr<ChainWorker<W>>,
    observer: Arc<dyn Observer>,
    gauges: Arc<Gauges>,
    options: RuntimeOptions,
    state: State,
    /// Told to stop: finish the take in progress (its item is run), start no other.
    retiring: bool,
    /// The last take failed: counted in `Gauges::restarting` until one succeeds.
    failing: bool,
    /// The wait before the next restart.
    backoff: Duration,
    /// The wait before the first take once (re)started.
    delay: Option<Duration>,
    /// Told when no take is in progress any more.
    idle: Vec<oneshot::Sender<()>>,
}

/// What the poller is doing.
enum State {
    Idle,
    /// Waiting for a worker slot, or for the backoff before a restart: cancellable at once.
    Waiting(SpawnHandle),
    /// A take is in progress (until its item, if any, was handed over).
    Taking(AbortHandle),
}

/// An error and its causes, joined by `: `.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// How a take ended.
enum Taken {
    /// An item was handed to the chain's worker, or none came within the wait.
    Done,
    Failed(String),
    /// Aborted at shutdown.
    Aborted,
    /// The chain's worker is gone (the actix `System` is stopping).
    Orphaned,
}

impl<W: Work> IngressPoller<W> {
    #[allow(clippy::too_many_arguments)] // the private constructor of a private actor
    pub(crate) fn new(
        chain: Arc<str>,
        source: usize,
        work: Arc<W>,
        slots: Arc<Semaphore>,
        worker: Addr<ChainWorker<W>>,
        observer: Arc<dyn Observer>,
        gauges: Arc<Gauges>,
        options: RuntimeOptions,
    ) -> Self {
        let backoff = options.restart_backoff;
        IngressPoller {
            chain,
            source,
            work,
            slots,
            worker,
            observer,
            gauges,
            options,
            state: State::Idle,
            retiring: false,
            failing: false,
            backoff,
            delay: None,
            idle: Vec::new(),
        }
    }

    fn wait_for_slot(&mut self, ctx: &mut Context<Self>) {
        let slots = self.slots.clone();
        let waiting = async move { slots.acquire_owned().await }
            .into_actor(self)
            .map(|slot, act, ctx| match slot {
                Ok(slot) => act.take(slot, ctx),
                // The semaphore is never closed; were it, there would be nothing left to take for.
                Err(_) => act.state = State::Idle,
            });
        self.state = State::Waiting(ctx.spawn(waiting));
    }

    fn take(&mut self, slot: OwnedSemaphorePermit, ctx: &mut Context<Self>) {
        let (work, source, wait) = (self.work.clone(), self.source, self.options.take_wait);
        // In a task of its own: a panicking `take` is a failed take, not a dead arbiter.
        let task = tokio::spawn(async move { work.take(source, wait).await });
        self.state = State::Taking(task.abort_handle());
        let worker = self.worker.clone();
        let taking = async move {
            match task.await {
                Ok(Ok(Some(item))) => match worker.send(Run { item, slot }).await {
                    Ok(()) => Taken::Done,
                    Err(_) => Taken::Orphaned,
                },
                Ok(Ok(None)) => Taken::Done,
                Ok(Err(error)) => Taken::Failed(causes(&*error)),
                Err(error) if error.is_panic() => Taken::Failed(format!(
                    "take panicked: {}",
                    panic_text(&*error.into_panic())
                )),
                Err(_) => Taken::Aborted,
            }
        };
        ctx.spawn(
            taking
                .into_actor(self)
                .map(|taken, act, ctx| act.taken(taken, ctx)),
        );
    }

    fn taken(&mut self, taken: Taken, ctx: &mut Context<Self>) {
        self.state = State::Idle;
        for tell in self.idle.drain(..) {
            let _ = tell.send(());
        }
        match taken {
            Taken::Done => {
                self.backoff = self.options.restart_backoff;
                self.set_failing(false);
                if !self.retiring {
                    self.wait_for_slot(ctx);
                }
            }
            Taken::Failed(error) if self.retiring => {
                tracing::warn!(chain = %self.chain, source = self.source, %error, "taking an item failed while stopping");
            }
            Taken::Failed(error) => {
                let delay = self.backoff;
                self.backoff = (self.backoff * 2).min(self.options.max_restart_backoff);
                tracing::warn!(chain = %self.chain, source = self.source, %error, restart_in = ?delay, "taking an item failed; restarting the poller");
                self.set_failing(true);
                self.delay = Some(delay);
                // The actix Supervisor restarts the poller (`restarting`, then `started`).
                ctx.stop();
            }
            Taken::Aborted => {}
            Taken::Orphaned => {
                tracing::error!(chain = %self.chain, source = self.source, "the chain's worker is gone: the item taken stays in its processing queue");
                self.retiring = true;
            }
        }
    }

    fn set_failing(&mut self, failing: bool) {
        if self.failing != failing {
            self.failing = failing;
            if failing {
                self.gauges.restarting.fetch_add(1, Ordering::SeqCst);
            } else {
                self.gauges.restarting.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Resolves when no take is in progress.
    fn when_idle(&mut self) -> ResponseFuture<()> {
        if !matches!(self.state, State::Taking(_)) {
            return Box::pin(async {});
        }
        let (tell, idle) = oneshot::channel();
        self.idle.push(tell);
        Box::pin(async move {
            let _ = idle.await;
        })
    }
}

impl<W: Work> Actor for IngressPoller<W> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.retiring {
            return;
        }
        match self.delay.take() {
            Some(delay) => {
                self.state = State::Waiting(ctx.run_later(delay, |act, ctx| act.wait_for_slot(ctx)))
            }
            None => self.wait_for_slot(ctx),
        }
    }
}

impl<W: Work> Supervised for IngressPoller<W> {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.state = State::Idle;
        self.observer.restarted("poller", &self.chain);
    }
}

/// What the supervisor tells a poller.
pub(crate) enum Control {
    /// Take no more items: a wait for a slot or a restart ends at once; a take in progress
    /// finishes and its item is run. Answered at once.
    Stop,
    /// Answered when no take is in progress.
    WhenIdle,
    /// Abort the take in progress (shutdown, after the grace): whatever it was claiming stays in
    /// the store for the product to hand back. Answered when no take is in progress.
    AbortTake,
}

impl Message for Control {
    type Result = ();
}

impl<W: Work> Handler<Control> for IngressPoller<W> {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, control: Control, ctx: &mut Context<Self>) -> ResponseFuture<()> {
        match control {
            Control::Stop => {
                self.retiring = true;
                self.set_failing(false);
                if let State::Waiting(handle) = self.state {
                    ctx.cancel_future(handle);
                    self.state = State::Idle;
                }
                Box::pin(async {})
            }
            Control::WhenIdle => self.when_idle(),
            Control::AbortTake => {
                if let State::Taking(task) = &self.state {
                    task.abort();
                }
                self.when_idle()
            }
        }
    }
}
