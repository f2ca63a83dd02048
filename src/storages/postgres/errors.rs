//! What a failure of PostgreSQL or of the pool means for a retry (modules.md §1.4), decided
//! here next to the driver: the connection lost or refused, a timeout, the server shutting
//! down or starting, too many connections, a serialization failure or deadlock, a read-only
//! server after a fail-over are transient; authentication, a missing database or schema, a
//! bad table, a value PostgreSQL refuses, a certificate it presents are permanent.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::storages::StorageError;

/// `error` as a storage error saying `what` failed, with the driver's error as its source.
pub fn failure(what: String, error: tokio_postgres::Error) -> StorageError {
    if is_transient(&error) {
        StorageError::transient(what, error)
    } else {
        StorageError::permanent(what, error)
    }
}

/// A connection could not be had from the pool.
pub fn pool_failure(what: String, error: PoolError) -> StorageError {
    match error {
        PoolError::Backend(error) => failure(what, error),
        // Waiting for a free connection, connecting, or checking one took too long: the server
        // or the network is slow or away.
        PoolError::Timeout(_) | PoolError::Closed => StorageError::transient(what, error),
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            StorageError::permanent(what, error)
        }
    }
}

/// Whether the same call may succeed later.
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    if let Some(code) = error.code() {
        return transient_state(code);
    }
    if error.is_closed() {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    let mut saw_io = false;
    while let Some(current) = cause {
        if current.is::<rustls::Error>() {
            // A certificate or a handshake the server gets wrong: asking again changes nothing.
            return false;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            // `io::Error::source` skips the error it wraps; TLS failures are wrapped that way.
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return false;
            }
            saw_io = true;
        }
        cause = current.source();
    }
    // No cause but a time-out of the driver's own ("timeout waiting for server").
    saw_io || error.to_string().starts_with("timeout")
}

/// SQLSTATEs that mean "try again" (PostgreSQL's appendix A).
fn transient_state(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    matches!(
        class,
        // connection exception; transaction rollback (serialization failure, deadlock);
        // insufficient resources (disk full, out of memory, too many connections);
        // system error (I/O)
        "08" | "40" | "53" | "58"
    ) || [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::QUERY_CANCELED,
        SqlState::IDLE_SESSION_TIMEOUT,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::OBJECT_IN_USE,
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::SNAPSHOT_TOO_OLD,
    ]
    .contains(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified() {
        for transient in [
            SqlState::CONNECTION_FAILURE,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::DISK_FULL,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::IO_ERROR,
        ] {
            assert!(transient_state(&transient), "{transient:?}");
        }
        for permanent in [
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            SqlState::INVALID_CATALOG_NAME,
            SqlState::INVALID_SCHEMA_NAME,
            SqlState::UNDEFINED_TABLE,
            SqlState::UNDEFINED_COLUMN,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::UNTRANSLATABLE_CHARACTER,
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            SqlState::DATETIME_FIELD_OVERFLOW,
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            SqlState::NOT_NULL_VIOLATION,
        ] {
            assert!(!transient_state(&permanent), "{permanent:?}");
        }
    }
}
