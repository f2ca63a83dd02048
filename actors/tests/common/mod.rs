//! Helpers shared by the integration tests: an observer that records what it is told, and a
//! bounded wait for a condition (never a sleep as an assertion of timing).

#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use conserver_actors::Observer;

/// Records every report of the runtime.
#[derive(Default)]
pub struct Recorder {
    restarts: Mutex<Vec<(&'static str, String)>>,
    in_flight: Mutex<HashMap<String, usize>>,
    max_in_flight: AtomicUsize,
    retries: Mutex<Vec<(String, &'static str)>>,
}

impl Recorder {
    /// How many restarts of `kind` serving `name` were reported.
    pub fn restarts(&self, kind: &str, name: &str) -> usize {
        self.restarts
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, n)| *k == kind && n == name)
            .count()
    }

    /// The last in-flight figure reported for `chain`.
    pub fn in_flight(&self, chain: &str) -> usize {
        self.in_flight
            .lock()
            .unwrap()
            .get(chain)
            .copied()
            .unwrap_or(0)
    }

    /// The highest in-flight figure ever reported (any chain).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// The retries reported, as (sink, reason).
    pub fn retries(&self) -> Vec<(String, &'static str)> {
        self.retries.lock().unwrap().clone()
    }
}

impl Observer for Recorder {
    fn restarted(&self, kind: &'static str, name: &str) {
        self.restarts.lock().unwrap().push((kind, name.to_string()));
    }

    fn in_flight(&self, chain: &str, count: usize) {
        self.in_flight
            .lock()
            .unwrap()
            .insert(chain.to_string(), count);
        self.max_in_flight.fetch_max(count, Ordering::SeqCst);
    }

    fn retried(&self, name: &str, reason: &'static str) {
        self.retries
            .lock()
            .unwrap()
            .push((name.to_string(), reason));
    }
}

/// Wait until `check` holds, polling every 5 ms for at most 10 s; panic naming `what` if not.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..2000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}
