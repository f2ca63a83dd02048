//! The `mongo` storage (modules.md §4.3): each vCon is one document of `database.collection`
//! whose `_id` is the uuid, replaced whole on every save (upsert), with `created_at` and each
//! `dialog[].start` as BSON dates so that the database's own date queries work ([`document`]).
//!
//! One client per configured instance, made on first use (the driver resolves and connects
//! asynchronously; building a storage is synchronous) and kept for the instance's life, so a
//! reload that leaves the storage's options alone keeps its connection pool.

mod document;
mod url;

use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{doc, Document, RawDocumentBuf};
use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};
use serde::Deserialize;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{Saved, Storage, StorageError, StorageKind, StorageModule, NAME_OPTION};
use crate::config::Module;
use crate::modules::values::non_empty;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};

pub use url::MongoUrl;

/// The largest document MongoDB stores (its `maxBsonObjectSize`, the same on every server).
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// How long a connection attempt may take when the URL does not say (`connectTimeoutMS`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The options of the `mongo` storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoOptions {
    /// The MongoDB connection string, `mongodb://…` or `mongodb+srv://…`, with any driver
    /// options in its query (`replicaSet`, `tls`, `authSource`, `serverSelectionTimeoutMS`…).
    /// Its password is never shown in logs, errors or `GET /config`. When it sets no
    /// `serverSelectionTimeoutMS`, an operation waits at most `limits.http_timeout` for a
    /// server.
    #[serde(default = "default_url")]
    pub url: MongoUrl,
    /// The database vCons are written to.
    #[serde(default = "default_database", deserialize_with = "non_empty")]
    pub database: String,
    /// The collection of that database; one document per vCon, `_id` = the uuid.
    #[serde(default = "default_collection", deserialize_with = "non_empty")]
    pub collection: String,
}

impl ModuleOptions for MongoOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[NAME_OPTION];
}

fn default_url() -> MongoUrl {
    MongoUrl::default()
}

fn default_database() -> String {
    "conserver".to_owned()
}

fn default_collection() -> String {
    "vcons".to_owned()
}

/// A configured `mongo` storage.
pub struct MongoStorage {
    options: MongoOptions,
    /// `limits.http_timeout`: the server selection timeout when the URL sets none.
    selection_timeout: Duration,
    /// The collection, on the instance's one client, once the first call made it.
    collection: OnceCell<Collection<Document>>,
}

impl StorageModule for MongoStorage {
    type Options = MongoOptions;

    fn build(
        options: MongoOptions,
        _module: &Module<StorageKind>,
        ctx: &ModuleContext,
    ) -> Result<MongoStorage, BuildError> {
        Ok(MongoStorage {
            options,
            selection_timeout: ctx.limits.http_timeout,
            collection: OnceCell::new(),
        })
    }
}

impl MongoStorage {
    /// The collection, making the client on the first call. A failure (a DNS lookup of a
    /// `mongodb+srv` URL…) is not kept: the next call tries again.
    async fn collection(&self) -> Result<&Collection<Document>, StorageError> {
        self.collection
            .get_or_try_init(|| async {
                let mut options = ClientOptions::parse(self.options.url.connection_string())
                    .await
                    .map_err(|e| classified("mongo storage: the url cannot be used", e))?;
                if options.app_name.is_none() {
                    options.app_name = Some(format!("conserver/{}", crate::version::VERSION));
                }
                options
                    .server_selection_timeout
                    .get_or_insert(self.selection_timeout);
                options
                    .connect_timeout
                    .get_or_insert(CONNECT_TIMEOUT.min(self.selection_timeout));
                let client = Client::with_options(options)
                    .map_err(|e| classified("mongo storage: the client cannot be made", e))?;
                Ok(client
                    .database(&self.options.database)
                    .collection(&self.options.collection))
            })
            .await
    }

    fn namespace(&self) -> String {
        format!("{}.{}", self.options.database, self.options.collection)
    }
}

#[async_trait]
impl Storage for MongoStorage {
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError> {
        let uuid = vcon.uuid;
        let document = document::to_document(vcon).ok_or_else(|| {
            StorageError::refused(format!(
                "mongo storage: vCon {uuid} is not a JSON object; MongoDB stores documents"
            ))
        })?;
        // Encoded here, so that a vCon MongoDB cannot hold is refused before it is sent.
        let raw = RawDocumentBuf::from_document(&document).map_err(|e| {
            StorageError::permanent(
                format!("mongo storage: vCon {uuid} cannot be a BSON document"),
                e,
            )
        })?;
        let size = raw.as_bytes().len();
        if size > MAX_DOCUMENT_BYTES {
            return Err(StorageError::refused(format!(
                "mongo storage: vCon {uuid} is {size} bytes as BSON, over MongoDB's document limit of {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let collection = self.collection().await?.clone_with_type::<RawDocumentBuf>();
        collection
            .replace_one(doc! {"_id": uuid.to_string()}, raw)
            .upsert(true)
            .await
            .map_err(|e| {
                classified(
                    format!(
                        "mongo storage: replacing vCon {uuid} in {} failed",
                        self.namespace()
                    ),
                    e,
                )
            })?;
        Ok(())
    }

    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        let found = self
            .collection()
            .await?
            .find_one(doc! {"_id": uuid.to_string()})
            .await
            .map_err(|e| {
                classified(
                    format!(
                        "mongo storage: reading vCon {uuid} from {} failed",
                        self.namespace()
                    ),
                    e,
                )
            })?;
        Ok(found.map(|stored| document::from_document(stored).to_string()))
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        let result = self
            .collection()
            .await?
            .delete_one(doc! {"_id": uuid.to_string()})
            .await
            .map_err(|e| {
                classified(
                    format!(
                        "mongo storage: deleting vCon {uuid} from {} failed",
                        self.namespace()
                    ),
                    e,
                )
            })?;
        Ok(result.deleted_count > 0)
    }
}

/// Server error codes that mean "try again" (modules.md §1.4): the node is shutting down,
/// stepping down or not primary, the network between nodes failed, a time limit ran out, the
/// server is overloaded or the write raced another.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    64,    // WriteConcernFailed (timeout)
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    112,   // WriteConflict
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
    16500, // request rate too large (Azure Cosmos DB's API for MongoDB)
];

/// The driver's labels on errors worth another try.
const TRANSIENT_LABELS: &[&str] = &[
    mongodb::error::RETRYABLE_WRITE_ERROR,
    mongodb::error::TRANSIENT_TRANSACTION_ERROR,
    mongodb::error::SYSTEM_OVERLOADED_ERROR,
    mongodb::error::RETRYABLE_ERROR,
];

/// Whether the same call may succeed later: network and server-selection failures, a node
/// shutting down or stepping down, time limits, throttling. Authentication, a document the
/// server refuses, a bad argument or configuration are not.
fn is_transient(error: &MongoError) -> bool {
    if TRANSIENT_LABELS
        .iter()
        .any(|label| error.contains_label(label))
    {
        return true;
    }
    match error.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => true,
        ErrorKind::Command(command) => TRANSIENT_CODES.contains(&command.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        ErrorKind::Write(WriteFailure::WriteError(write)) => TRANSIENT_CODES.contains(&write.code),
        _ => false,
    }
}

/// `error` as a storage error of its class, with `what` was being done.
fn classified(what: impl Into<String>, error: MongoError) -> StorageError {
    if is_transient(&error) {
        StorageError::transient(what, error)
    } else {
        StorageError::permanent(what, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::read_in_test;
    use serde_json::{json, Value};

    fn parse(options: Value) -> Result<MongoOptions, Vec<String>> {
        read_in_test(options)
    }

    #[test]
    fn defaults_are_the_python_servers() {
        let options = parse(json!({"name": "mongo"})).unwrap();
        assert_eq!(
            options.url.connection_string(),
            "mongodb://localhost:27017/"
        );
        assert_eq!(options.database, "conserver");
        assert_eq!(options.collection, "vcons");
    }

    #[test]
    fn bad_options_are_reported_without_the_password() {
        let problems = parse(json!({
            "url": "postgres://admin:hunter2@db/",
            "database": "",
            "uri": "mongodb://x"
        }))
        .unwrap_err();
        let text = problems.join("\n");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("options.url:"), "{text}");
        assert!(text.contains("options.database:"), "{text}");
        assert!(text.contains("unknown key \"uri\""), "{text}");
    }

    #[test]
    fn error_classes() {
        let io: MongoError = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert!(is_transient(&io));
        let custom = MongoError::custom("not the driver's");
        assert!(!is_transient(&custom));
    }
}
