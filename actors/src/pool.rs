//! The threads runs are spread over. The runtime's actors live on the thread that started it
//! (an actix arbiter is single-threaded); the runs themselves go round robin to a few arbiters
//! of their own, so a busy chain uses every core instead of that one thread.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::Arbiter;

/// A fixed set of arbiters, stopped when the last user of the pool lets go of it.
pub(crate) struct RunPool {
    arbiters: Vec<Arbiter>,
    next: AtomicUsize,
}

impl RunPool {
    /// Start `threads` arbiters; must be called inside an actix `System`. A thread that cannot
    /// be started is logged and done without: with none at all, runs share the caller's thread.
    pub(crate) fn start(threads: usize) -> RunPool {
        let mut arbiters = Vec::with_capacity(threads);
        for _ in 0..threads {
            match Arbiter::try_new() {
                Ok(arbiter) => arbiters.push(arbiter),
                Err(error) => {
                    tracing::warn!(%error, started = arbiters.len(), "could not start a run thread");
                    break;
                }
            }
        }
        RunPool {
            arbiters,
            next: AtomicUsize::new(0),
        }
    }

    /// Spawn `run` on the next thread. False when that thread has stopped (the actix `System`
    /// is stopping): `run` was dropped without being polled.
    pub(crate) fn spawn(&self, run: impl Future<Output = ()> + Send + 'static) -> bool {
        if self.arbiters.is_empty() {
            actix::spawn(run);
            return true;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        self.arbiters[index].spawn(run)
    }
}

impl Drop for RunPool {
    fn drop(&mut self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}
