//! The store: every Redis operation the product needs, in product terms (spec/redis.md).
//! `redis` is the production implementation, `memory` the embedded default with the same
//! semantics; `keys` is the only place key names are made. One conformance suite
//! (tests/integration/store_conformance.rs) runs against both.

pub mod keys;
pub mod memory;
pub mod redis;

use std::sync::{Arc, Once};

use async_trait::async_trait;
use uuid::Uuid;

use crate::vcon::PartyIndex;
use keys::PartyField;

/// Settings of the store that come from the `redis` config section.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `redis.key_prefix`: prepended to every key.
    pub key_prefix: String,
    /// `redis.sorted_set`: the name of the created-at index (`vcons`).
    pub sorted_set: String,
    /// `redis.vcon_ttl`: TTL of a vCon no chain holds, in seconds; 0 = never.
    pub vcon_ttl: u64,
    /// `redis.dlq_ttl`: TTL of a vCon in a DLQ, in seconds; 0 = never.
    pub dlq_ttl: u64,
    /// `redis.index_ttl`: TTL of the party index sets, renewed on each addition, in seconds.
    pub index_ttl: u64,
    /// `redis.json_module`: write `vcon:{uuid}` as RedisJSON documents.
    pub json_module: bool,
}

/// A vCon to write into the cache and indexes.
#[derive(Debug, Clone, Copy)]
pub struct VconWrite<'a> {
    /// The vCon's uuid (keys use its lowercase hyphenated form).
    pub uuid: Uuid,
    /// The exact text to store.
    pub text: &'a str,
    /// Score in the created-at sorted set: Unix seconds.
    pub score: i64,
    /// The party values to index it by.
    pub parties: &'a PartyIndex,
}

/// `GET /vcon` paging: `ZREVRANGEBYSCORE <until|+inf> <since|-inf> LIMIT offset count`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListQuery {
    /// Inclusive lower bound on the score; `None` = `-inf`.
    pub since: Option<i64>,
    /// Inclusive upper bound on the score; `None` = `+inf`.
    pub until: Option<i64>,
    /// Members skipped from the newest.
    pub offset: u64,
    /// At most this many members.
    pub count: u64,
}

/// Exact-match search terms; `None` = not given, `Some("")` = given empty (matches nothing).
#[derive(Debug, Clone, Default)]
pub struct SearchTerms {
    /// A party's `tel`, exactly.
    pub tel: Option<String>,
    /// A party's `mailto`, exactly.
    pub mailto: Option<String>,
    /// A party's `name`, exactly.
    pub name: Option<String>,
}

/// The lists and storages of one chain, for [`Store::chain_status`].
#[derive(Debug, Clone)]
pub struct ChainLists<'a> {
    /// The chain's name (its stats hash).
    pub name: &'a str,
    /// Its ingress lists, in config order.
    pub ingress_lists: &'a [String],
    /// Its egress lists, in config order.
    pub egress_lists: &'a [String],
    /// Its storages, in chain order.
    pub storages: &'a [String],
}

/// What `GET /chains` shows of a chain, read from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainStatus {
    /// `(list, depth, dlq depth)` per ingress list, in config order.
    pub ingress: Vec<(String, u64, u64)>,
    /// `(list, depth)` per egress list.
    pub egress: Vec<(String, u64)>,
    /// Sum of the processing lists of live instances for the chain's ingress lists.
    pub in_flight: u64,
    /// Runs that reached the storage step (cluster-wide).
    pub processed: u64,
    /// Runs a link halted, or whose vCon was missing.
    pub halted: u64,
    /// Runs that went to `DLQ:<ingress>`.
    pub failed: u64,
    /// `(storage, depth of DLQ:storage:<name>)` per storage.
    pub storage_dlq: Vec<(String, u64)>,
}

/// Why a store operation failed. Each variant names the operation (the [`Store`] method, or
/// `connect`) and carries what Redis or its client reported, which
/// [`std::error::Error::source`] returns, so a log can print the whole chain of causes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis cannot be reached (connection refused, reset or dropped; a server loading,
    /// read-only or without a master): a 503.
    #[error("Redis cannot be reached ({operation})")]
    Unavailable {
        operation: &'static str,
        source: ::redis::RedisError,
    },
    /// Redis did not answer within the operation's deadline: a 503.
    #[error("Redis did not answer within {} s ({operation})", .waited.as_secs())]
    TimedOut {
        operation: &'static str,
        waited: std::time::Duration,
    },
    /// Redis answered with an error, or with a reply of another shape than the operation's.
    #[error("Redis answered {operation} with an error")]
    Backend {
        operation: &'static str,
        source: ::redis::RedisError,
    },
    /// A `vcon:<uuid>` key holds neither a string nor a RedisJSON document.
    #[error("{key} holds neither a string nor a RedisJSON document ({operation})")]
    WrongType {
        operation: &'static str,
        key: String,
        source: ::redis::RedisError,
    },
    /// A stored value is not text (vCons and blobs are JSON text).
    #[error("{key} is not UTF-8 text ({operation})")]
    NotText {
        operation: &'static str,
        key: String,
        source: std::string::FromUtf8Error,
    },
    /// The configured URL is not a Redis URL.
    #[error("invalid Redis URL")]
    InvalidUrl { source: ::redis::RedisError },
    /// The server lacks commands the store needs.
    #[error(
        "Redis {}.{} or later is required (LMOVE, LPOP with a count); this server is {}.{}",
        .required.0, .required.1, .found.0, .found.1
    )]
    OldServer {
        found: (u32, u32),
        required: (u32, u32),
    },
}

impl StoreError {
    /// The store could not be reached or did not answer (as opposed to answering with an
    /// error): the same call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::TimedOut { .. }
        )
    }
}

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// How a run ended, for the chain counters (redis.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every link continued; the storage phase ran.
    Processed,
    /// A link halted.
    Halted,
    /// A link failed (error, panic, timeout): dead-lettered to `DLQ:<ingress list>`.
    Failed,
    /// The vCon was found nowhere (counted as halted).
    Missing,
}

/// A list to push a uuid to when a run ends, and whether it is read by an enabled chain (then
/// the enqueue protocol is used, else a plain `RPUSH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The logical list name.
    pub list: String,
    /// Whether an enabled chain reads the list: the enqueue protocol (redis.md §3.1) then.
    pub enqueue: bool,
}

/// Everything that happens when a run ends, in one round trip (redis.md §4.1, in this order):
/// the `DLQ:<ingress list>` push of a failed run → storage DLQ pushes → egress (or the
/// egress-pending record when a storage write was dead-lettered) → routes → the TTL step → the
/// chain counter → `LREM` of the processing entry. A crash between two steps leaves the item in
/// the processing list, so the run is repeated: duplicates at worst, never a loss.
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    /// The chain that ran (its stats hash, and the egress-pending record).
    pub chain: &'a str,
    /// The list the item was taken from (its DLQ and processing list).
    pub ingress_list: &'a str,
    /// The instance that took it (its processing list).
    pub instance_id: &'a str,
    /// The uuid as it was taken from the list (the processing entry to remove).
    pub item: &'a str,
    /// The vCon the TTL step applies to (the item's, or the new uuid a link produced).
    pub uuid: Uuid,
    /// How the run ended. `Failed` appends `item` to `DLQ:<ingress list>`.
    pub outcome: RunOutcome,
    /// Storages whose write was dead-lettered: `RPUSH DLQ:storage:<name> <uuid>` each.
    pub failed_storages: &'a [String],
    /// Egress lists; pushed only when `failed_storages` is empty, else recorded in
    /// `conserver:egress_pending:<uuid>` (`{"chain", "egress_lists", "storages"}`, TTL `dlq_ttl`).
    pub egress: &'a [Push],
    /// `tag_router` routes.
    pub routes: &'a [Push],
    /// TTL asked by this run in seconds (0 = never): the TTL step keeps the longest asked.
    pub ttl: u64,
    /// Whether the run held a pending count (false for a vCon created by a link).
    pub decrement: bool,
    /// The vCon the run took, when a link replaced it by one with another uuid (modules.md
    /// §1.2): the run's pending count is its own, so its TTL step (with the decrement and the
    /// same TTL) runs too.
    pub replaced: Option<Uuid>,
}

/// What `POST /dlq/storage/reprocess` learns when a storage write succeeded (redis.md §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressRelease {
    /// No record for this uuid (no egress lists, or it expired).
    NoRecord,
    /// Other storages of the record are still failing.
    Waiting,
    /// This was the last failed storage: these egress lists were pushed and the record deleted.
    Released(Vec<String>),
}

/// Every store operation the product needs, in product terms; see the module documentation.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `redis` or `memory`.
    fn kind(&self) -> &'static str;

    /// Answers within 2 s or fails.
    async fn ping(&self) -> StoreResult<()>;

    /// `POST /vcon` steps 2–5 in one round trip: SET the text (TTL: none when `enqueue` is not
    /// empty or the pending count is above 0, else `vcon_ttl`), ZADD (and ZREM the bare
    /// member), SADD + EXPIRE the party index, then the enqueue protocol for each list in order.
    /// Also used to re-cache a vCon read from a storage (`enqueue` empty).
    async fn put_vcon(&self, vcon: VconWrite<'_>, enqueue: &[String]) -> StoreResult<()>;

    /// The stored text of `vcon:{uuid}` (string or RedisJSON form).
    async fn get_vcon(&self, uuid: Uuid) -> StoreResult<Option<String>>;

    /// One MGET; answers in request order.
    async fn get_vcons(&self, uuids: &[Uuid]) -> StoreResult<Vec<Option<String>>>;

    /// DEL the vCon, ZREM both member forms, SREM from the given party sets.
    async fn delete_vcon(&self, uuid: Uuid, parties: &PartyIndex) -> StoreResult<()>;

    /// Uuids from the sorted set, newest first (`vcon:` prefix removed, bare members as is).
    async fn list_vcons(&self, query: ListQuery) -> StoreResult<Vec<String>>;

    /// SINTER of the given terms' sets, sorted ascending.
    async fn search(&self, terms: &SearchTerms) -> StoreResult<Vec<String>>;

    /// The enqueue protocol (redis.md §3.1) for each uuid onto `list`, in one round trip.
    async fn enqueue(&self, list: &str, uuids: &[Uuid]) -> StoreResult<()>;

    /// LLEN (0 for a missing list).
    async fn list_len(&self, list: &str) -> StoreResult<u64>;

    /// LPOP `limit` items from the head (oldest first).
    async fn pop_front(&self, list: &str, limit: usize) -> StoreResult<Vec<String>>;

    /// LRANGE 0 -1 of `DLQ:<list>`.
    async fn dlq_items(&self, list: &str) -> StoreResult<Vec<String>>;

    /// Move up to `count` uuids from the head of `DLQ:<list>` to the tail of `list`, each after
    /// the enqueue protocol's first two steps; the number moved.
    async fn dlq_reprocess(&self, list: &str, count: usize) -> StoreResult<usize>;

    /// LRANGE 0 -1 of `DLQ:storage:<name>`.
    async fn storage_dlq_items(&self, storage: &str) -> StoreResult<Vec<String>>;

    /// Depths and counters of one chain (api.md §5.17).
    async fn chain_status(&self, chain: ChainLists<'_>) -> StoreResult<ChainStatus>;

    /// Rebuild the sorted set and party index from every `vcon:*` key (SCAN, 500 per step);
    /// the number of vCons indexed.
    async fn index_all(&self) -> StoreResult<u64>;

    // --- The processing engine (redis.md §3–§4). ---

    /// Register this instance: `SADD conserver:instances`, heartbeat key with `EX ttl` holding
    /// `info` (JSON `{"host", "pid", "version", "started_at"}`). A `ttl` of 0 counts as 1 s
    /// (a heartbeat cannot be eternal: a dead instance would never be recovered).
    async fn register_instance(&self, id: &str, info: &str, ttl: u64) -> StoreResult<()>;

    /// Refresh the heartbeat (and the id's membership of `conserver:instances`), in one round
    /// trip; `false` when the key had expired: it is set again, but the instance may have been
    /// recovered meanwhile, lists set included, so the caller notes its lists again.
    async fn heartbeat(&self, id: &str, info: &str, ttl: u64) -> StoreResult<bool>;

    /// Note that this instance consumes `list` (`SADD conserver:instance:<id>:lists`).
    async fn note_consumed_list(&self, id: &str, list: &str) -> StoreResult<()>;

    /// `BLMOVE <list> {<list>}:processing:<id> LEFT RIGHT <wait>` on a connection of its own
    /// (blocking commands must not hold up the shared one), then `PERSIST vcon:{uuid}` and
    /// `LPOP context:<list>:<uuid>`. `None` when nothing came within `wait` (a zero `wait` does
    /// not block; one above an hour counts as an hour). A Redis that cannot be reached fails
    /// within seconds, with an error that [`StoreError::is_unavailable`].
    ///
    /// Cancel a claim (drop the future) only when the instance's processing lists are
    /// recovered afterwards (shutdown): an item moved by a `BLMOVE` whose answer was abandoned
    /// sits in the processing list until then.
    async fn claim(
        &self,
        list: &str,
        instance_id: &str,
        wait: std::time::Duration,
    ) -> StoreResult<Option<String>>;

    /// Write a changed vCon back during a run, in the configured form. The TTL is not managed
    /// here: in flight a vCon has none (the claim removed it), and the TTL step of
    /// [`Store::finish`] gives it one.
    async fn write_back(&self, uuid: Uuid, text: &str) -> StoreResult<()>;

    /// End a run (see [`Finish`]): one round trip.
    async fn finish(&self, finish: &Finish<'_>) -> StoreResult<()>;

    /// Ids in `conserver:instances` whose heartbeat key is gone, other than `own_id`, sorted.
    async fn dead_instances(&self, own_id: &str) -> StoreResult<Vec<String>>;

    /// Move every item of `id`'s processing lists back to the head of their ingress lists
    /// (`LMOVE … RIGHT LEFT` until empty), then delete its lists set and remove it from
    /// `conserver:instances`; `(list, items moved)` per list, sorted by list. Also used for a
    /// clean shutdown. Safe to run concurrently from several instances (each move is atomic).
    async fn recover_instance(&self, id: &str) -> StoreResult<Vec<(String, u64)>>;

    /// The items of this instance's processing list of `list`, oldest first.
    async fn processing_items(&self, list: &str, instance_id: &str) -> StoreResult<Vec<String>>;

    /// Put `item` back at the head of `list` if it is still in this instance's processing list
    /// (atomically: removed there, then pushed); whether it was moved. For an item this
    /// instance holds but runs no more (a claim whose answer was lost, a run whose end could
    /// not be recorded).
    async fn return_item(&self, list: &str, instance_id: &str, item: &str) -> StoreResult<bool>;

    /// Delete this instance's heartbeat key (clean shutdown, after `recover_instance`).
    async fn deregister_instance(&self, id: &str) -> StoreResult<()>;

    /// The first `count` uuids of `DLQ:storage:<name>`, oldest first.
    async fn storage_dlq_head(&self, storage: &str, count: usize) -> StoreResult<Vec<String>>;

    /// Remove the first entry `uuid` of `DLQ:storage:<name>` (`LREM … 1`). When `released` is
    /// true (the write succeeded), first settle the egress-pending record for this storage
    /// (redis.md §4.3): remove the storage from it, atomically; when none is left, push its
    /// egress lists (the enqueue protocol for those in `enqueue_lists`, else `RPUSH`) and
    /// delete it. The entry is removed last, so a crash in between makes the next reprocessing
    /// release the egress again (a duplicate at worst, never a loss). With `released` false
    /// the record is not read and the answer is [`EgressRelease::NoRecord`].
    async fn storage_dlq_done(
        &self,
        storage: &str,
        uuid: &str,
        released: bool,
        enqueue_lists: &[String],
    ) -> StoreResult<EgressRelease>;

    /// `redis_storage`: `SET <key_prefix><name> <text> [EX ttl]` (0 = no expiry), plain string.
    async fn put_blob(&self, name: &str, text: &str, ttl: u64) -> StoreResult<()>;

    /// `redis_storage`: `GET <key_prefix><name>`.
    async fn get_blob(&self, name: &str) -> StoreResult<Option<String>>;

    /// `redis_storage`: `DEL <key_prefix><name>`; whether it existed.
    async fn delete_blob(&self, name: &str) -> StoreResult<bool>;
}

/// The warning of config.md §11, logged the first time the embedded store is opened.
const EMBEDDED_STORE_WARNING: &str = "no Redis URL configured (redis.url / REDIS_URL): using the \
embedded in-memory store. Nothing survives a restart and no other process can share it.";

/// Opens the store the config asks for: Redis at `url`, or the embedded in-memory store when
/// there is no URL. A Redis that cannot be reached within the connection timeout is an error
/// that [`StoreError::is_unavailable`], so the server refuses to start with a clear message.
pub async fn open(url: Option<&str>, settings: StoreSettings) -> StoreResult<Arc<dyn Store>> {
    match url {
        Some(url) => Ok(Arc::new(redis::RedisStore::connect(url, settings).await?)),
        None => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| tracing::warn!("{EMBEDDED_STORE_WARNING}"));
            Ok(Arc::new(memory::MemoryStore::new(settings)))
        }
    }
}

/// Claims wait at most this long per call (a longer wait returns `None` after it, as a shorter
/// one does): Redis refuses a `BLMOVE` timeout beyond its range, and deadlines must not
/// overflow.
const LONGEST_CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// A TTL longer than a century is applied as a century: Redis (`EXPIRE` in milliseconds) and
/// Lua (doubles) cannot hold every `u64`, and nobody can tell the difference.
const LONGEST_TTL: u64 = 100 * 365 * 86_400;

/// The TTL a run asks of the TTL step (redis.md §4.2), as the pending hash stores it: the
/// seconds, or -1 for "never" (asked as 0).
fn asked_ttl(ttl: u64) -> i64 {
    match ttl {
        0 => -1,
        // LONGEST_TTL fits an i64.
        seconds => seconds.min(LONGEST_TTL) as i64,
    }
}

/// The longer of two TTLs in the pending hash's form; "never" (-1) is the longest.
fn longest_ttl(kept: i64, asked: i64) -> i64 {
    if kept < 0 || asked < 0 {
        -1
    } else {
        kept.max(asked)
    }
}

impl RunOutcome {
    /// Every outcome.
    pub const ALL: [RunOutcome; 4] = [
        RunOutcome::Processed,
        RunOutcome::Halted,
        RunOutcome::Failed,
        RunOutcome::Missing,
    ];

    /// The `outcome` label of `conserver_chain_runs_total`.
    pub fn label(self) -> &'static str {
        match self {
            RunOutcome::Processed => "processed",
            RunOutcome::Halted => "halted",
            RunOutcome::Failed => "failed",
            RunOutcome::Missing => "missing",
        }
    }

    /// The field of `conserver:chain_stats:<chain>` the run counts in.
    fn stats_field(self) -> &'static str {
        match self {
            RunOutcome::Processed => "processed",
            RunOutcome::Halted | RunOutcome::Missing => "halted",
            RunOutcome::Failed => "failed",
        }
    }
}

/// `conserver:egress_pending:<uuid>` (redis.md §2, §4.3): the egress a dead-lettered storage
/// write holds back.
#[derive(Debug, serde::Serialize)]
struct EgressPending {
    chain: String,
    egress_lists: Vec<String>,
    /// The storages whose write is still dead-lettered.
    storages: Vec<String>,
}

impl EgressPending {
    /// The record a finish writes.
    fn new(chain: &str, egress: &[Push], failed_storages: &[String]) -> EgressPending {
        EgressPending {
            chain: chain.to_owned(),
            egress_lists: egress.iter().map(|push| push.list.clone()).collect(),
            storages: failed_storages.to_vec(),
        }
    }

    /// The JSON text stored.
    fn to_text(&self) -> String {
        // Strings and lists of strings: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Every `(field, value)` a vCon is indexed by, in the order tel, mailto, name.
fn party_entries(parties: &PartyIndex) -> impl Iterator<Item = (PartyField, &str)> {
    fn tagged(field: PartyField, values: &[String]) -> impl Iterator<Item = (PartyField, &str)> {
        values.iter().map(move |value| (field, value.as_str()))
    }
    tagged(PartyField::Tel, &parties.tel)
        .chain(tagged(PartyField::Mailto, &parties.mailto))
        .chain(tagged(PartyField::Name, &parties.name))
}

/// The sets `SINTER` reads for a search; `None` when a term is empty (nothing can match) or no
/// term is given.
fn search_sets(keys: &keys::Keys, terms: &SearchTerms) -> Option<Vec<String>> {
    let given = [
        (PartyField::Tel, &terms.tel),
        (PartyField::Mailto, &terms.mailto),
        (PartyField::Name, &terms.name),
    ];
    let mut sets = Vec::with_capacity(given.len());
    for (field, value) in given {
        match value.as_deref() {
            Some("") => return None,
            Some(value) => sets.push(keys.party(field, value)),
            None => {}
        }
    }
    (!sets.is_empty()).then_some(sets)
}

/// What `/index_vcons` adds to the indexes for one `vcon:*` key.
#[derive(Debug)]
struct IndexEntry {
    /// The uuid part of the key (the sorted-set member and party-set element).
    id: String,
    /// The vCon's index instant; `None` for an encrypted or undated one.
    created_at: Option<i64>,
    /// The score of an undated vCon not yet in the sorted set: when the walk read it.
    receipt: i64,
    parties: PartyIndex,
}

/// Reads one `vcon:*` value for `/index_vcons`; `None` (logged) when it is not a vCon.
fn describe_for_index(
    keys: &keys::Keys,
    key: &str,
    text: &str,
    receipt: i64,
) -> Option<IndexEntry> {
    let Some(id) = keys.vcon_id(key).filter(|id| Uuid::try_parse(id).is_ok()) else {
        tracing::warn!(
            key,
            "index_vcons: skipped a key whose name is not vcon:<uuid>"
        );
        return None;
    };
    IndexEntry::read(id, text, receipt)
}

impl IndexEntry {
    /// What `/index_vcons` adds for the vCon `id` whose stored text is `text`; `None` (logged)
    /// when the text is not a JSON object.
    fn read(id: &str, text: &str, receipt: i64) -> Option<IndexEntry> {
        let Some(described) = crate::vcon::describe(text) else {
            tracing::warn!(
                vcon_id = id,
                "index_vcons: skipped a value that is not a JSON object"
            );
            return None;
        };
        Some(IndexEntry {
            id: id.to_owned(),
            created_at: described.created_at,
            receipt,
            parties: described.parties,
        })
    }

    /// The score rule of `/index_vcons` (api.md §5.24).
    fn score(&self) -> IndexScore {
        match self.created_at {
            Some(created_at) => IndexScore::CreatedAt(created_at),
            None => IndexScore::KeepOr(self.receipt),
        }
    }
}

/// How a vCon's sorted-set score is written.
#[derive(Debug, Clone, Copy)]
enum IndexScore {
    /// The vCon's created-at instant: replaces the score (`ZADD`).
    CreatedAt(i64),
    /// An encrypted (or undated) vCon: keep an existing score, else this one (`ZADD NX`).
    KeepOr(i64),
}

/// Cache a vCon read back from a storage or produced by a link (api.md §4, redis.md §5,
/// modules.md §1.2): written and indexed as a posted one would be (TTL `vcon_ttl` unless it is
/// pending), without queueing it. What it is indexed by comes from the document.
pub async fn recache(store: &dyn Store, vcon: &mut crate::vcon::Document) -> StoreResult<()> {
    let (created_at, parties) = vcon.indexed();
    let uuid = vcon.uuid();
    let write = VconWrite {
        uuid,
        text: vcon.text(),
        score: created_at.unwrap_or_else(|| chrono::Utc::now().timestamp()),
        parties: &parties,
    };
    store.put_vcon(write, &[]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asked_ttl_zero_is_never_and_huge_is_a_century() {
        assert_eq!(asked_ttl(0), -1);
        assert_eq!(asked_ttl(60), 60);
        assert_eq!(asked_ttl(u64::MAX), LONGEST_TTL as i64);
    }

    #[test]
    fn never_is_the_longest_ttl() {
        assert_eq!(longest_ttl(100, 50), 100);
        assert_eq!(longest_ttl(50, 100), 100);
        assert_eq!(longest_ttl(-1, 100), -1);
        assert_eq!(longest_ttl(100, -1), -1);
    }

    #[test]
    fn missing_counts_as_halted() {
        assert_eq!(RunOutcome::Processed.stats_field(), "processed");
        assert_eq!(RunOutcome::Halted.stats_field(), "halted");
        assert_eq!(RunOutcome::Missing.stats_field(), "halted");
        assert_eq!(RunOutcome::Failed.stats_field(), "failed");
    }

    #[test]
    fn egress_pending_record_shape() {
        let egress = [
            Push {
                list: "out".into(),
                enqueue: false,
            },
            Push {
                list: "next".into(),
                enqueue: true,
            },
        ];
        let record = EgressPending::new("main", &egress, &["s3".to_owned()]);
        assert_eq!(
            record.to_text(),
            r#"{"chain":"main","egress_lists":["out","next"],"storages":["s3"]}"#
        );
    }
}
