//! The `postgres` storage (modules.md §4.4): one row per vCon in the Python server's table, so
//! a table either server wrote is read and written by the other as it is. `vcon_json` is
//! `jsonb`, for the database's own queries (`vcon_json->'parties' @> '[{"tel": "+1555"}]'`).
//!
//! One connection pool per configured instance, built with the instance (connections are made
//! on first use) and kept across reloads that do not change its options. The table is created
//! when missing, once per pool, by the first write — again only if it disappears. Every call
//! is bounded by `limits.http_timeout`; failures are classified in [`errors`].

mod errors;
mod table;
#[cfg(test)]
mod tests;
mod tls;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{Saved, Storage, StorageError, StorageKind, StorageModule, NAME_OPTION};
use crate::config::path::YamlPath;
use crate::config::{ConfigProblem, Module};
use crate::modules::values::non_empty;
use crate::modules::{BuildError, ModuleContext, ModuleOptions, Section};

pub use table::TableName;
pub use tls::SslMode;

/// Connections of one pool: as many as the vCons a storage writes at once (the engine writes
/// at most 32 per storage; a second instance of conserver has a pool of its own).
const POOL_SIZE: usize = 32;

/// The options of the `postgres` storage.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresOptions {
    /// The server's host name or address, or the directory of its Unix socket
    /// (`/var/run/postgresql`).
    #[serde(default = "default_host", deserialize_with = "non_empty")]
    pub host: String,
    /// The server's port (for a socket directory, the number in the socket's name).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The database the table is in (it must exist).
    #[serde(default = "default_database", deserialize_with = "non_empty")]
    pub database: String,
    /// The user conserver logs in as.
    #[serde(default = "default_user", deserialize_with = "non_empty")]
    pub user: String,
    /// That user's password; empty sends none (`trust`, `peer` or certificate authentication).
    #[serde(default)]
    pub password: String,
    /// The table: `name` or `schema.name`, each `[A-Za-z_][A-Za-z0-9_]*` (at most 63
    /// characters), used with its case as written. Created when missing.
    #[serde(default)]
    pub table_name: TableName,
    /// TLS, as libpq means it: `disable`; `prefer` (TLS when the server offers it) and
    /// `require` (TLS or no connection) encrypt without checking the server's certificate;
    /// `verify-full` checks it against the system's roots (`SSL_CERT_FILE` adds a CA bundle)
    /// and the host name.
    #[serde(default = "default_sslmode")]
    pub sslmode: SslMode,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &crate::config::redact::MASK)
            .field("table_name", &self.table_name)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

impl ModuleOptions for PostgresOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[NAME_OPTION];
}

fn default_host() -> String {
    "localhost".to_owned()
}

fn default_port() -> u16 {
    5432
}

fn default_database() -> String {
    "vcon_db".to_owned()
}

fn default_user() -> String {
    "postgres".to_owned()
}

fn default_sslmode() -> SslMode {
    SslMode::Prefer
}

/// A configured `postgres` storage.
pub struct PostgresStorage {
    pool: Pool,
    sql: table::Statements,
    /// The table is known to exist (created, or found, by this pool).
    table_ready: AtomicBool,
    /// Held while the table is created, so that concurrent first writes create it once.
    creating: tokio::sync::Mutex<()>,
    timeout: Duration,
}

impl StorageModule for PostgresStorage {
    type Options = PostgresOptions;

    fn build(
        options: PostgresOptions,
        module: &Module<StorageKind>,
        ctx: &ModuleContext,
    ) -> Result<PostgresStorage, BuildError> {
        let timeout = ctx.limits.http_timeout;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&options.host)
            .port(options.port)
            .dbname(&options.database)
            .user(&options.user)
            .application_name("conserver")
            .connect_timeout(timeout)
            .ssl_mode(options.sslmode.driver_mode());
        if !options.password.is_empty() {
            config.password(&options.password);
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match options.sslmode.connector() {
            Ok(Some(tls)) => Manager::from_config(config, tls, manager_config),
            Ok(None) => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
            Err(error) => {
                return Err(build_problem(
                    module,
                    "sslmode",
                    format!("the TLS configuration cannot be made: {error}"),
                ))
            }
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|error| {
                build_problem(
                    module,
                    "host",
                    format!("the connection pool cannot be made: {error}"),
                )
            })?;
        Ok(PostgresStorage {
            pool,
            sql: table::Statements::for_table(&options.table_name),
            table_ready: AtomicBool::new(false),
            creating: tokio::sync::Mutex::new(()),
            timeout,
        })
    }
}

/// A problem of the instance's options found when it is built.
fn build_problem(module: &Module<StorageKind>, key: &str, message: String) -> BuildError {
    BuildError::Options(vec![ConfigProblem {
        path: YamlPath::root()
            .key(Section::Storage.key())
            .key(&module.name)
            .key("options")
            .key(key),
        line: None,
        message,
    }])
}

/// The columns of a vCon's row besides `id`, `uuid` and `vcon_json`.
#[derive(Debug, PartialEq)]
struct Row<'a> {
    /// The vCon's `vcon` member, or `""`.
    version: &'a str,
    /// `created_at` as a UTC instant without zone; the index instant when unreadable.
    created_at: NaiveDateTime,
    /// A string `subject`, else NULL.
    subject: Option<&'a str>,
}

impl<'a> Row<'a> {
    fn of(vcon: &'a Saved) -> Row<'a> {
        let member = |name: &str| vcon.vcon.get(name).and_then(Value::as_str);
        let created_at = vcon
            .created_at
            .as_deref()
            .and_then(crate::vcon::parse_date)
            .or_else(|| DateTime::from_timestamp(vcon.index_instant, 0))
            .unwrap_or_default()
            .naive_utc();
        Row {
            version: member("vcon").unwrap_or(""),
            created_at,
            subject: member("subject"),
        }
    }
}

impl PostgresStorage {
    /// `work` within the storage's timeout.
    async fn within<T>(
        &self,
        what: impl FnOnce() -> String,
        work: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(outcome) => outcome,
            Err(elapsed) => Err(StorageError::transient(
                format!(
                    "{}: no answer from PostgreSQL within {} s",
                    what(),
                    self.timeout.as_secs_f64()
                ),
                elapsed,
            )),
        }
    }

    async fn connection(&self, what: &str) -> Result<deadpool_postgres::Client, StorageError> {
        self.pool
            .get()
            .await
            .map_err(|e| errors::pool_failure(format!("{what}: no connection to PostgreSQL"), e))
    }

    /// Create the table unless this pool knows it exists.
    async fn ensure_table(&self, client: &deadpool_postgres::Client) -> Result<(), StorageError> {
        if self.table_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_at_a_time = self.creating.lock().await;
        if self.table_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        match client.batch_execute(&self.sql.create).await {
            Ok(()) => {}
            // Another server created it at the same moment (`IF NOT EXISTS` does not cover
            // the race): it exists.
            Err(error)
                if error.code() == Some(&SqlState::UNIQUE_VIOLATION)
                    || error.code() == Some(&SqlState::DUPLICATE_TABLE) => {}
            Err(error) => {
                return Err(errors::failure(
                    format!("postgres: creating the table {} failed", self.sql.table),
                    error,
                ))
            }
        }
        self.table_ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn upsert(&self, vcon: &Saved, what: &str) -> Result<(), StorageError> {
        let client = self.connection(what).await?;
        self.ensure_table(&client).await?;
        let row = Row::of(vcon);
        let written = async {
            let statement = client.prepare_cached(&self.sql.upsert).await?;
            client
                .execute(
                    &statement,
                    &[
                        &vcon.uuid,
                        &row.version,
                        &row.created_at,
                        &row.subject,
                        &vcon.text.as_str(),
                    ],
                )
                .await
        }
        .await;
        match written {
            Ok(_) => Ok(()),
            Err(error) => {
                if error.code() == Some(&SqlState::UNDEFINED_TABLE) {
                    // Dropped since this pool created it: the next try creates it again.
                    self.table_ready.store(false, Ordering::Release);
                    return Err(StorageError::transient(what, error));
                }
                Err(errors::failure(what.to_owned(), error))
            }
        }
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError> {
        let what = format!(
            "postgres: writing vCon {} to {} failed",
            vcon.uuid, self.sql.table
        );
        self.within(|| what.clone(), self.upsert(vcon, &what)).await
    }

    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        let what = || {
            format!(
                "postgres: reading vCon {uuid} from {} failed",
                self.sql.table
            )
        };
        self.within(what, async {
            let client = self.connection(&what()).await?;
            let found = async {
                let statement = client.prepare_cached(&self.sql.select).await?;
                client.query_opt(&statement, &[&uuid]).await
            }
            .await;
            match found {
                Ok(Some(row)) => row
                    .try_get::<_, Option<String>>(0)
                    .map_err(|e| StorageError::permanent(what(), e)),
                Ok(None) => Ok(None),
                // Nothing was ever written here.
                Err(error) if error.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(None),
                Err(error) => Err(errors::failure(what(), error)),
            }
        })
        .await
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        let what = || {
            format!(
                "postgres: deleting vCon {uuid} from {} failed",
                self.sql.table
            )
        };
        self.within(what, async {
            let client = self.connection(&what()).await?;
            let deleted = async {
                let statement = client.prepare_cached(&self.sql.delete).await?;
                client.execute(&statement, &[&uuid]).await
            }
            .await;
            match deleted {
                Ok(rows) => Ok(rows > 0),
                Err(error) if error.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(false),
                Err(error) => Err(errors::failure(what(), error)),
            }
        })
        .await
    }
}
