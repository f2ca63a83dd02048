//! The connections `BLMOVE` blocks on (redis.md §3.2).
//!
//! A blocking command holds its connection until it answers: on the shared multiplexed
//! connection it would hold up every request queued behind it. So each claim borrows a
//! connection of its own, created on demand and given back after a clean answer; one that
//! failed is dropped (closed), since its state is unknown. At steady state there is one per
//! concurrent claimer (a fetch loop per ingress list), each reused call after call.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult};

/// Idle connections beyond this are closed, so a burst of claimers does not leave them open.
const MAX_IDLE: usize = 32;

/// A pool of dedicated connections for blocking commands.
pub(super) struct BlockingConnections {
    client: Client,
    config: AsyncConnectionConfig,
    idle: Mutex<Vec<MultiplexedConnection>>,
}

impl BlockingConnections {
    /// Connections to `client`'s server, each opened within `connection_timeout`. The
    /// response timeout is set per command: it must outlast the command's own wait.
    pub(super) fn new(client: Client, connection_timeout: Duration) -> BlockingConnections {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connection_timeout))
            .set_response_timeout(Some(connection_timeout));
        BlockingConnections {
            client,
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one.
    pub(super) async fn take(&self) -> RedisResult<MultiplexedConnection> {
        let idle = self.lock_idle().pop();
        match idle {
            Some(connection) => Ok(connection),
            None => {
                self.client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await
            }
        }
    }

    /// Gives back a connection whose last command answered.
    pub(super) fn give_back(&self, connection: MultiplexedConnection) {
        let mut idle = self.lock_idle();
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<MultiplexedConnection>> {
        // The list stays consistent whatever panicked while holding it.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
