//! The `ChainWorker`: one per chain (per generation of it: a replaced chain's old worker drains
//! next to the new one). It owns the accounting of the chain's runs; each run is a task of its
//! own on the run pool, so a panic is caught there and a cancellation is an abort.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::fut::{ready, ActorFutureExt, WrapFuture};
use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture};
use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::panics::panic_text;
use crate::pool::RunPool;
use crate::work::{Observer, Work};

/// How long cancelled runs get to end once aborted. An abort takes effect at the run's next
/// `.await`; a run stuck in blocking code never gets there, and shutdown must not hang on it.
pub(crate) const ABORT_WAIT: Duration = Duration::from_secs(1);

/// Counters of one chain name, shared by its generations and its pollers, so the product sees
/// one in-flight figure while a replaced chain drains next to its successor.
#[derive(Default)]
pub(crate) struct Gauges {
    /// Runs in flight, all generations together.
    pub(crate) in_flight: AtomicUsize,
    /// Pollers of the current generation waiting to restart after a failed take.
    pub(crate) restarting: AtomicUsize,
}

/// Runs a chain's items, at most as many at once as its pollers hold worker slots.
pub(crate) struct ChainWorker<W: Work> {
    chain: Arc<str>,
    work: Arc<W>,
    pool: Arc<RunPool>,
    observer: Arc<dyn Observer>,
    gauges: Arc<Gauges>,
    /// Runs in flight by id, with the signal that cancels each (taken once sent).
    runs: HashMap<u64, Option<oneshot::Sender<()>>>,
    next_run: u64,
    /// Runs that ended by cancellation, ever: a drain reports the difference.
    cancelled: usize,
    /// Told when the last run in flight ends.
    idle: Vec<oneshot::Sender<()>>,
}

impl<W: Work> ChainWorker<W> {
    pub(crate) fn new(
        chain: Arc<str>,
        work: Arc<W>,
        pool: Arc<RunPool>,
        observer: Arc<dyn Observer>,
        gauges: Arc<Gauges>,
    ) -> Self {
        ChainWorker {
            chain,
            work,
            pool,
            observer,
            gauges,
            runs: HashMap::new(),
            next_run: 0,
            cancelled: 0,
            idle: Vec::new(),
        }
    }

    /// Count a run in (`true`) or out, and tell the observer the chain's new figure.
    fn count_run(&self, started: bool) {
        let now = if started {
            self.gauges.in_flight.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.gauges.in_flight.fetch_sub(1, Ordering::SeqCst) - 1
        };
        self.observer.in_flight(&self.chain, now);
    }

    /// Resolves when no run is in flight (at once if none is).
    fn when_idle(&mut self) -> oneshot::Receiver<()> {
        let (tell, idle) = oneshot::channel();
        if self.runs.is_empty() {
            let _ = tell.send(());
        } else {
            self.idle.push(tell);
        }
        idle
    }

    /// Signal every run in flight to stop.
    fn cancel_all(&mut self) {
        for cancel in self.runs.values_mut().filter_map(Option::take) {
            let _ = cancel.send(());
        }
    }
}

impl<W: Work> Actor for ChainWorker<W> {
    type Context = Context<Self>;
}

/// An item taken for the chain, with the worker slot it holds until its run has ended.
pub(crate) struct Run<W: Work> {
    pub(crate) item: W::Item,
    pub(crate) slot: OwnedSemaphorePermit,
}

impl<W: Work> Message for Run<W> {
    type Result = ();
}

impl<W: Work> Handler<Run<W>> for ChainWorker<W> {
    type Result = ();

    fn handle(&mut self, Run { item, slot }: Run<W>, ctx: &mut Context<Self>) {
        let id = self.next_run;
        self.next_run += 1;
        let (cancel, cancelled) = oneshot::channel();
        let job = RunJob {
            id,
            chain: self.chain.clone(),
            work: self.work.clone(),
            observer: self.observer.clone(),
            item,
            slot,
            cancelled,
            report: ctx.address(),
        };
        if self.pool.spawn(job.run()) {
            self.runs.insert(id, Some(cancel));
            self.count_run(true);
        } else {
            tracing::error!(chain = %self.chain, "the run threads have stopped: an item was not run and stays in its queue");
        }
    }
}

/// A run has ended (its slot is released right after this is handled).
struct Finished {
    id: u64,
    cancelled: bool,
}

impl Message for Finished {
    type Result = ();
}

impl<W: Work> Handler<Finished> for ChainWorker<W> {
    type Result = ();

    fn handle(&mut self, Finished { id, cancelled }: Finished, _: &mut Context<Self>) {
        if self.runs.remove(&id).is_none() {
            return;
        }
        if cancelled {
            self.cancelled += 1;
        }
        self.count_run(false);
        if self.runs.is_empty() {
            for tell in self.idle.drain(..) {
                let _ = tell.send(());
            }
        }
    }
}

/// Wait until no run is in flight. With a deadline, cancel the runs still in flight then and
/// answer how many were cancelled (the product hands their items back); without, answer 0.
pub(crate) struct Drain {
    pub(crate) deadline: Option<Instant>,
}

impl Message for Drain {
    type Result = usize;
}

impl<W: Work> Handler<Drain> for ChainWorker<W> {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, Drain { deadline }: Drain, _: &mut Context<Self>) -> Self::Result {
        let idle = self.when_idle();
        let Some(deadline) = deadline else {
            return Box::pin(
                async move {
                    let _ = idle.await;
                    0
                }
                .into_actor(self),
            );
        };
        let drained = async move { tokio::time::timeout_at(deadline, idle).await.is_ok() };
        Box::pin(drained.into_actor(self).then(|drained, act, _| {
            if drained {
                return ready(0).boxed_local();
            }
            let before = act.cancelled;
            act.cancel_all();
            let ended = act.when_idle();
            async move { tokio::time::timeout(ABORT_WAIT, ended).await.is_ok() }
                .into_actor(act)
                .map(move |all_ended, act, _| {
                    if !all_ended {
                        tracing::error!(chain = %act.chain, stuck = act.runs.len(), "cancelled runs did not end (blocking code in a run?)");
                    }
                    // Runs that never noticed the cancellation are counted too: the product
                    // hands every unfinished item back.
                    act.cancelled - before + act.runs.len()
                })
                .boxed_local()
        }))
    }
}

/// One run, supervised: the item's `run` in a task of its own, its panic handed to
/// `Work::panicked`, its cancellation an abort; the slot is released only after the worker
/// has counted the run as ended, so the in-flight figure never exceeds the chain's workers.
struct RunJob<W: Work> {
    id: u64,
    chain: Arc<str>,
    work: Arc<W>,
    observer: Arc<dyn Observer>,
    item: W::Item,
    slot: OwnedSemaphorePermit,
    cancelled: oneshot::Receiver<()>,
    report: Addr<ChainWorker<W>>,
}

impl<W: Work> RunJob<W> {
    async fn run(self) {
        let RunJob {
            id,
            chain,
            work,
            observer,
            item,
            slot,
            mut cancelled,
            report,
        } = self;
        // `run` is called inside the task, so a panic while building its future is caught too.
        let mut task = tokio::spawn({
            let (work, item) = (work.clone(), item.clone());
            async move { work.run(item).await }
        });
        let joined = tokio::select! {
            joined = &mut task => joined,
            Ok(()) = &mut cancelled => {
                task.abort();
                (&mut task).await
            }
        };
        let cancelled = match joined {
            Ok(()) => false,
            Err(error) if error.is_panic() => {
                let message = panic_text(&*error.into_panic());
                tracing::error!(chain = %chain, item = ?item, panic = %message, "a run panicked");
                observer.restarted("chain", &chain);
                let handler = tokio::spawn(async move { work.panicked(item, message).await });
                if let Err(error) = handler.await {
                    let why = if error.is_panic() {
                        panic_text(&*error.into_panic())
                    } else {
                        "cancelled".to_string()
                    };
                    tracing::error!(chain = %chain, %why, "the panic handler failed too: the item stays in its queue");
                }
                false
            }
            Err(_) => true,
        };
        let _ = report.send(Finished { id, cancelled }).await;
        drop(slot);
    }
}
