//! Retries with exponential backoff and jitter (config.md §7.4): the wait before try n+1 is
//! `min(max_backoff, initial_backoff × multiplier^(n−1))` times a random factor in [0.5, 1.0];
//! a server's `Retry-After` replaces the computed wait, capped at `max_backoff`. Only failures
//! that say they are transient are retried; the caller decides that next to the client that
//! raised them.
//!
//! A loop of our own rather than a crate: the jitter rule and `Retry-After` are part of the
//! spec, and neither `backon`'s additive jitter nor its API for a server-chosen wait fit.

use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in total, including the first (1 = no retry).
    pub attempts: u32,
    /// The wait before the second try (before jitter).
    pub initial_backoff: Duration,
    /// The longest wait between two tries, also for a server's `Retry-After`.
    pub max_backoff: Duration,
    /// How much each wait grows over the one before.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// The defaults of config.md §7.4 (those of the Python server's modules).
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(65),
            multiplier: 2.0,
        }
    }
}

/// What a failure says about trying again.
pub trait Retriable {
    /// Whether the same call may succeed later (connection refused, timeout, 429, 5xx…).
    fn is_retriable(&self) -> bool;
    /// A wait the server asked for (`Retry-After`), if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
    /// Why it is retried, for `conserver_retries_total{reason}`: `connect`, `timeout`, `429`,
    /// `5xx`, or `other`.
    fn retry_reason(&self) -> &'static str {
        "other"
    }
}

impl RetryPolicy {
    /// The computed wait before try `n + 1` (n ≥ 1), without jitter.
    pub fn backoff(&self, n: u32) -> Duration {
        let exponent = n.saturating_sub(1).min(1000) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = secs.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(if capped.is_finite() {
            capped.max(0.0)
        } else {
            self.max_backoff.as_secs_f64()
        })
    }

    /// The wait actually taken before try `n + 1`: jittered backoff, or the server's wait.
    pub fn wait(&self, n: u32, server_asked: Option<Duration>) -> Duration {
        match server_asked {
            Some(wait) => wait.min(self.max_backoff),
            None => self.backoff(n).mul_f64(0.5 + fastrand::f64() * 0.5),
        }
    }

    /// Run `call` until it succeeds, fails permanently, or `attempts` tries failed; the last
    /// error is returned. `on_retry(n, &error, wait)` is called before each wait (for logs and
    /// metrics).
    pub async fn run<T, E, F, Fut>(
        &self,
        mut call: F,
        mut on_retry: impl FnMut(u32, &E, Duration),
    ) -> Result<T, E>
    where
        E: Retriable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempts = self.attempts.max(1);
        let mut n = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) if n < attempts && error.is_retriable() => {
                    let wait = self.wait(n, error.retry_after());
                    on_retry(n, &error, wait);
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, PartialEq)]
    struct Failure {
        transient: bool,
        after: Option<Duration>,
    }

    impl Retriable for Failure {
        fn is_retriable(&self) -> bool {
            self.transient
        }
        fn retry_after(&self) -> Option<Duration> {
            self.after
        }
    }

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy(6);
        let waits: Vec<u64> = (1..=5).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 5, 5]);
        for n in 1..=5 {
            let w = p.wait(n, None);
            assert!(w >= p.backoff(n) / 2 && w <= p.backoff(n), "{w:?}");
        }
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_up_to_attempts() {
        let calls = AtomicU32::new(0);
        let mut retries = Vec::new();
        let result: Result<(), Failure> = policy(3)
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Failure {
                        transient: true,
                        after: None,
                    })
                },
                |n, _, _| retries.push(n),
            )
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(retries, vec![1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_and_successes_stop_at_once() {
        let calls = AtomicU32::new(0);
        let result: Result<(), Failure> = policy(6)
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Failure {
                        transient: false,
                        after: None,
                    })
                },
                |_, _, _| {},
            )
            .await;
        assert_eq!(
            result,
            Err(Failure {
                transient: false,
                after: None
            })
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let result: Result<u32, Failure> = policy(6)
            .run(
                || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    if n < 2 {
                        Err(Failure {
                            transient: true,
                            after: Some(Duration::from_millis(10)),
                        })
                    } else {
                        Ok(n)
                    }
                },
                |_, _, wait| assert_eq!(wait, Duration::from_millis(10)),
            )
            .await;
        assert_eq!(result, Ok(2));
    }
}
