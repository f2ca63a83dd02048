//! The `Runtime` handle: how the product drives the supervisor. A cheap, `Send + Sync` clone of
//! an actor address, so actix-web handlers on any worker thread can use it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};

use crate::pool::RunPool;
use crate::supervisor::{Chains, Shutdown, StartChain, StopChain, Supervisor};
use crate::work::{ChainSpec, ChainState, Observer, Work};

/// Tunables of the runtime. `Default` is what production runs with; tests shorten the waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// The longest one take may wait for an item (the `BLMOVE` timeout of redis.md §3.2, 5 s):
    /// also how long a stopping poller may take to notice.
    pub take_wait: Duration,
    /// The wait before a poller restarts after its first failed take; doubled on each further
    /// failure in a row, reset by a take that succeeds.
    pub restart_backoff: Duration,
    /// The longest wait before a poller restarts.
    pub max_restart_backoff: Duration,
    /// The threads runs are spread over; 0 means one per available CPU.
    pub run_threads: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            take_wait: Duration::from_secs(5),
            restart_backoff: Duration::from_secs(1),
            max_restart_backoff: Duration::from_secs(30),
            run_threads: 0,
        }
    }
}

/// The handle of the supervisor (the root actor). Cheap to clone; usable from any thread of the
/// actix `System` it was started in.
#[derive(Clone)]
pub struct Runtime {
    supervisor: Addr<Supervisor>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Start the supervisor with the default options.
    ///
    /// # Panics
    /// Outside an actix `System` (a start-up invariant: the server runs inside one).
    pub fn start(observer: Arc<dyn Observer>) -> Runtime {
        Runtime::start_with(observer, RuntimeOptions::default())
    }

    /// Start the supervisor, on the current arbiter, and its run threads.
    ///
    /// # Panics
    /// Outside an actix `System`.
    pub fn start_with(observer: Arc<dyn Observer>, options: RuntimeOptions) -> Runtime {
        let threads = match options.run_threads {
            0 => std::thread::available_parallelism().map_or(1, |threads| threads.get()),
            threads => threads,
        };
        let pool = RunPool::start(threads);
        Runtime {
            supervisor: Supervisor::new(observer, options, pool).start(),
        }
    }

    /// Run `work` as chain `spec.name`. A chain of the same name already running is replaced:
    /// it stops taking items at once and its in-flight items finish with the old `work`; the
    /// new one starts when the old pollers have stopped. (While the old runs drain, the chain
    /// may have up to twice its workers in flight.) Ignored after [`Runtime::shutdown`].
    pub async fn start_chain<W: Work>(&self, spec: ChainSpec, work: Arc<W>) {
        let name = spec.name.clone();
        if self
            .supervisor
            .send(StartChain { spec, work })
            .await
            .is_err()
        {
            tracing::error!(chain = %name, "the runtime has stopped (its actix System is gone): chain not started");
        }
    }

    /// Stop taking items for chain `name`; its in-flight items finish. Returns once no new take
    /// will start (a take already in progress completes, and its item is run). The chain is
    /// listed, not running, until its runs have ended. Unknown names are ignored.
    pub async fn stop_chain(&self, name: &str) {
        if self
            .supervisor
            .send(StopChain {
                name: name.to_string(),
            })
            .await
            .is_err()
        {
            tracing::error!(chain = %name, "the runtime has stopped (its actix System is gone)");
        }
    }

    /// Every chain, in start order (a replaced chain keeps its place).
    pub async fn chains(&self) -> Vec<ChainState> {
        self.supervisor.send(Chains).await.unwrap_or_default()
    }

    /// Stop every poller, let in-flight items finish for up to `grace`, then cancel what
    /// remains. Returns how many items were cancelled (the product hands them back). A take in
    /// progress is waited for, even past `grace`, up to one take's wait: no item is claimed
    /// after this returns. The runtime starts no chain afterwards.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.supervisor.send(Shutdown { grace }).await.unwrap_or(0)
    }
}
