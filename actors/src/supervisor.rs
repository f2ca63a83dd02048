//! The `Supervisor`: one per process. It owns the chains — starts, replaces and stops them —
//! and keeps each one's retired generations until they have drained, so shutdown can wait for
//! (and cancel) every run, old or new.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::{ready, ActorFutureExt, WrapFuture};
use actix::{
    Actor, Addr, AsyncContext, AtomicResponse, Context, Handler, Message, MessageResult, Recipient,
    ResponseActFuture,
};
use futures_util::future::join_all;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::chain::{ChainWorker, Drain, Gauges, ABORT_WAIT};
use crate::poller::{Control, IngressPoller};
use crate::pool::RunPool;
use crate::runtime::RuntimeOptions;
use crate::work::{ChainSpec, ChainState, Observer, Work};

/// Beyond one take's wait, how long shutdown waits for the takes in progress to return.
const TAKE_MARGIN: Duration = Duration::from_secs(1);

/// The root actor.
pub(crate) struct Supervisor {
    observer: Arc<dyn Observer>,
    options: RuntimeOptions,
    /// The run threads; `None` once shut down, after which no chain starts.
    pool: Option<Arc<RunPool>>,
    /// In start order.
    chains: Vec<ChainEntry>,
    next_generation: u64,
    /// Its own address, so the supervisor lives as long as the actix `System` (until shutdown)
    /// rather than as long as some `Runtime` handle: dropping the handles must not stop chains.
    myself: Option<Addr<Supervisor>>,
}

/// One chain name.
struct ChainEntry {
    name: String,
    workers: usize,
    gauges: Arc<Gauges>,
    /// The generation taking items; `None` once stopped.
    current: Option<Generation>,
    /// Replaced or stopped generations whose pollers or runs have not finished yet.
    draining: Vec<Generation>,
}

/// The actors of one start of a chain, by the messages the supervisor sends them.
#[derive(Clone)]
struct Generation {
    id: u64,
    pollers: Vec<Recipient<Control>>,
    worker: Recipient<Drain>,
}

impl Supervisor {
    pub(crate) fn new(observer: Arc<dyn Observer>, options: RuntimeOptions, pool: RunPool) -> Self {
        Supervisor {
            observer,
            options,
            pool: Some(Arc::new(pool)),
            chains: Vec::new(),
            next_generation: 0,
            myself: None,
        }
    }

    fn entry(&mut self, name: &str) -> Option<&mut ChainEntry> {
        self.chains.iter_mut().find(|entry| entry.name == name)
    }

    /// Start the actors of `spec` as the chain's current generation.
    fn launch<W: Work>(&mut self, spec: ChainSpec, work: Arc<W>) {
        let Some(pool) = self.pool.clone() else {
            return;
        };
        let workers = spec.workers.max(1);
        let index = match self.chains.iter().position(|entry| entry.name == spec.name) {
            Some(index) => index,
            None => {
                self.chains.push(ChainEntry {
                    name: spec.name.clone(),
                    workers,
                    gauges: Arc::default(),
                    current: None,
                    draining: Vec::new(),
                });
                self.chains.len() - 1
            }
        };
        let entry = &mut self.chains[index];
        entry.workers = workers;
        let chain: Arc<str> = spec.name.as_str().into();
        let worker = ChainWorker::new(
            chain.clone(),
            work.clone(),
            pool,
            self.observer.clone(),
            entry.gauges.clone(),
        )
        .start();
        let slots = Arc::new(Semaphore::new(workers));
        let pollers = (0..spec.sources)
            .map(|source| {
                let poller = IngressPoller::new(
                    chain.clone(),
                    source,
                    work.clone(),
                    slots.clone(),
                    worker.clone(),
                    self.observer.clone(),
                    entry.gauges.clone(),
                    self.options.clone(),
                );
                actix::Supervisor::start(move |_| poller).recipient()
            })
            .collect();
        entry.current = Some(Generation {
            id: self.next_generation,
            pollers,
            worker: worker.recipient(),
        });
        self.next_generation += 1;
        tracing::info!(chain = %spec.name, workers, sources = spec.sources, "chain started");
    }

    /// Keep `generation` of chain `name` until its pollers are idle and its runs have ended.
    fn retire(&mut self, name: &str, generation: Generation, ctx: &mut Context<Self>) {
        let Some(entry) = self.entry(name) else {
            return;
        };
        entry.draining.push(generation.clone());
        let Generation {
            id,
            pollers,
            worker,
        } = generation;
        let drained = async move {
            // Stop first (again, harmlessly): a poller told `WhenIdle` while still running would
            // answer between two takes and be dropped mid-loop.
            stop_all(&pollers).await;
            join_all(pollers.iter().map(|poller| poller.send(Control::WhenIdle))).await;
            let _ = worker.send(Drain { deadline: None }).await;
        };
        let name = name.to_string();
        ctx.spawn(
            drained
                .into_actor(self)
                .map(move |(), act, _| act.drained(&name, id)),
        );
    }

    /// A retired generation has finished: let go of its actors (they stop), and of the chain
    /// when it was stopped and nothing of it is left.
    fn drained(&mut self, name: &str, id: u64) {
        let Some(index) = self.chains.iter().position(|entry| entry.name == name) else {
            return;
        };
        let entry = &mut self.chains[index];
        entry.draining.retain(|generation| generation.id != id);
        if entry.current.is_none() && entry.draining.is_empty() {
            self.chains.remove(index);
            tracing::info!(chain = %name, "chain stopped and drained");
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.myself = Some(ctx.address());
    }
}

/// Tell every poller to take no more items; answered when all have acknowledged.
async fn stop_all(pollers: &[Recipient<Control>]) {
    join_all(pollers.iter().map(|poller| poller.send(Control::Stop))).await;
}

/// Start (or replace) a chain.
pub(crate) struct StartChain<W: Work> {
    pub(crate) spec: ChainSpec,
    pub(crate) work: Arc<W>,
}

impl<W: Work> Message for StartChain<W> {
    type Result = ();
}

impl<W: Work> Handler<StartChain<W>> for Supervisor {
    // Atomic: configuration changes are applied one at a time, in the order they came.
    type Result = AtomicResponse<Self, ()>;

    fn handle(
        &mut self,
        StartChain { spec, work }: StartChain<W>,
        _: &mut Context<Self>,
    ) -> Self::Result {
        if self.pool.is_none() {
            tracing::warn!(chain = %spec.name, "the runtime has shut down: chain not started");
            return AtomicResponse::new(Box::pin(ready(())));
        }
        // The old generation stops taking before the new one starts; its runs drain on.
        let old = self
            .entry(&spec.name)
            .and_then(|entry| entry.current.take());
        let pollers = old
            .as_ref()
            .map(|old| old.pollers.clone())
            .unwrap_or_default();
        let stopped = async move { stop_all(&pollers).await };
        AtomicResponse::new(Box::pin(stopped.into_actor(self).map(
            move |(), act, ctx| {
                if let Some(old) = old {
                    act.retire(&spec.name, old, ctx);
                }
                act.launch(spec, work);
            },
        )))
    }
}

/// Stop a chain: answered once its pollers take no more items.
pub(crate) struct StopChain {
    pub(crate) name: String,
}

impl Message for StopChain {
    type Result = ();
}

impl Handler<StopChain> for Supervisor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, StopChain { name }: StopChain, _: &mut Context<Self>) -> Self::Result {
        let Some(generation) = self.entry(&name).and_then(|entry| entry.current.take()) else {
            return AtomicResponse::new(Box::pin(ready(())));
        };
        let pollers = generation.pollers.clone();
        let stopped = async move { stop_all(&pollers).await };
        AtomicResponse::new(Box::pin(stopped.into_actor(self).map(
            move |(), act, ctx| {
                tracing::info!(chain = %name, "chain stopping");
                act.retire(&name, generation, ctx);
            },
        )))
    }
}

/// The state of every chain.
pub(crate) struct Chains;

impl Message for Chains {
    type Result = Vec<ChainState>;
}

impl Handler<Chains> for Supervisor {
    type Result = MessageResult<Chains>;

    fn handle(&mut self, _: Chains, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.chains
                .iter()
                .map(|entry| ChainState {
                    name: entry.name.clone(),
                    workers: entry.workers,
                    running: entry.current.is_some()
                        && entry.gauges.restarting.load(Ordering::SeqCst) == 0,
                    in_flight: entry.gauges.in_flight.load(Ordering::SeqCst),
                })
                .collect(),
        )
    }
}

/// Stop everything; answered with the number of runs cancelled.
pub(crate) struct Shutdown {
    pub(crate) grace: Duration,
}

impl Message for Shutdown {
    type Result = usize;
}

impl Handler<Shutdown> for Supervisor {
    // Not atomic: `chains()` keeps answering while the runs drain.
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, Shutdown { grace }: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        // Dropping our share of the pool stops its threads once the last run has let go of it.
        self.pool = None;
        let now = Instant::now();
        let deadline = now + grace;
        // A take in progress is waited for even past the grace, up to the longest a take may
        // wait: abandoning it could leave an item claimed after the product handed items back.
        let takes_deadline = deadline.max(now + self.options.take_wait + TAKE_MARGIN);
        let current: Vec<(String, Generation)> = self
            .chains
            .iter_mut()
            .filter_map(|entry| {
                entry
                    .current
                    .take()
                    .map(|generation| (entry.name.clone(), generation))
            })
            .collect();
        for (name, generation) in current {
            self.retire(&name, generation, ctx);
        }
        let generations: Vec<Generation> = self
            .chains
            .iter()
            .flat_map(|entry| entry.draining.iter().cloned())
            .collect();
        let pollers: Vec<Recipient<Control>> = generations
            .iter()
            .flat_map(|generation| generation.pollers.iter().cloned())
            .collect();
        let workers: Vec<Recipient<Drain>> = generations
            .into_iter()
            .map(|generation| generation.worker)
            .collect();
        let shutdown = async move {
            stop_all(&pollers).await;
            let idle = join_all(pollers.iter().map(|poller| poller.send(Control::WhenIdle)));
            if tokio::time::timeout_at(takes_deadline, idle).await.is_err() {
                tracing::warn!("takes still in progress at shutdown: aborting them");
                let aborted =
                    join_all(pollers.iter().map(|poller| poller.send(Control::AbortTake)));
                let _ = tokio::time::timeout(ABORT_WAIT, aborted).await;
            }
            let drains = join_all(workers.iter().map(|worker| {
                worker.send(Drain {
                    deadline: Some(deadline),
                })
            }));
            drains
                .await
                .into_iter()
                .map(|cancelled| cancelled.unwrap_or(0))
                .sum::<usize>()
        };
        Box::pin(shutdown.into_actor(self).map(|cancelled, act, _| {
            tracing::info!(cancelled, "runtime shut down");
            act.myself = None;
            cancelled
        }))
    }
}
