//! The runtime with fake chains over in-memory queues: restart counting, backpressure, panic
//! containment, drain on shutdown, replacing and stopping chains, use from another thread.

mod common;

use std::collections::VecDeque;
use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Arbiter;
use common::{eventually, Recorder};
use conserver_actors::{
    BoxFuture, ChainSpec, ChainState, Runtime, RuntimeOptions, TakeError, Work,
};
use tokio::sync::{oneshot, Semaphore};

/// A queue in the store, shared by the chains that read it.
#[derive(Default)]
struct Queue(Mutex<VecDeque<u32>>);

impl Queue {
    fn push(&self, items: impl IntoIterator<Item = u32>) {
        self.0.lock().unwrap().extend(items);
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// What a fake run does with an item.
#[derive(Clone, Copy, PartialEq)]
enum Rule {
    Finish,
    /// Wait for a permit of the gate (released by the test), then finish.
    Gate,
    Panic,
    /// Never finish.
    Hang,
}

/// A fake chain: takes from a shared queue, runs items by `rule`, records everything.
struct Fake {
    queue: Arc<Queue>,
    rule: fn(u32) -> Rule,
    gate: Semaphore,
    /// Takes to fail (with an error) before taking works.
    failing_takes: AtomicUsize,
    /// Takes to panic in before taking works.
    panicking_takes: AtomicUsize,
    /// Takes wait for a permit of `take_gate` first (a store that holds the call).
    held_takes: bool,
    take_gate: Semaphore,
    takes: AtomicUsize,
    /// Takes dropped before they returned (aborted).
    takes_dropped: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    /// Runs dropped before they finished (aborted).
    dropped: AtomicUsize,
    done: Mutex<Vec<u32>>,
    panicked: Mutex<Vec<(u32, String)>>,
}

impl Fake {
    fn new(queue: &Arc<Queue>, rule: fn(u32) -> Rule) -> Arc<Fake> {
        Fake::build(queue, rule, false)
    }

    /// A fake whose takes wait for the test to release them.
    fn holding_takes(queue: &Arc<Queue>) -> Arc<Fake> {
        Fake::build(queue, |_| Rule::Finish, true)
    }

    fn build(queue: &Arc<Queue>, rule: fn(u32) -> Rule, held_takes: bool) -> Arc<Fake> {
        Arc::new(Fake {
            queue: queue.clone(),
            rule,
            gate: Semaphore::new(0),
            failing_takes: AtomicUsize::new(0),
            panicking_takes: AtomicUsize::new(0),
            held_takes,
            take_gate: Semaphore::new(0),
            takes: AtomicUsize::new(0),
            takes_dropped: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            done: Mutex::new(Vec::new()),
            panicked: Mutex::new(Vec::new()),
        })
    }

    fn done(&self) -> Vec<u32> {
        let mut done = self.done.lock().unwrap().clone();
        done.sort();
        done
    }

    fn takes(&self) -> usize {
        self.takes.load(Ordering::SeqCst)
    }

    fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
}

/// Counts a take as aborted when dropped before it returned.
struct TakeGuard<'a> {
    fake: &'a Fake,
    returned: bool,
}

impl Drop for TakeGuard<'_> {
    fn drop(&mut self) {
        if !self.returned {
            self.fake.takes_dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Counts a run out when dropped, and as aborted unless it finished.
struct RunGuard {
    fake: Arc<Fake>,
    finished: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.fake.running.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.fake.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn taken(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Work for Fake {
    type Item = u32;

    fn take(
        self: Arc<Self>,
        _source: usize,
        wait: Duration,
    ) -> BoxFuture<Result<Option<u32>, TakeError>> {
        Box::pin(async move {
            self.takes.fetch_add(1, Ordering::SeqCst);
            if taken(&self.panicking_takes) {
                panic!("take exploded");
            }
            if taken(&self.failing_takes) {
                return Err("the store is down".into());
            }
            let mut guard = TakeGuard {
                fake: &self,
                returned: false,
            };
            if self.held_takes {
                self.take_gate.acquire().await.unwrap().forget();
            }
            let item = self.queue.0.lock().unwrap().pop_front();
            if item.is_none() {
                tokio::time::sleep(wait.min(Duration::from_millis(5))).await;
            }
            guard.returned = true;
            Ok(item)
        })
    }

    fn run(self: Arc<Self>, item: u32) -> BoxFuture<()> {
        Box::pin(async move {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            let mut guard = RunGuard {
                fake: self.clone(),
                finished: false,
            };
            match (self.rule)(item) {
                Rule::Finish => {}
                Rule::Gate => self.gate.acquire().await.unwrap().forget(),
                Rule::Panic => panic!("boom {item}"),
                Rule::Hang => pending::<()>().await,
            }
            self.done.lock().unwrap().push(item);
            guard.finished = true;
        })
    }

    fn panicked(self: Arc<Self>, item: u32, message: String) -> BoxFuture<()> {
        Box::pin(async move { self.panicked.lock().unwrap().push((item, message)) })
    }
}

fn options() -> RuntimeOptions {
    RuntimeOptions {
        take_wait: Duration::from_millis(20),
        restart_backoff: Duration::from_millis(5),
        max_restart_backoff: Duration::from_millis(20),
        run_threads: 2,
    }
}

fn start() -> (Runtime, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    (Runtime::start_with(recorder.clone(), options()), recorder)
}

fn spec(name: &str, workers: usize) -> ChainSpec {
    ChainSpec {
        name: name.to_string(),
        sources: 1,
        workers,
    }
}

#[actix_rt::test]
async fn failed_takes_restart_the_poller_and_items_still_flow() {
    let (runtime, recorder) = start();
    let queue = Arc::new(Queue::default());
    queue.push(1..=5);
    let fake = Fake::new(&queue, |_| Rule::Finish);
    fake.failing_takes.store(2, Ordering::SeqCst);
    fake.panicking_takes.store(1, Ordering::SeqCst);
    runtime.start_chain(spec("c", 2), fake.clone()).await;

    eventually("every item done", async || fake.done() == [1, 2, 3, 4, 5]).await;
    assert_eq!(
        recorder.restarts("poller", "c"),
        3,
        "two errors and a panic: three restarts"
    );
    eventually("the chain running again", async || {
        runtime.chains().await[0].running
    })
    .await;
    runtime.shutdown(Duration::from_secs(1)).await;
}

#[actix_rt::test]
async fn a_poller_waiting_to_restart_is_not_running_and_stops_at_once() {
    let recorder = Arc::new(Recorder::default());
    let slow = RuntimeOptions {
        restart_backoff: Duration::from_secs(60),
        max_restart_backoff: Duration::from_secs(60),
        ..options()
    };
    let runtime = Runtime::start_with(recorder.clone(), slow);
    let fake = Fake::new(&Arc::new(Queue::default()), |_| Rule::Finish);
    fake.failing_takes.store(usize::MAX, Ordering::SeqCst);
    runtime.start_chain(spec("c", 1), fake.clone()).await;

    eventually("a restart", async || recorder.restarts("poller", "c") == 1).await;
    let state = runtime.chains().await;
    assert_eq!(
        state,
        [ChainState {
            name: "c".into(),
            workers: 1,
            running: false,
            in_flight: 0
        }]
    );
    runtime.stop_chain("c").await;
    eventually("the chain gone", async || runtime.chains().await.is_empty()).await;
    assert_eq!(
        fake.takes(),
        1,
        "no take after the first failure: the backoff is a minute"
    );
}

#[actix_rt::test]
async fn a_busy_chain_takes_nothing() {
    let (runtime, recorder) = start();
    let queue = Arc::new(Queue::default());
    queue.push(1..=6);
    let fake = Fake::new(&queue, |_| Rule::Gate);
    runtime.start_chain(spec("c", 2), fake.clone()).await;

    eventually("two runs", async || fake.running() == 2).await;
    assert_eq!(runtime.chains().await[0].in_flight, 2);
    // An absence cannot be polled for: give the poller a chance to misbehave, then look.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(fake.takes(), 2, "no take while both slots are busy");
    assert_eq!(queue.len(), 4);

    fake.gate.add_permits(1);
    eventually("a third take", async || {
        fake.takes() == 3 && fake.running() == 2
    })
    .await;
    fake.gate.add_permits(5);
    eventually("every item done", async || {
        fake.done() == [1, 2, 3, 4, 5, 6]
    })
    .await;
    assert_eq!(fake.max_running.load(Ordering::SeqCst), 2);
    assert_eq!(recorder.max_in_flight(), 2);
    eventually("nothing in flight", async || recorder.in_flight("c") == 0).await;
    runtime.shutdown(Duration::from_secs(1)).await;
}

#[actix_rt::test]
async fn a_panicking_run_is_handed_to_panicked_and_the_rest_flows() {
    let (runtime, recorder) = start();
    let queue = Arc::new(Queue::default());
    queue.push(1..=5);
    let fake = Fake::new(
        &queue,
        |item| if item == 3 { Rule::Panic } else { Rule::Finish },
    );
    runtime.start_chain(spec("c", 2), fake.clone()).await;

    eventually("the other items done", async || fake.done() == [1, 2, 4, 5]).await;
    eventually("the panic handled", async || {
        !fake.panicked.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(*fake.panicked.lock().unwrap(), [(3, "boom 3".to_string())]);
    assert_eq!(recorder.restarts("chain", "c"), 1);
    eventually("nothing in flight", async || {
        runtime.chains().await[0].in_flight == 0
    })
    .await;

    queue.push([6, 7]);
    eventually("later items done", async || {
        fake.done() == [1, 2, 4, 5, 6, 7]
    })
    .await;
    assert!(runtime.chains().await[0].running);
    runtime.shutdown(Duration::from_secs(1)).await;
}

#[actix_rt::test]
async fn shutdown_drains_then_cancels_what_outlives_the_grace() {
    let (runtime, recorder) = start();
    let queue = Arc::new(Queue::default());
    queue.push([1, 2]);
    let fake = Fake::new(
        &queue,
        |item| if item == 1 { Rule::Gate } else { Rule::Hang },
    );
    runtime.start_chain(spec("c", 2), fake.clone()).await;
    eventually("both running", async || fake.running() == 2).await;

    let shutdown = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.shutdown(Duration::from_millis(300)).await }
    });
    eventually("the pollers stopped", async || {
        !runtime.chains().await[0].running
    })
    .await;
    fake.gate.add_permits(1);
    assert_eq!(shutdown.await.unwrap(), 1, "the hanging run is cancelled");
    assert_eq!(fake.done(), [1], "the run that finished within the grace");
    assert_eq!(
        fake.dropped.load(Ordering::SeqCst),
        1,
        "the cancelled run was dropped"
    );
    eventually("nothing in flight", async || recorder.in_flight("c") == 0).await;
    eventually("the chain gone", async || runtime.chains().await.is_empty()).await;

    runtime
        .start_chain(spec("late", 1), Fake::new(&queue, |_| Rule::Finish))
        .await;
    assert!(
        runtime.chains().await.is_empty(),
        "no chain starts after shutdown"
    );
    assert_eq!(runtime.shutdown(Duration::from_secs(1)).await, 0);
}

#[actix_rt::test]
async fn a_take_in_progress_when_stopped_completes_and_its_item_is_run() {
    let (runtime, _) = start();
    let queue = Arc::new(Queue::default());
    let fake = Fake::holding_takes(&queue);
    runtime.start_chain(spec("c", 1), fake.clone()).await;
    eventually("a take in progress", async || fake.takes() == 1).await;

    runtime.stop_chain("c").await;
    assert!(!runtime.chains().await[0].running);
    queue.push([1, 2]);
    fake.take_gate.add_permits(2);
    eventually("the item taken run", async || fake.done() == [1]).await;
    eventually("the chain gone", async || runtime.chains().await.is_empty()).await;
    assert_eq!(fake.takes(), 1, "no take after the one in progress");
    assert_eq!(queue.len(), 1);
}

#[actix_rt::test]
async fn shutdown_waits_for_a_take_then_aborts_it() {
    let (runtime, _) = start();
    let fake = Fake::holding_takes(&Arc::new(Queue::default()));
    runtime.start_chain(spec("c", 1), fake.clone()).await;
    eventually("a take in progress", async || fake.takes() == 1).await;

    // The take never returns: shutdown waits one take's wait (plus a margin), then aborts it.
    assert_eq!(runtime.shutdown(Duration::from_millis(10)).await, 0);
    assert_eq!(fake.takes_dropped.load(Ordering::SeqCst), 1);
    eventually("the chain gone", async || runtime.chains().await.is_empty()).await;
}

#[actix_rt::test]
async fn a_replaced_chain_finishes_its_runs_with_the_old_work() {
    let (runtime, _) = start();
    let queue = Arc::new(Queue::default());
    let other = Fake::new(&queue, |_| Rule::Finish);
    runtime
        .start_chain(
            spec("first", 1),
            Fake::new(&Arc::new(Queue::default()), |_| Rule::Finish),
        )
        .await;
    runtime.start_chain(spec("c", 1), other.clone()).await;
    let old = Fake::new(&queue, |_| Rule::Gate);
    runtime.start_chain(spec("c", 1), old.clone()).await;
    queue.push([1]);
    eventually("the old work running", async || old.running() == 1).await;

    let new = Fake::new(&queue, |_| Rule::Finish);
    runtime.start_chain(spec("c", 3), new.clone()).await;
    let old_takes = old.takes();
    queue.push([2, 3]);
    eventually("new items done by the new work", async || {
        new.done() == [2, 3]
    })
    .await;
    assert_eq!(
        old.takes(),
        old_takes,
        "the old chain takes nothing after it was replaced"
    );
    assert!(other.done().is_empty());

    let chains = runtime.chains().await;
    let names: Vec<&str> = chains.iter().map(|chain| chain.name.as_str()).collect();
    assert_eq!(
        names,
        ["first", "c"],
        "start order; a replaced chain keeps its place"
    );
    // A run records itself done just before it ends: wait for the new runs to be counted out.
    let expected = ChainState {
        name: "c".into(),
        workers: 3,
        running: true,
        in_flight: 1,
    };
    eventually("only the old run in flight", async || {
        runtime.chains().await[1] == expected
    })
    .await;

    old.gate.add_permits(1);
    eventually("the old run done by the old work", async || {
        old.done() == [1]
    })
    .await;
    eventually("nothing in flight", async || {
        runtime.chains().await[1].in_flight == 0
    })
    .await;
    runtime.shutdown(Duration::from_secs(1)).await;
}

#[actix_rt::test]
async fn a_stopped_chain_takes_nothing_and_lets_its_runs_finish() {
    let (runtime, _) = start();
    let queue = Arc::new(Queue::default());
    queue.push([1]);
    let fake = Fake::new(&queue, |_| Rule::Gate);
    runtime.start_chain(spec("c", 1), fake.clone()).await;
    eventually("running", async || fake.running() == 1).await;

    runtime.stop_chain("c").await;
    runtime.stop_chain("unknown").await;
    let takes = fake.takes();
    queue.push([2]);
    assert_eq!(
        runtime.chains().await,
        [ChainState {
            name: "c".into(),
            workers: 1,
            running: false,
            in_flight: 1
        }]
    );
    fake.gate.add_permits(1);
    eventually("the run done", async || fake.done() == [1]).await;
    eventually("the chain gone once drained", async || {
        runtime.chains().await.is_empty()
    })
    .await;
    assert_eq!(fake.takes(), takes, "no take after stop_chain returned");
    assert_eq!(queue.len(), 1, "the item pushed later stays queued");

    runtime.start_chain(spec("c", 1), fake.clone()).await;
    fake.gate.add_permits(1);
    eventually("started again", async || fake.done() == [1, 2]).await;
    runtime.shutdown(Duration::from_secs(1)).await;
}

#[actix_rt::test]
async fn the_handle_works_from_another_arbiter() {
    fn shareable<T: Send + Sync + Clone + 'static>(_: &T) {}
    fn sendable<T: Send>(_: T) {}
    let (runtime, _) = start();
    shareable(&runtime);
    let queue = Arc::new(Queue::default());
    let fake = Fake::new(&queue, |_| Rule::Finish);
    sendable(runtime.start_chain(spec("x", 1), fake.clone()));
    sendable(runtime.chains());

    let arbiter = Arbiter::new();
    let (answer, answered) = oneshot::channel();
    let (handle, work, items) = (runtime.clone(), fake.clone(), queue.clone());
    arbiter.spawn(async move {
        handle.start_chain(spec("remote", 2), work.clone()).await;
        items.push([1, 2, 3]);
        // A plain loop: an async closure here would not be `Send` for the arbiter.
        for _ in 0..2000 {
            let chains = handle.chains().await;
            if work.done() == [1, 2, 3] && chains[0].in_flight == 0 {
                let _ = answer.send(chains);
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let chains = answered.await.unwrap();
    assert_eq!(
        chains,
        [ChainState {
            name: "remote".into(),
            workers: 2,
            running: true,
            in_flight: 0
        }]
    );
    assert_eq!(runtime.shutdown(Duration::from_secs(1)).await, 0);
    arbiter.stop();
}
