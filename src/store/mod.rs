//! The store: every Redis operation the product needs, in product terms (spec/redis.md).
//! `redis` is the production implementation, `memory` the embedded default with the same
//! semantics; `keys` is the only place key names are made. One conformance suite
//! (tests/integration/store_conformance.rs) runs against both.
//!
//! OWNER: store helper. The trait below is the interface the API uses; signatures are fixed.

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

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached (connection refused, reset, timed out): a 503.
    #[error("{0}")]
    Unavailable(String),
    /// The store answered with an error: a 500.
    #[error("{0}")]
    Backend(String),
}

impl StoreError {
    /// The store could not be reached (as opposed to answering with an error).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

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
}

/// The warning of config.md §11, logged the first time the embedded store is opened.
const EMBEDDED_STORE_WARNING: &str = "no Redis URL configured (redis.url / REDIS_URL): using the \
embedded in-memory store. Nothing survives a restart and no other process can share it.";

/// Opens the store the config asks for: Redis at `url`, or the embedded in-memory store when
/// there is no URL. A Redis that cannot be reached within the connection timeout is
/// [`StoreError::Unavailable`], so the server refuses to start with a clear message.
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
    text: String,
    receipt: i64,
) -> Option<IndexEntry> {
    let Some(id) = keys.vcon_id(key).filter(|id| Uuid::try_parse(id).is_ok()) else {
        tracing::warn!(
            key,
            "index_vcons: skipped a key whose name is not vcon:<uuid>"
        );
        return None;
    };
    let Some(described) = crate::vcon::describe(&text) else {
        tracing::warn!(
            key,
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

impl IndexEntry {
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
