//! The sink: retries of transient errors (on paused tokio time), permanent errors at once, the
//! concurrency bound, stopping, and a panicking backend.

mod common;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, Recorder};
use conserver_actors::{BoxFuture, Deliver, Retriable, RetryPolicy, Sink, SinkError};
use tokio::sync::Semaphore;

/// A failed try.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    transient: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failure",
            if self.transient {
                "transient"
            } else {
                "permanent"
            }
        )
    }
}

impl Retriable for Failure {
    fn is_retriable(&self) -> bool {
        self.transient
    }
    fn retry_reason(&self) -> &'static str {
        "5xx"
    }
}

/// What a fake try does.
#[derive(Clone, Copy)]
enum Try {
    Fail(bool),
    Panic,
    /// Wait for a permit of the gate, then succeed.
    Gate,
}

/// A fake backend: each try takes the next scripted outcome, then succeeds once the script is out.
struct Backend {
    script: Mutex<VecDeque<Try>>,
    gated: bool,
    gate: Semaphore,
    calls: AtomicUsize,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

impl Backend {
    fn new(script: impl IntoIterator<Item = Try>, gated: bool) -> Arc<Backend> {
        Arc::new(Backend {
            script: Mutex::new(script.into_iter().collect()),
            gated,
            gate: Semaphore::new(0),
            calls: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
        })
    }

    fn scripted(script: impl IntoIterator<Item = Try>) -> Arc<Backend> {
        Backend::new(script, false)
    }

    fn gated() -> Arc<Backend> {
        Backend::new([], true)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Deliver for Backend {
    type Item = u32;
    type Error = Failure;

    fn deliver(self: Arc<Self>, _item: Arc<u32>) -> BoxFuture<Result<(), Failure>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_active.fetch_max(now, Ordering::SeqCst);
            let next = if self.gated {
                Some(Try::Gate)
            } else {
                self.script.lock().unwrap().pop_front()
            };
            let result = match next {
                None => Ok(()),
                Some(Try::Fail(transient)) => Err(Failure { transient }),
                Some(Try::Panic) => panic!("backend exploded"),
                Some(Try::Gate) => {
                    self.gate.acquire().await.unwrap().forget();
                    Ok(())
                }
            };
            self.active.fetch_sub(1, Ordering::SeqCst);
            result
        })
    }
}

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(10),
        multiplier: 2.0,
    }
}

/// An actix System on paused tokio time: retry waits pass at once.
fn paused_system() -> actix::SystemRunner {
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    })
}

#[test]
fn transient_errors_are_retried_up_to_the_attempts() {
    paused_system().block_on(async {
        let recorder = Arc::new(Recorder::default());
        let backend = Backend::scripted([Try::Fail(true); 10]);
        let sink = Sink::start(
            "mongo".into(),
            backend.clone(),
            2,
            policy(4),
            recorder.clone(),
        );
        let started = tokio::time::Instant::now();
        let result = sink.deliver(Arc::new(1)).await;
        assert!(
            matches!(result, Err(SinkError::Failed(Failure { transient: true }))),
            "{result:?}"
        );
        assert_eq!(backend.calls(), 4);
        assert_eq!(recorder.retries(), vec![("mongo".to_string(), "5xx"); 3]);
        assert!(
            started.elapsed() >= Duration::from_millis(3500),
            "waited between tries: {:?}",
            started.elapsed()
        );

        let backend = Backend::scripted([Try::Fail(true), Try::Fail(true)]);
        let sink = Sink::start("s3".into(), backend.clone(), 2, policy(4), recorder.clone());
        assert!(sink.deliver(Arc::new(1)).await.is_ok());
        assert_eq!(backend.calls(), 3);
    });
}

#[test]
fn permanent_errors_are_returned_at_once() {
    paused_system().block_on(async {
        let recorder = Arc::new(Recorder::default());
        let backend = Backend::scripted([Try::Fail(false)]);
        let sink = Sink::start("pg".into(), backend.clone(), 1, policy(6), recorder.clone());
        let result = sink.deliver(Arc::new(1)).await;
        assert!(
            matches!(result, Err(SinkError::Failed(Failure { transient: false }))),
            "{result:?}"
        );
        assert_eq!(backend.calls(), 1);
        assert!(recorder.retries().is_empty());
        assert_eq!(
            SinkError::Failed(Failure { transient: false }).to_string(),
            "permanent failure"
        );
    });
}

#[test]
fn at_most_concurrency_deliveries_run_at_once() {
    paused_system().block_on(async {
        let backend = Backend::gated();
        let sink = Sink::start(
            "hook".into(),
            backend.clone(),
            2,
            policy(1),
            Arc::new(Recorder::default()),
        );
        let callers: Vec<_> = (0..6)
            .map(|item| {
                let sink = sink.clone();
                tokio::spawn(async move { sink.deliver(Arc::new(item)).await })
            })
            .collect();
        eventually("two deliveries", async || {
            backend.active.load(Ordering::SeqCst) == 2
        })
        .await;
        // An absence cannot be polled for: let the waiting callers try, then look.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(backend.calls(), 2, "the other callers wait for a slot");

        backend.gate.add_permits(6);
        for caller in callers {
            assert!(caller.await.unwrap().is_ok());
        }
        assert_eq!(backend.calls(), 6);
        assert_eq!(backend.max_active.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_stopped_sink_is_closed_and_lets_deliveries_in_progress_finish() {
    paused_system().block_on(async {
        let backend = Backend::gated();
        let sink = Sink::start(
            "files".into(),
            backend.clone(),
            1,
            policy(1),
            Arc::new(Recorder::default()),
        );
        let first = tokio::spawn({
            let sink = sink.clone();
            async move { sink.deliver(Arc::new(1)).await }
        });
        eventually("a delivery", async || backend.calls() == 1).await;
        let waiting = tokio::spawn({
            let sink = sink.clone();
            async move { sink.deliver(Arc::new(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;

        sink.stop();
        assert!(matches!(waiting.await.unwrap(), Err(SinkError::Closed)));
        assert!(matches!(
            sink.deliver(Arc::new(3)).await,
            Err(SinkError::Closed)
        ));
        backend.gate.add_permits(1);
        assert!(first.await.unwrap().is_ok());
        assert_eq!(backend.calls(), 1);
    });
}

#[test]
fn a_panicking_backend_panics_the_caller_and_the_sink_goes_on() {
    paused_system().block_on(async {
        let recorder = Arc::new(Recorder::default());
        let backend = Backend::scripted([Try::Panic]);
        let sink = Sink::start(
            "mongo".into(),
            backend.clone(),
            1,
            policy(3),
            recorder.clone(),
        );
        let caller = tokio::spawn({
            let sink = sink.clone();
            async move { sink.deliver(Arc::new(1)).await }
        });
        let error = caller.await.unwrap_err();
        assert!(error.is_panic());
        assert_eq!(
            error.into_panic().downcast_ref::<&str>(),
            Some(&"backend exploded")
        );
        assert_eq!(recorder.restarts("sink", "mongo"), 1);
        assert!(
            sink.deliver(Arc::new(2)).await.is_ok(),
            "the slot was given back"
        );
    });
}
