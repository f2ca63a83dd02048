//! The store: every Redis operation the product needs, in product terms (spec/redis.md).
//! `redis` is the production implementation, `memory` the embedded default with the same
//! semantics; `keys` is the only place key names are made. One conformance suite
//! (tests/store_conformance.rs) runs against both.
//!
//! OWNER: store helper. The trait below is the interface the API uses; signatures are fixed.

pub mod keys;
pub mod memory;
pub mod redis;

use async_trait::async_trait;
use uuid::Uuid;

use crate::vcon::PartyIndex;

/// Settings of the store that come from the `redis` config section.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub key_prefix: String,
    pub sorted_set: String,
    /// Seconds; 0 = never.
    pub vcon_ttl: u64,
    pub dlq_ttl: u64,
    pub index_ttl: u64,
    pub json_module: bool,
}

/// A vCon to write into the cache and indexes.
#[derive(Debug, Clone, Copy)]
pub struct VconWrite<'a> {
    pub uuid: Uuid,
    /// The exact text to store.
    pub text: &'a str,
    /// Score in the created-at sorted set: Unix seconds.
    pub score: i64,
    pub parties: &'a PartyIndex,
}

/// `GET /vcon` paging: `ZREVRANGEBYSCORE <until|+inf> <since|-inf> LIMIT offset count`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListQuery {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub offset: u64,
    pub count: u64,
}

/// Exact-match search terms; `None` = not given, `Some("")` = given empty (matches nothing).
#[derive(Debug, Clone, Default)]
pub struct SearchTerms {
    pub tel: Option<String>,
    pub mailto: Option<String>,
    pub name: Option<String>,
}

/// The lists and storages of one chain, for [`Store::chain_status`].
#[derive(Debug, Clone)]
pub struct ChainLists<'a> {
    pub name: &'a str,
    pub ingress_lists: &'a [String],
    pub egress_lists: &'a [String],
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
    pub processed: u64,
    pub halted: u64,
    pub failed: u64,
    /// `(storage, depth of DLQ:storage:<name>)` per storage.
    pub storage_dlq: Vec<(String, u64)>,
}

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
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

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
