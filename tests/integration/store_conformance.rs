//! The store conformance suite: each behaviour of `trait Store` (spec/redis.md, api.md §5) is
//! written once, as an async fn over a [`Harness`], and asserted through the trait against both
//! the embedded memory store and a real Redis, so the two cannot drift.
//!
//! What only the keys show (their names, TTLs and types, the pending hash, the sorted-set
//! members) is checked on Redis only, through a raw connection beside the store; so is what
//! only another writer of the keys can leave (a Python server's bare sorted-set member, a
//! `vcon:*` key of another type). Expiry is asserted through the trait on both, with TTLs of a
//! second or two.
//!
//! Redis comes from `CONSERVER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`; `scripts/test`
//! starts one). Every test uses its own random key prefix, so tests never collide with each
//! other or with a developer's data, and deletes its keys when it ends, even by a panic.
//!
//! The outage test starts a `redis-server` of its own on a free port, kills it and starts it
//! again.

use std::future::Future;
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conserver::store::keys::{Keys, PartyField};
use conserver::store::memory::MemoryStore;
use conserver::store::redis::RedisStore;
use conserver::store::{
    ChainLists, ChainStatus, EgressRelease, Finish, ListQuery, Push, RunOutcome, SearchTerms,
    Store, StoreError, StoreSettings, VconWrite,
};
use conserver::vcon::PartyIndex;
use redis::Value;
use uuid::Uuid;

/// Redis for the suite.
fn redis_url() -> String {
    std::env::var("CONSERVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The defaults of config.md §7.1, under `prefix`.
fn settings(prefix: &str) -> StoreSettings {
    StoreSettings {
        key_prefix: prefix.to_owned(),
        sorted_set: "vcons".to_owned(),
        vcon_ttl: 3600,
        dlq_ttl: 604_800,
        index_ttl: 86_400,
        json_module: false,
    }
}

/// Which implementation a test runs against.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Redis,
}

/// One test's store, its key names and settings, and on Redis the raw access beside it.
struct Harness {
    store: Arc<dyn Store>,
    redis: Option<Raw>,
    keys: Keys,
    settings: StoreSettings,
}

/// Direct access to the Redis keys behind a store: to inspect what the trait does not show, and
/// to seed what only another writer leaves.
struct Raw {
    connection: redis::aio::MultiplexedConnection,
    keys: Keys,
    sorted_set: String,
}

impl Harness {
    async fn open(backend: Backend, tweak: fn(&mut StoreSettings)) -> Harness {
        let prefix = format!("test-{}:", Uuid::new_v4());
        let mut settings = settings(&prefix);
        tweak(&mut settings);
        let keys = Keys::new(prefix);
        match backend {
            Backend::Memory => Harness {
                store: Arc::new(MemoryStore::new(settings.clone())),
                redis: None,
                keys,
                settings,
            },
            Backend::Redis => {
                let url = redis_url();
                let store = RedisStore::connect(&url, settings.clone())
                    .await
                    .unwrap_or_else(|error| {
                        panic!("Redis at {url} is not reachable ({error}): start it, or run scripts/test")
                    });
                let client = redis::Client::open(url.as_str()).unwrap();
                let raw = Raw {
                    connection: client.get_multiplexed_async_connection().await.unwrap(),
                    keys: keys.clone(),
                    sorted_set: keys.sorted_set(&settings.sorted_set),
                };
                Harness {
                    store: Arc::new(store),
                    redis: Some(raw),
                    keys,
                    settings,
                }
            }
        }
    }

    /// The raw keys, on Redis; `None` on the memory store.
    fn redis(&self) -> Option<&Raw> {
        self.redis.as_ref()
    }

    /// The raw keys of a Redis-only test.
    fn raw(&self) -> &Raw {
        self.redis().expect("a Redis-only test runs on Redis")
    }

    async fn put(&self, uuid: Uuid, text: &str, score: i64, parties: &PartyIndex, lists: &[&str]) {
        let lists: Vec<String> = lists.iter().map(|list| list.to_string()).collect();
        let write = VconWrite {
            uuid,
            text,
            score,
            parties,
        };
        self.store.put_vcon(write, &lists).await.unwrap();
    }

    /// Puts a vCon with a simple text and no parties.
    async fn put_plain(&self, uuid: Uuid, score: i64, lists: &[&str]) {
        let text = vcon_text(uuid, "2024-01-01T00:00:00Z", &[]);
        self.put(uuid, &text, score, &PartyIndex::default(), lists)
            .await;
    }

    /// Whether `vcon:<uuid>` is there.
    async fn has(&self, uuid: Uuid) -> bool {
        self.store.get_vcon(uuid).await.unwrap().is_some()
    }

    /// The uuids `GET /vcon` lists with a score in `scores`, newest first.
    async fn listed(&self, scores: RangeInclusive<i64>) -> Vec<String> {
        let query = ListQuery {
            since: Some(*scores.start()),
            until: Some(*scores.end()),
            offset: 0,
            count: 1000,
        };
        self.store.list_vcons(query).await.unwrap()
    }

    /// Asserts that the created-at score of `uuid` is in `scores`; on Redis, as the score of
    /// the member `vcon:<uuid>`.
    async fn assert_score(&self, uuid: Uuid, scores: RangeInclusive<i64>) {
        let listed = self.listed(scores.clone()).await;
        assert!(
            listed.contains(&uuid.to_string()),
            "{uuid} not listed with a score in {scores:?}: {listed:?}"
        );
        if let Some(redis) = self.redis() {
            let score = redis.score(&format!("vcon:{uuid}")).await;
            assert!(
                score.is_some_and(|score| scores.contains(&score)),
                "{score:?}"
            );
        }
    }

    /// Asserts the counters of the chain `main`: through `chain_status`, and on Redis as the
    /// fields of its stats hash (those above 0, no others).
    async fn assert_counters(&self, processed: u64, halted: u64, failed: u64) {
        let none: [String; 0] = [];
        let chain = ChainLists {
            name: "main",
            ingress_lists: &none,
            egress_lists: &none,
            storages: &none,
        };
        let status = self.store.chain_status(chain).await.unwrap();
        assert_eq!(
            (status.processed, status.halted, status.failed),
            (processed, halted, failed)
        );
        if let Some(redis) = self.redis() {
            let expected: Vec<(String, String)> = [
                ("failed", failed),
                ("halted", halted),
                ("processed", processed),
            ]
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|(field, count)| (field.to_owned(), count.to_string()))
            .collect();
            assert_eq!(redis.hash(&self.keys.chain_stats("main")).await, expected);
        }
    }
}

impl Raw {
    /// Runs one Redis command.
    async fn cmd(&self, args: &[&str]) -> Value {
        let mut connection = self.connection.clone();
        redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{args:?}: {error}"))
    }

    async fn ttl(&self, key: &str) -> i64 {
        int(self.cmd(&["TTL", key]).await)
    }

    /// `SET key <bytes>`: a value that is not text.
    async fn set_bytes(&self, key: &str, bytes: &[u8]) {
        let mut connection = self.connection.clone();
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(bytes)
            .query_async(&mut connection)
            .await
            .unwrap();
    }

    async fn exists(&self, key: &str) -> bool {
        int(self.cmd(&["EXISTS", key]).await) == 1
    }

    async fn pending_count(&self, uuid: Uuid) -> Option<i64> {
        let count = self.cmd(&["HGET", &self.keys.pending(uuid), "count"]).await;
        text(count).map(|count| count.parse().unwrap())
    }

    async fn score(&self, member: &str) -> Option<i64> {
        let score = self.cmd(&["ZSCORE", &self.sorted_set, member]).await;
        text(score).map(|score| score.parse().unwrap())
    }

    /// `LRANGE key 0 -1`.
    async fn list_items(&self, key: &str) -> Vec<String> {
        texts(self.cmd(&["LRANGE", key, "0", "-1"]).await)
    }

    /// `HGETALL key` as sorted `(field, value)` pairs.
    async fn hash(&self, key: &str) -> Vec<(String, String)> {
        let flat = texts(self.cmd(&["HGETALL", key]).await);
        let mut pairs: Vec<(String, String)> = flat
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        pairs.sort();
        pairs
    }
}

impl Drop for Harness {
    /// Deletes the test's keys from Redis (best effort, also after a panic).
    fn drop(&mut self) {
        if self.redis.is_some() {
            delete_prefixed(&redis_url(), self.keys.prefix());
        }
    }
}

/// Deletes every key under `prefix` through a blocking connection (usable from `Drop`).
fn delete_prefixed(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return;
    };
    let keys: Vec<String> = match redis::Commands::scan_match(&mut connection, format!("{prefix}*"))
    {
        Ok(keys) => keys.filter_map(Result::ok).collect(),
        Err(_) => return,
    };
    for batch in keys.chunks(500) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(batch).query(&mut connection);
    }
}

fn int(value: Value) -> i64 {
    match value {
        Value::Int(value) => value,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::Nil => None,
        Value::BulkString(bytes) => Some(String::from_utf8(bytes).unwrap()),
        Value::SimpleString(text) => Some(text),
        Value::Double(number) => Some(number.to_string()),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn texts(value: Value) -> Vec<String> {
    match value {
        Value::Nil => Vec::new(),
        Value::Array(items) => items.into_iter().filter_map(text).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// A small unsigned vCon; parties are `(tel, name)` pairs.
fn vcon_text(uuid: Uuid, created_at: &str, parties: &[(&str, &str)]) -> String {
    let parties: Vec<serde_json::Value> = parties
        .iter()
        .map(|(tel, name)| serde_json::json!({"tel": tel, "name": name}))
        .collect();
    serde_json::json!({
        "vcon": "0.0.1",
        "uuid": uuid.to_string(),
        "created_at": created_at,
        "parties": parties,
        "dialog": [],
    })
    .to_string()
}

fn parties(tel: &[&str], name: &[&str]) -> PartyIndex {
    PartyIndex {
        tel: tel.iter().map(|value| value.to_string()).collect(),
        mailto: Vec::new(),
        name: name.iter().map(|value| value.to_string()).collect(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// Uuids in ascending text order, so expected results can be written down.
fn sorted_uuids(count: usize) -> Vec<Uuid> {
    let mut uuids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    uuids.sort_by_key(|uuid| uuid.to_string());
    uuids
}

/// Waits past a TTL of a test (Redis and the memory store expire to the millisecond).
async fn sleep(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
}

/// Opens a harness and runs one behaviour on it.
async fn run<F, Fut>(backend: Backend, tweak: fn(&mut StoreSettings), test: F)
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = ()>,
{
    let harness = Arc::new(Harness::open(backend, tweak).await);
    test(harness).await;
}

/// Declares each behaviour of `both` once per backend, `memory::<name>` and
/// `real_redis::<name>`, and each of `redis_only` as `real_redis::<name>`; `with` gives the
/// settings a behaviour needs.
macro_rules! conformance {
    (@tweak) => { |_| {} };
    (@tweak $tweak:expr) => { $tweak };
    (@test $backend:ident $name:ident $($tweak:expr)?) => {
        #[tokio::test]
        async fn $name() {
            let tweak: fn(&mut conserver::store::StoreSettings) =
                conformance!(@tweak $($tweak)?);
            super::run(super::Backend::$backend, tweak, super::$name).await;
        }
    };
    (
        both { $($name:ident $(with $tweak:expr)?;)* }
        redis_only { $($only:ident $(with $only_tweak:expr)?;)* }
    ) => {
        mod memory {
            $( conformance!(@test Memory $name $($tweak)?); )*
        }
        mod real_redis {
            $( conformance!(@test Redis $name $($tweak)?); )*
            $( conformance!(@test Redis $only $($only_tweak)?); )*
        }
    };
}

conformance! {
    both {
        kind_and_ping;
        put_get_round_trip_keeps_the_exact_text;
        no_ttl_when_enqueued;
        vcon_ttl_zero_means_no_ttl with |settings| settings.vcon_ttl = 0;
        a_vcon_expires_only_when_nothing_holds_it with |settings| settings.vcon_ttl = 1;
        list_vcons_order_bounds_paging_and_bare_members;
        party_index_search_and_semantics;
        party_sets_expire_unless_an_addition_renews_them with |settings| settings.index_ttl = 2;
        enqueue_protocol_raises_the_pending_count;
        pop_front_order_and_limit;
        dlq_items_and_reprocess;
        storage_dlq_items;
        chain_status_numbers;
        delete_cleans_the_indexes;
        index_all_rebuilds_from_the_keys;
        get_vcons_order_with_misses;
        claim_takes_the_oldest_into_the_processing_list;
        claim_waits_then_returns_none;
        claim_wakes_when_an_item_is_pushed;
        write_back_replaces_the_text;
        finish_processed_pushes_egress_and_routes_then_acknowledges;
        finish_failed_dead_letters_the_item;
        finish_halted_and_missing_count_as_halted;
        finish_with_a_dead_lettered_storage_holds_the_egress_back;
        ttl_step_keeps_the_longest_and_applies_it_at_the_last_run;
        the_ttl_step_decides_when_a_vcon_expires;
        a_held_item_is_returned_to_the_head_once;
        recover_moves_items_back_to_the_head_oldest_first;
        dead_instances_are_those_without_a_heartbeat;
        heartbeat_registers_again_after_expiry;
        storage_dlq_done_releases_the_egress_after_the_last_storage;
        storage_dlq_done_without_release_only_removes_the_entry;
        blobs_with_and_without_ttl;
        heartbeats_egress_records_and_blobs_expire with |settings| settings.dlq_ttl = 1;
    }
    redis_only {
        vcon_ttl_applies_when_nothing_holds_the_vcon;
        no_ttl_while_pending;
        sorted_set_member_form_replaces_a_bare_member;
        keys_carry_the_prefix;
        a_vcon_key_of_another_type_reads_as_missing;
        claim_moves_into_processing_and_takes_the_vcon_in_hand;
        egress_record_without_ttl_when_dlq_ttl_is_zero with |settings| settings.dlq_ttl = 0;
        ttl_step_zero_means_never;
        ttl_step_for_a_vcon_without_a_pending_count;
        ttl_step_of_a_replaced_vcon_settles_the_one_taken;
    }
}

async fn kind_and_ping(h: Arc<Harness>) {
    assert!(["memory", "redis"].contains(&h.store.kind()));
    h.store.ping().await.unwrap();
}

async fn put_get_round_trip_keeps_the_exact_text(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    // Not canonical JSON on purpose: key order, escapes and unicode must survive as sent.
    let text = format!(
        r#"{{"z":1,"uuid":"{uuid}","a":"\u00e9 é 💬","n":1.50,"parties":[{{"name":"\"q\""}}]}}"#
    );
    h.put(uuid, &text, 1_700_000_000, &PartyIndex::default(), &[])
        .await;
    assert_eq!(
        h.store.get_vcon(uuid).await.unwrap().as_deref(),
        Some(text.as_str())
    );
    assert_eq!(h.store.get_vcon(Uuid::new_v4()).await.unwrap(), None);

    // A second put replaces the text.
    h.put(uuid, "{}", 1_700_000_000, &PartyIndex::default(), &[])
        .await;
    assert_eq!(h.store.get_vcon(uuid).await.unwrap().as_deref(), Some("{}"));
}

async fn vcon_ttl_applies_when_nothing_holds_the_vcon(h: Arc<Harness>) {
    let redis = h.raw();
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &[]).await;
    let ttl = redis.ttl(&h.keys.vcon(uuid)).await;
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
    assert_eq!(redis.pending_count(uuid).await, None);
}

async fn no_ttl_when_enqueued(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &["calls", "archive"]).await;
    if let Some(redis) = h.redis() {
        assert_eq!(redis.ttl(&h.keys.vcon(uuid)).await, -1);
        assert_eq!(redis.pending_count(uuid).await, Some(2));
    }
    assert_eq!(h.store.list_len("calls").await.unwrap(), 1);
    assert_eq!(h.store.list_len("archive").await.unwrap(), 1);
    assert_eq!(
        h.store.pop_front("calls", 5).await.unwrap(),
        [uuid.to_string()]
    );
}

async fn no_ttl_while_pending(h: Arc<Harness>) {
    let redis = h.raw();
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &["calls"]).await;
    // Re-posted (or re-cached) without lists while still queued: no TTL.
    h.put_plain(uuid, 1, &[]).await;
    assert_eq!(redis.ttl(&h.keys.vcon(uuid)).await, -1);
    assert_eq!(redis.pending_count(uuid).await, Some(1));

    // Once nothing is pending (count ≤ 0), the TTL applies again.
    redis
        .cmd(&["HINCRBY", &h.keys.pending(uuid), "count", "-1"])
        .await;
    h.put_plain(uuid, 1, &[]).await;
    let ttl = redis.ttl(&h.keys.vcon(uuid)).await;
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
}

async fn vcon_ttl_zero_means_no_ttl(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &[]).await;
    if let Some(redis) = h.redis() {
        assert_eq!(redis.ttl(&h.keys.vcon(uuid)).await, -1);
    }
    assert!(h.has(uuid).await);
}

async fn a_vcon_expires_only_when_nothing_holds_it(h: Arc<Harness>) {
    // `vcon_ttl` is 1 s here.
    let free = Uuid::new_v4();
    h.put_plain(free, 1, &[]).await;
    let queued = Uuid::new_v4();
    h.put_plain(queued, 1, &["calls"]).await;
    // Re-posted without lists while a run is pending: no TTL.
    let pending = Uuid::new_v4();
    h.put_plain(pending, 1, &["archive"]).await;
    h.put_plain(pending, 1, &[]).await;
    // Pushed without the enqueue protocol (an egress list no chain reads) with a TTL of 1 s:
    // a claim takes it in hand, so it does not expire in flight.
    let (claimed, unclaimed) = (Uuid::new_v4(), Uuid::new_v4());
    for (uuid, list) in [(claimed, "plain"), (unclaimed, "elsewhere")] {
        h.put_plain(uuid, 1, &[]).await;
        let id = uuid.to_string();
        let egress = [push(list, false)];
        let finish = Finish {
            egress: &egress,
            decrement: false,
            ..finish_of(&id, RunOutcome::Processed, 1)
        };
        h.store.finish(&finish).await.unwrap();
    }
    let item = h.store.claim("plain", INSTANCE, Duration::ZERO).await;
    assert_eq!(item.unwrap(), Some(claimed.to_string()));

    sleep(1.5).await;
    assert!(!h.has(free).await);
    assert!(!h.has(unclaimed).await);
    assert_eq!(
        h.store.list_len("elsewhere").await.unwrap(),
        1,
        "lists keep the uuids of expired vCons"
    );
    for uuid in [queued, pending, claimed] {
        assert!(h.has(uuid).await, "{uuid} expired");
    }
    // The created-at index is never trimmed: an expired vCon stays listed.
    let all = h.listed(i64::MIN..=i64::MAX).await;
    assert!(all.contains(&free.to_string()), "{all:?}");
}

async fn sorted_set_member_form_replaces_a_bare_member(h: Arc<Harness>) {
    let redis = h.raw();
    let uuid = Uuid::new_v4();
    let sorted_set = h.keys.sorted_set("vcons");
    // The Python server's re-caching writes the bare uuid.
    redis
        .cmd(&["ZADD", &sorted_set, "5", &uuid.to_string()])
        .await;
    h.put_plain(uuid, 1_700_000_123, &[]).await;
    assert_eq!(
        redis.score(&format!("vcon:{uuid}")).await,
        Some(1_700_000_123)
    );
    assert_eq!(redis.score(&uuid.to_string()).await, None);
    // A later put moves the score.
    h.put_plain(uuid, 1_700_000_200, &[]).await;
    assert_eq!(
        redis.score(&format!("vcon:{uuid}")).await,
        Some(1_700_000_200)
    );
}

async fn list_vcons_order_bounds_paging_and_bare_members(h: Arc<Harness>) {
    let ids = sorted_uuids(5);
    let id = |index: usize| ids[index].to_string();
    h.put_plain(ids[0], 100, &[]).await;
    h.put_plain(ids[1], 200, &[]).await;
    h.put_plain(ids[2], 200, &[]).await;
    h.put_plain(ids[3], 300, &[]).await;
    match h.redis() {
        // A bare member written by the Python server is listed as is.
        Some(redis) => {
            redis
                .cmd(&["ZADD", &h.keys.sorted_set("vcons"), "250", &id(4)])
                .await;
        }
        // Only the store writes the embedded store's index.
        None => h.put_plain(ids[4], 250, &[]).await,
    }

    let list = |since, until, offset, count| {
        let h = h.clone();
        async move {
            let query = ListQuery {
                since,
                until,
                offset,
                count,
            };
            h.store.list_vcons(query).await.unwrap()
        }
    };
    // Newest first; equal scores in reverse byte order of the member.
    assert_eq!(
        list(None, None, 0, 50).await,
        [id(3), id(4), id(2), id(1), id(0)]
    );
    // Bounds are inclusive.
    assert_eq!(
        list(Some(200), Some(250), 0, 50).await,
        [id(4), id(2), id(1)]
    );
    assert_eq!(list(Some(201), None, 0, 50).await, [id(3), id(4)]);
    assert_eq!(list(None, Some(100), 0, 50).await, [id(0)]);
    // Paging.
    assert_eq!(list(None, None, 1, 2).await, [id(4), id(2)]);
    assert_eq!(list(None, None, 4, 2).await, [id(0)]);
    assert!(list(None, None, 5, 2).await.is_empty());
    assert!(list(None, None, 0, 0).await.is_empty());
    assert!(list(Some(400), None, 0, 50).await.is_empty());
    // A later put moves the score.
    h.put_plain(ids[0], 400, &[]).await;
    assert_eq!(list(Some(400), None, 0, 50).await, [id(0)]);
    assert_eq!(list(None, Some(100), 0, 50).await, Vec::<String>::new());
}

async fn party_index_search_and_semantics(h: Arc<Harness>) {
    let ids = sorted_uuids(2);
    let (a, b) = (ids[0], ids[1]);
    h.put(a, "{}", 1, &parties(&["+1 555 0100"], &["Alice"]), &[])
        .await;
    h.put(b, "{}", 2, &parties(&["+1 555 0100"], &["Bob"]), &[])
        .await;
    let search = |tel: Option<&str>, mailto: Option<&str>, name: Option<&str>| {
        let h = h.clone();
        let terms = SearchTerms {
            tel: tel.map(str::to_owned),
            mailto: mailto.map(str::to_owned),
            name: name.map(str::to_owned),
        };
        async move { h.store.search(&terms).await.unwrap() }
    };
    assert_eq!(
        search(Some("+1 555 0100"), None, None).await,
        [a.to_string(), b.to_string()]
    );
    assert_eq!(
        search(Some("+1 555 0100"), None, Some("Alice")).await,
        [a.to_string()]
    );
    assert_eq!(search(None, None, Some("Bob")).await, [b.to_string()]);
    // AND semantics: a term that matches nobody empties the result.
    assert!(search(Some("+1 555 0100"), None, Some("Nobody"))
        .await
        .is_empty());
    assert!(search(Some("+1 555 0100"), Some("x@y"), None)
        .await
        .is_empty());
    // Values are exact: no normalisation.
    assert!(search(Some("+15550100"), None, None).await.is_empty());
    // An empty value matches nothing; no term matches nothing.
    assert!(search(Some(""), None, None).await.is_empty());
    assert!(search(Some("+1 555 0100"), None, Some("")).await.is_empty());
    assert!(search(None, None, None).await.is_empty());

    if let Some(redis) = h.redis() {
        let set = h.keys.party(PartyField::Tel, "+1 555 0100");
        let ttl = redis.ttl(&set).await;
        assert!((86_390..=86_400).contains(&ttl), "index ttl {ttl}");
    }
}

async fn party_sets_expire_unless_an_addition_renews_them(h: Arc<Harness>) {
    // `index_ttl` is 2 s here.
    let ids = sorted_uuids(2);
    let (a, b) = (ids[0], ids[1]);
    let search = |tel: Option<&str>, name: Option<&str>| {
        let h = h.clone();
        let terms = SearchTerms {
            tel: tel.map(str::to_owned),
            name: name.map(str::to_owned),
            ..SearchTerms::default()
        };
        async move { h.store.search(&terms).await.unwrap() }
    };
    h.put(a, "{}", 1, &parties(&["+1 555 0100"], &["Alice"]), &[])
        .await;
    sleep(1.0).await;
    // Renews the tel set (its TTL, for every member), not Alice's name set.
    h.put(b, "{}", 2, &parties(&["+1 555 0100"], &[]), &[])
        .await;
    sleep(1.5).await;
    assert_eq!(
        search(Some("+1 555 0100"), None).await,
        [a.to_string(), b.to_string()]
    );
    assert!(search(None, Some("Alice")).await.is_empty());
    sleep(1.0).await;
    assert!(search(Some("+1 555 0100"), None).await.is_empty());
    // The vCons themselves are not the index's.
    assert!(h.has(a).await && h.has(b).await);
}

async fn enqueue_protocol_raises_the_pending_count(h: Arc<Harness>) {
    let ids = sorted_uuids(2);
    let (a, b) = (ids[0], ids[1]);
    h.put_plain(a, 1, &[]).await;
    if let Some(redis) = h.redis() {
        assert!(redis.ttl(&h.keys.vcon(a)).await > 0);
    }

    h.store.enqueue("calls", &[a, b]).await.unwrap();
    if let Some(redis) = h.redis() {
        // PERSIST: a queued vCon cannot expire.
        assert_eq!(redis.ttl(&h.keys.vcon(a)).await, -1);
        assert_eq!(redis.pending_count(a).await, Some(1));
        assert_eq!(redis.pending_count(b).await, Some(1));
        let pending_ttl = redis.ttl(&h.keys.pending(a)).await;
        assert!(
            (2_591_990..=2_592_000).contains(&pending_ttl),
            "pending ttl {pending_ttl}"
        );
    }

    h.store.enqueue("calls", &[a]).await.unwrap();
    if let Some(redis) = h.redis() {
        assert_eq!(redis.pending_count(a).await, Some(2));
    }
    assert_eq!(h.store.list_len("calls").await.unwrap(), 3);

    h.store.enqueue("calls", &[]).await.unwrap();
    assert_eq!(h.store.list_len("calls").await.unwrap(), 3);
    assert_eq!(h.store.list_len("nothing").await.unwrap(), 0);
    assert_eq!(
        h.store.pop_front("calls", 10).await.unwrap(),
        [a.to_string(), b.to_string(), a.to_string()]
    );
}

async fn pop_front_order_and_limit(h: Arc<Harness>) {
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    h.store.enqueue("egress", &ids).await.unwrap();
    assert!(h.store.pop_front("egress", 0).await.unwrap().is_empty());
    assert_eq!(
        h.store.pop_front("egress", 2).await.unwrap(),
        [ids[0].to_string(), ids[1].to_string()]
    );
    assert_eq!(
        h.store.pop_front("egress", 5).await.unwrap(),
        [ids[2].to_string()]
    );
    assert!(h.store.pop_front("egress", 5).await.unwrap().is_empty());
    assert_eq!(h.store.list_len("egress").await.unwrap(), 0);
    if let Some(redis) = h.redis() {
        assert!(!redis.exists(&h.keys.list("egress")).await);
    }
}

async fn dlq_items_and_reprocess(h: Arc<Harness>) {
    let ids = sorted_uuids(3);
    let id = |index: usize| ids[index].to_string();
    // Three failed runs from `calls`: dead-lettered, with the DLQ's TTL and no pending count.
    for uuid in &ids {
        h.put_plain(*uuid, 1, &["calls"]).await;
        let taken = h.store.claim("calls", INSTANCE, Duration::ZERO).await;
        assert_eq!(taken.unwrap(), Some(uuid.to_string()));
        let item = uuid.to_string();
        let finish = finish_of(&item, RunOutcome::Failed, h.settings.dlq_ttl);
        h.store.finish(&finish).await.unwrap();
    }
    let waiting = Uuid::new_v4();
    h.store.enqueue("calls", &[waiting]).await.unwrap();

    assert_eq!(
        h.store.dlq_items("calls").await.unwrap(),
        [id(0), id(1), id(2)]
    );
    assert!(h.store.dlq_items("other").await.unwrap().is_empty());

    assert_eq!(h.store.dlq_reprocess("calls", 0).await.unwrap(), 0);
    assert_eq!(h.store.dlq_reprocess("calls", 2).await.unwrap(), 2);
    assert_eq!(h.store.dlq_items("calls").await.unwrap(), [id(2)]);
    // The DLQ is the list `DLQ:calls`, as the list routes (`/vcon/count`, `/vcon/egress`) see it.
    assert_eq!(h.store.list_len("DLQ:calls").await.unwrap(), 1);
    if let Some(redis) = h.redis() {
        // Moved from the head of the DLQ to the tail of the list, after the pending bump.
        let list = redis.list_items(&h.keys.list("calls")).await;
        assert_eq!(list, [waiting.to_string(), id(0), id(1)]);
        assert_eq!(redis.pending_count(ids[0]).await, Some(1));
        assert_eq!(redis.ttl(&h.keys.vcon(ids[0])).await, -1);
        assert_eq!(redis.pending_count(ids[2]).await, None);
        assert!(redis.ttl(&h.keys.vcon(ids[2])).await > 0);
    }

    assert_eq!(h.store.dlq_reprocess("calls", 10).await.unwrap(), 1);
    assert_eq!(h.store.dlq_reprocess("calls", 10).await.unwrap(), 0);
    assert!(h.store.dlq_items("calls").await.unwrap().is_empty());
    assert_eq!(h.store.list_len("calls").await.unwrap(), 4);
    assert_eq!(
        h.store.pop_front("calls", 10).await.unwrap(),
        [waiting.to_string(), id(0), id(1), id(2)]
    );
}

async fn storage_dlq_items(h: Arc<Harness>) {
    // Two runs whose write to `s3` was dead-lettered.
    let failed = strings(&["s3"]);
    let mut items = Vec::new();
    for _ in 0..2 {
        let item = claimed(&h).await;
        let finish = Finish {
            failed_storages: &failed,
            ..finish_of(&item, RunOutcome::Processed, h.settings.dlq_ttl)
        };
        h.store.finish(&finish).await.unwrap();
        items.push(item);
    }
    assert_eq!(h.store.storage_dlq_items("s3").await.unwrap(), items);
    assert_eq!(h.store.list_len("DLQ:storage:s3").await.unwrap(), 2);
    assert!(h
        .store
        .storage_dlq_items("removed")
        .await
        .unwrap()
        .is_empty());
    // Reading leaves the list as it was.
    assert_eq!(h.store.storage_dlq_items("s3").await.unwrap(), items);
}

async fn chain_status_numbers(h: Arc<Harness>) {
    let claim = |list: &'static str, instance: &'static str, times: usize| {
        let h = h.clone();
        async move {
            for _ in 0..times {
                let taken = h.store.claim(list, instance, Duration::ZERO).await;
                assert!(taken.unwrap().is_some(), "{list} is empty");
            }
        }
    };
    let fresh = |count: usize| (0..count).map(|_| Uuid::new_v4()).collect::<Vec<_>>();
    // `in1` gets ten: two taken by a live instance, five by a dead one, three left.
    h.store.enqueue("in1", &fresh(10)).await.unwrap();
    h.store.register_instance("live", "{}", 30).await.unwrap();
    claim("in1", "live", 2).await;
    h.store.enqueue("in2", &fresh(1)).await.unwrap();
    claim("in2", "live", 1).await;
    h.store.enqueue("other", &fresh(1)).await.unwrap();
    claim("other", "live", 1).await; // not this chain's
    h.store.register_instance("dead", "{}", 30).await.unwrap();
    claim("in1", "dead", 5).await;
    h.store.deregister_instance("dead").await.unwrap(); // its heartbeat is gone
    h.store.enqueue("out", &fresh(1)).await.unwrap();
    // Runs of the chain: three failed (one from in1, two from in2), two halted, and eighteen
    // processed, two of them with their write to `pg` dead-lettered.
    let (pg, none): (&[String], &[String]) = (&strings(&["pg"]), &[]);
    let runs: Vec<(&str, RunOutcome, &[String])> = [("in1", RunOutcome::Failed, none)]
        .into_iter()
        .chain([("in2", RunOutcome::Failed, none); 2])
        .chain([("in1", RunOutcome::Halted, none); 2])
        .chain([("in1", RunOutcome::Processed, pg); 2])
        .chain([("in1", RunOutcome::Processed, none); 16])
        .collect();
    for (list, outcome, failed_storages) in runs {
        let item = Uuid::new_v4().to_string();
        let finish = Finish {
            ingress_list: list,
            instance_id: "finisher",
            failed_storages,
            ..finish_of(&item, outcome, 60)
        };
        h.store.finish(&finish).await.unwrap();
    }

    let ingress = strings(&["in1", "in2"]);
    let egress = strings(&["out", "out2"]);
    let storages = strings(&["s3", "pg"]);
    let chain = ChainLists {
        name: "main",
        ingress_lists: &ingress,
        egress_lists: &egress,
        storages: &storages,
    };
    let status = h.store.chain_status(chain).await.unwrap();
    assert_eq!(
        status,
        ChainStatus {
            ingress: vec![("in1".into(), 3, 1), ("in2".into(), 0, 2)],
            egress: vec![("out".into(), 1), ("out2".into(), 0)],
            in_flight: 3,
            processed: 18,
            halted: 2,
            failed: 3,
            storage_dlq: vec![("s3".into(), 0), ("pg".into(), 2)],
        }
    );

    let none: [String; 0] = [];
    let empty = ChainLists {
        name: "unknown",
        ingress_lists: &none,
        egress_lists: &none,
        storages: &none,
    };
    assert_eq!(
        h.store.chain_status(empty).await.unwrap(),
        ChainStatus::default()
    );
}

async fn delete_cleans_the_indexes(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    let who = parties(&["+1 555 0100"], &["Alice"]);
    h.put(uuid, "{}", 10, &who, &[]).await;
    let other = Uuid::new_v4();
    h.put(other, "{}", 20, &who, &[]).await;
    if let Some(redis) = h.redis() {
        // Also a bare member of the same uuid, as the Python server writes it.
        redis
            .cmd(&["ZADD", &h.keys.sorted_set("vcons"), "5", &uuid.to_string()])
            .await;
    }

    h.store.delete_vcon(uuid, &who).await.unwrap();
    assert_eq!(h.store.get_vcon(uuid).await.unwrap(), None);
    if let Some(redis) = h.redis() {
        assert_eq!(redis.score(&format!("vcon:{uuid}")).await, None);
        assert_eq!(redis.score(&uuid.to_string()).await, None);
    }
    let all = ListQuery {
        count: 50,
        ..ListQuery::default()
    };
    assert_eq!(h.store.list_vcons(all).await.unwrap(), [other.to_string()]);
    let terms = SearchTerms {
        name: Some("Alice".into()),
        ..SearchTerms::default()
    };
    assert_eq!(h.store.search(&terms).await.unwrap(), [other.to_string()]);

    // Deleting what does not exist is not an error.
    h.store
        .delete_vcon(Uuid::new_v4(), &PartyIndex::default())
        .await
        .unwrap();
}

async fn index_all_rebuilds_from_the_keys(h: Arc<Harness>) {
    let ids = sorted_uuids(3);
    let (a, b, encrypted) = (ids[0], ids[1], ids[2]);
    // 2023-11-14T22:13:20Z = 1_700_000_000
    let text_a = vcon_text(a, "2023-11-14T22:13:20Z", &[("+1 555 0100", "Alice")]);
    h.put(a, &text_a, 1, &PartyIndex::default(), &[]).await;
    // Written without the indexes (by a Python server, a restore): only the vCon exists.
    let text_b = vcon_text(b, "2023-11-14T22:13:30Z", &[("+1 555 0100", "Bob")]);
    h.store.write_back(b, &text_b).await.unwrap();
    // Encrypted: keeps its existing score.
    let text_e = format!(r#"{{"uuid":"{encrypted}","ciphertext":"xyz","recipients":[{{}}]}}"#);
    h.put(encrypted, &text_e, 42, &PartyIndex::default(), &[])
        .await;
    // Not vCons: skipped.
    h.store
        .write_back(Uuid::new_v4(), "not json")
        .await
        .unwrap();
    if let Some(redis) = h.redis() {
        // A key no store writes: its name is not vcon:<uuid>.
        redis.cmd(&["SET", &h.keys.vcon("not-a-uuid"), "{}"]).await;
    }
    // Not `vcon:*` keys: never read.
    h.store.enqueue("calls", &[a]).await.unwrap();

    assert_eq!(h.store.index_all().await.unwrap(), 3);
    h.assert_score(a, 1_700_000_000..=1_700_000_000).await;
    h.assert_score(b, 1_700_000_010..=1_700_000_010).await;
    h.assert_score(encrypted, 42..=42).await;
    let terms = SearchTerms {
        tel: Some("+1 555 0100".into()),
        ..SearchTerms::default()
    };
    assert_eq!(
        h.store.search(&terms).await.unwrap(),
        [a.to_string(), b.to_string()]
    );

    // An encrypted vCon without a score gets one (the time of the walk).
    h.store
        .delete_vcon(encrypted, &PartyIndex::default())
        .await
        .unwrap();
    h.store.write_back(encrypted, &text_e).await.unwrap();
    assert!(h.listed(42..=42).await.is_empty());
    assert_eq!(h.store.index_all().await.unwrap(), 3);
    let now = chrono::Utc::now().timestamp();
    h.assert_score(encrypted, now - 60..=now).await;
    // The walk did not touch the values.
    assert_eq!(h.store.get_vcon(b).await.unwrap(), Some(text_b));
}

async fn get_vcons_order_with_misses(h: Arc<Harness>) {
    let (a, b, missing) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    h.put(a, r#"{"a":1}"#, 1, &PartyIndex::default(), &[]).await;
    h.put(b, r#"{"b":2}"#, 1, &PartyIndex::default(), &[]).await;
    let got = h.store.get_vcons(&[b, missing, a, b]).await.unwrap();
    assert_eq!(
        got,
        [
            Some(r#"{"b":2}"#.to_owned()),
            None,
            Some(r#"{"a":1}"#.to_owned()),
            Some(r#"{"b":2}"#.to_owned())
        ]
    );
    assert!(h.store.get_vcons(&[]).await.unwrap().is_empty());
}

async fn keys_carry_the_prefix(h: Arc<Harness>) {
    let redis = h.raw();
    let uuid = Uuid::new_v4();
    h.put(uuid, "{}", 1, &parties(&["1"], &["n"]), &["calls"])
        .await;
    let mut written = texts(redis.cmd(&["KEYS", &format!("{}*", h.keys.prefix())]).await);
    written.sort();
    let mut expected = vec![
        h.keys.vcon(uuid),
        h.keys.pending(uuid),
        h.keys.sorted_set("vcons"),
        h.keys.party(PartyField::Tel, "1"),
        h.keys.party(PartyField::Name, "n"),
        h.keys.list("calls"),
    ];
    expected.sort();
    assert_eq!(written, expected);
}

async fn a_vcon_key_of_another_type_reads_as_missing(h: Arc<Harness>) {
    let redis = h.raw();
    let (list, hash, bytes, good) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    redis
        .cmd(&["RPUSH", &h.keys.vcon(list), "not a vCon"])
        .await;
    redis.cmd(&["HSET", &h.keys.vcon(hash), "f", "v"]).await;
    redis
        .set_bytes(&h.keys.vcon(bytes), &[0xff, 0xfe, 0x00])
        .await;
    h.put_plain(good, 1, &[]).await;
    for unreadable in [list, hash, bytes] {
        assert_eq!(
            h.store.get_vcon(unreadable).await.unwrap(),
            None,
            "{unreadable}"
        );
    }
    let found = h.store.get_vcons(&[list, good, hash, bytes]).await.unwrap();
    assert_eq!(found[0], None);
    assert!(found[1].is_some(), "the others of the request are read");
    assert_eq!((found[2].as_ref(), found[3].as_ref()), (None, None));
}

/// A `redis-server` of the test's own, killed when dropped.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start redis-server ({error}): run scripts/test, which installs it")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRedis {
            port,
            child: Some(child),
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server, to make it hang rather than refuse.
    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("server running")
            .id()
            .to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "kill -{signal} {pid}"
        );
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A call against a dead Redis: an answer (not a hang), and Unavailable.
async fn assert_unavailable<T: std::fmt::Debug>(call: impl Future<Output = Result<T, StoreError>>) {
    let outcome = tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .expect("a call against a dead Redis hung");
    match outcome {
        Err(error) => assert!(
            error.is_unavailable(),
            "expected Unavailable, got {error:?}"
        ),
        Ok(value) => panic!("expected Unavailable, got {value:?}"),
    }
}

#[tokio::test]
async fn redis_outage_gives_unavailable_and_the_store_recovers() {
    let port = free_port();
    let mut server = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{}", server.port);
    let store = RedisStore::connect(&url, settings("")).await.unwrap();
    let index = PartyIndex::default();
    let uuid = Uuid::new_v4();
    let write = |text| VconWrite {
        uuid,
        text,
        score: 1,
        parties: &index,
    };
    store
        .put_vcon(write("{}"), &strings(&["calls"]))
        .await
        .unwrap();
    assert_eq!(store.get_vcon(uuid).await.unwrap().as_deref(), Some("{}"));

    server.kill();
    assert_unavailable(store.get_vcon(uuid)).await;
    assert_unavailable(store.put_vcon(write("{}"), &[])).await;
    assert_unavailable(store.list_len("calls")).await;
    assert_unavailable(store.ping()).await;

    // Back on the same port (empty: no persistence). The store reconnects by itself.
    let _server = OwnRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.ping().await {
            Ok(()) => break,
            Err(error) => {
                assert!(error.is_unavailable(), "{error:?}");
                assert!(
                    Instant::now() < deadline,
                    "the store did not recover: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // The restarted server has lost the put script: the store loads it again.
    store
        .put_vcon(write(r#"{"back":true}"#), &strings(&["calls"]))
        .await
        .unwrap();
    assert_eq!(
        store.get_vcon(uuid).await.unwrap().as_deref(),
        Some(r#"{"back":true}"#)
    );
    assert_eq!(store.list_len("calls").await.unwrap(), 1);
}

#[tokio::test]
async fn redis_that_hangs_gives_unavailable_and_the_store_recovers() {
    let server = OwnRedis::start(free_port());
    let url = format!("redis://127.0.0.1:{}", server.port);
    let store = RedisStore::connect(&url, settings("")).await.unwrap();
    let uuid = Uuid::new_v4();
    let index = PartyIndex::default();
    let write = VconWrite {
        uuid,
        text: "{}",
        score: 1,
        parties: &index,
    };
    store.put_vcon(write, &[]).await.unwrap();

    server.signal("STOP");
    assert_unavailable(store.get_vcon(uuid)).await;
    assert_unavailable(store.ping()).await;
    server.signal("CONT");

    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(error) = store.get_vcon(uuid).await {
        assert!(error.is_unavailable(), "{error:?}");
        assert!(
            Instant::now() < deadline,
            "the store did not recover: {error}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(store.get_vcon(uuid).await.unwrap().as_deref(), Some("{}"));
}

#[tokio::test]
async fn redis_script_flushed_under_a_live_connection_is_reloaded() {
    let port = free_port();
    let server = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{}", server.port);
    let store = RedisStore::connect(&url, settings("")).await.unwrap();
    let index = PartyIndex::default();
    let uuid = Uuid::new_v4();
    let write = |text| VconWrite {
        uuid,
        text,
        score: 1,
        parties: &index,
    };
    store.put_vcon(write("{}"), &[]).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();

    store.put_vcon(write(r#"{"v":2}"#), &[]).await.unwrap();
    assert_eq!(
        store.get_vcon(uuid).await.unwrap().as_deref(),
        Some(r#"{"v":2}"#)
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("vcon:{uuid}"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(ttl > 0);
}

#[tokio::test]
async fn redis_connect_to_nothing_is_unavailable() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    assert_unavailable(RedisStore::connect(&url, settings(""))).await;
}

#[tokio::test]
async fn redis_connect_with_a_bad_url_is_a_backend_error() {
    let error = RedisStore::connect("http://nowhere", settings(""))
        .await
        .unwrap_err();
    assert!(!error.is_unavailable(), "{error:?}");
}

#[tokio::test]
async fn open_without_url_is_the_memory_store() {
    let store = conserver::store::open(None, settings("")).await.unwrap();
    assert_eq!(store.kind(), "memory");
    let store = conserver::store::open(Some(&redis_url()), settings(""))
        .await
        .unwrap();
    assert_eq!(store.kind(), "redis");
}

// --- The processing engine: claim, finish, recovery (redis.md §3–§4). ---

const INSTANCE: &str = "inst-1";

fn push(list: &str, enqueue: bool) -> Push {
    Push {
        list: list.to_owned(),
        enqueue,
    }
}

/// A finish of `uuid` taken from `calls` by [`INSTANCE`] for the chain `main`, with nothing to
/// push; tests set what they exercise.
fn finish_of(uuid: &str, outcome: RunOutcome, ttl: u64) -> Finish<'_> {
    Finish {
        chain: "main",
        ingress_list: "calls",
        instance_id: INSTANCE,
        item: uuid,
        uuid: Uuid::parse_str(uuid).unwrap(),
        outcome,
        failed_storages: &[],
        egress: &[],
        routes: &[],
        ttl,
        decrement: true,
        replaced: None,
    }
}

/// A vCon put on `calls` and claimed by [`INSTANCE`]: pending count 1, in the processing list.
async fn claimed(h: &Harness) -> String {
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &["calls"]).await;
    let item = h
        .store
        .claim("calls", INSTANCE, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(item, Some(uuid.to_string()));
    uuid.to_string()
}

async fn claim_moves_into_processing_and_takes_the_vcon_in_hand(h: Arc<Harness>) {
    let redis = h.raw();
    let ids = sorted_uuids(2);
    let (a, b) = (ids[0], ids[1]);
    // A Python producer: a TTL on the vCon, a plain RPUSH, and a trace context.
    h.put_plain(a, 1, &[]).await;
    assert!(redis.ttl(&h.keys.vcon(a)).await > 0);
    redis
        .cmd(&[
            "RPUSH",
            &h.keys.list("calls"),
            &a.to_string(),
            &b.to_string(),
        ])
        .await;
    let context = h.keys.context("calls", a);
    redis
        .cmd(&["RPUSH", &context, "{\"trace\":1}", "{\"trace\":2}"])
        .await;

    let item = h
        .store
        .claim("calls", INSTANCE, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(item, Some(a.to_string()));
    assert_eq!(
        redis.list_items(&h.keys.list("calls")).await,
        [b.to_string()]
    );
    let processing = h.keys.processing("calls", INSTANCE);
    assert_eq!(redis.list_items(&processing).await, [a.to_string()]);
    assert_eq!(redis.ttl(&h.keys.vcon(a)).await, -1);
    assert_eq!(redis.list_items(&context).await, ["{\"trace\":2}"]);

    // Oldest first; a zero wait does not block.
    let item = h.store.claim("calls", INSTANCE, Duration::ZERO).await;
    assert_eq!(item.unwrap(), Some(b.to_string()));
    assert_eq!(
        redis.list_items(&processing).await,
        [a.to_string(), b.to_string()]
    );
    let started = Instant::now();
    let item = h.store.claim("calls", INSTANCE, Duration::ZERO).await;
    assert_eq!(item.unwrap(), None);
    assert!(started.elapsed() < Duration::from_millis(500));
}

async fn claim_takes_the_oldest_into_the_processing_list(h: Arc<Harness>) {
    let ids = sorted_uuids(2);
    let (a, b) = (ids[0], ids[1]);
    h.store.enqueue("calls", &[a, b]).await.unwrap();

    let item = h
        .store
        .claim("calls", INSTANCE, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(item, Some(a.to_string()));
    assert_eq!(h.store.list_len("calls").await.unwrap(), 1);
    assert_eq!(
        h.store.processing_items("calls", INSTANCE).await.unwrap(),
        [a.to_string()]
    );
    // Another instance's processing list is its own.
    assert!(h
        .store
        .processing_items("calls", "other")
        .await
        .unwrap()
        .is_empty());

    // Oldest first; a zero wait does not block.
    let item = h.store.claim("calls", INSTANCE, Duration::ZERO).await;
    assert_eq!(item.unwrap(), Some(b.to_string()));
    assert_eq!(
        h.store.processing_items("calls", INSTANCE).await.unwrap(),
        [a.to_string(), b.to_string()]
    );
    assert_eq!(h.store.list_len("calls").await.unwrap(), 0);
    let started = Instant::now();
    let item = h.store.claim("calls", INSTANCE, Duration::ZERO).await;
    assert_eq!(item.unwrap(), None);
    assert!(started.elapsed() < Duration::from_millis(500));
}

async fn claim_waits_then_returns_none(h: Arc<Harness>) {
    let started = Instant::now();
    let item = h
        .store
        .claim("calls", INSTANCE, Duration::from_millis(300))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(item, None);
    assert!(
        (Duration::from_millis(290)..Duration::from_secs(2)).contains(&waited),
        "waited {waited:?}"
    );
    assert!(h
        .store
        .processing_items("calls", INSTANCE)
        .await
        .unwrap()
        .is_empty());
    if let Some(redis) = h.redis() {
        assert!(!redis.exists(&h.keys.processing("calls", INSTANCE)).await);
    }
}

async fn claim_wakes_when_an_item_is_pushed(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    let waiting = {
        let h = h.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let item = h
                .store
                .claim("calls", INSTANCE, Duration::from_secs(10))
                .await;
            (item.unwrap(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another list does not wake it with its item.
    h.store.enqueue("other", &[Uuid::new_v4()]).await.unwrap();
    h.store.enqueue("calls", &[uuid]).await.unwrap();
    let (item, waited) = waiting.await.unwrap();
    assert_eq!(item, Some(uuid.to_string()));
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    assert_eq!(h.store.list_len("other").await.unwrap(), 1);
}

async fn write_back_replaces_the_text(h: Arc<Harness>) {
    let uuid = claimed(&h).await;
    let uuid = Uuid::parse_str(&uuid).unwrap();
    h.store
        .write_back(uuid, r#"{"written":"back"}"#)
        .await
        .unwrap();
    assert_eq!(
        h.store.get_vcon(uuid).await.unwrap().as_deref(),
        Some(r#"{"written":"back"}"#)
    );
    if let Some(redis) = h.redis() {
        assert_eq!(redis.ttl(&h.keys.vcon(uuid)).await, -1);
        assert_eq!(redis.pending_count(uuid).await, Some(1));
    }
}

async fn finish_processed_pushes_egress_and_routes_then_acknowledges(h: Arc<Harness>) {
    let uuid = claimed(&h).await;
    let egress = [push("out", false), push("next", true)];
    let routes = [push("routed", true), push("external", false)];
    let finish = Finish {
        egress: &egress,
        routes: &routes,
        ..finish_of(&uuid, RunOutcome::Processed, 60)
    };
    h.store.finish(&finish).await.unwrap();

    let id = Uuid::parse_str(&uuid).unwrap();
    if let Some(redis) = h.redis() {
        // 1 (claimed) + 2 enqueued − 1 (this run): still held, so no TTL yet.
        assert_eq!(redis.pending_count(id).await, Some(2));
        assert_eq!(redis.ttl(&h.keys.vcon(id)).await, -1);
    }
    for list in ["out", "next", "routed", "external"] {
        assert_eq!(
            h.store.pop_front(list, 10).await.unwrap(),
            [uuid.as_str()],
            "{list}"
        );
    }
    h.assert_counters(1, 0, 0).await;
    assert!(h
        .store
        .processing_items("calls", INSTANCE)
        .await
        .unwrap()
        .is_empty());
    assert!(h.store.dlq_items("calls").await.unwrap().is_empty());
    // No egress-pending record.
    let done = h.store.storage_dlq_done("s3", &uuid, true, &[]);
    assert_eq!(done.await.unwrap(), EgressRelease::NoRecord);
}

async fn finish_failed_dead_letters_the_item(h: Arc<Harness>) {
    let uuid = claimed(&h).await;
    let other = claimed(&h).await;
    let routes = [push("routed", false)];
    let finish = Finish {
        routes: &routes,
        ..finish_of(&uuid, RunOutcome::Failed, h.settings.dlq_ttl)
    };
    h.store.finish(&finish).await.unwrap();

    assert_eq!(h.store.dlq_items("calls").await.unwrap(), [uuid.as_str()]);
    assert_eq!(
        h.store.pop_front("routed", 10).await.unwrap(),
        [uuid.as_str()]
    );
    let id = Uuid::parse_str(&uuid).unwrap();
    if let Some(redis) = h.redis() {
        let ttl = redis.ttl(&h.keys.vcon(id)).await;
        assert!((604_790..=604_800).contains(&ttl), "ttl {ttl}");
        assert_eq!(redis.pending_count(id).await, None);
    }
    h.assert_counters(0, 0, 1).await;
    // Only this item left the processing list.
    assert_eq!(
        h.store.processing_items("calls", INSTANCE).await.unwrap(),
        [other]
    );
}

async fn finish_halted_and_missing_count_as_halted(h: Arc<Harness>) {
    let halted = claimed(&h).await;
    let egress = [push("out", false)];
    let finish = Finish {
        // A halted run pushes no egress: the caller passes none.
        routes: &egress,
        ..finish_of(&halted, RunOutcome::Halted, 60)
    };
    h.store.finish(&finish).await.unwrap();
    let halted_id = Uuid::parse_str(&halted).unwrap();
    if let Some(redis) = h.redis() {
        let ttl = redis.ttl(&h.keys.vcon(halted_id)).await;
        assert!((50..=60).contains(&ttl), "ttl {ttl}");
    }

    // Missing: deleted while queued; the TTL step only settles the count.
    let missing = claimed(&h).await;
    let missing_id = Uuid::parse_str(&missing).unwrap();
    h.store
        .delete_vcon(missing_id, &PartyIndex::default())
        .await
        .unwrap();
    h.store
        .finish(&finish_of(&missing, RunOutcome::Missing, 60))
        .await
        .unwrap();
    assert!(!h.has(missing_id).await);
    if let Some(redis) = h.redis() {
        assert_eq!(redis.pending_count(missing_id).await, None);
        assert!(!redis.exists(&h.keys.vcon(missing_id)).await);
    }

    h.assert_counters(0, 2, 0).await;
    assert!(h.store.dlq_items("calls").await.unwrap().is_empty());
    assert!(h
        .store
        .processing_items("calls", INSTANCE)
        .await
        .unwrap()
        .is_empty());
}

async fn finish_with_a_dead_lettered_storage_holds_the_egress_back(h: Arc<Harness>) {
    let uuid = claimed(&h).await;
    let id = Uuid::parse_str(&uuid).unwrap();
    let failed = strings(&["s3", "pg"]);
    let egress = [push("out", false), push("next", true)];
    let routes = [push("routed", false)];
    let finish = Finish {
        failed_storages: &failed,
        egress: &egress,
        routes: &routes,
        ..finish_of(&uuid, RunOutcome::Processed, h.settings.dlq_ttl)
    };
    h.store.finish(&finish).await.unwrap();

    assert_eq!(
        h.store.storage_dlq_items("s3").await.unwrap(),
        [uuid.as_str()]
    );
    assert_eq!(
        h.store.storage_dlq_items("pg").await.unwrap(),
        [uuid.as_str()]
    );
    assert_eq!(h.store.list_len("out").await.unwrap(), 0);
    assert_eq!(h.store.list_len("next").await.unwrap(), 0);
    // Routes are not egress: they go at once.
    assert_eq!(h.store.list_len("routed").await.unwrap(), 1);
    if let Some(redis) = h.redis() {
        let record_key = h.keys.egress_pending(id);
        let record = text(redis.cmd(&["GET", &record_key]).await).unwrap();
        let record: serde_json::Value = serde_json::from_str(&record).unwrap();
        assert_eq!(
            record,
            serde_json::json!({"chain": "main", "egress_lists": ["out", "next"], "storages": ["s3", "pg"]})
        );
        let record_ttl = redis.ttl(&record_key).await;
        assert!(
            (604_790..=604_800).contains(&record_ttl),
            "ttl {record_ttl}"
        );
        let ttl = redis.ttl(&h.keys.vcon(id)).await;
        assert!((604_790..=604_800).contains(&ttl), "ttl {ttl}");
    }
    h.assert_counters(1, 0, 0).await;

    // A chain without egress lists writes no record.
    let other = claimed(&h).await;
    let finish = Finish {
        failed_storages: &failed,
        ..finish_of(&other, RunOutcome::Processed, h.settings.dlq_ttl)
    };
    h.store.finish(&finish).await.unwrap();
    assert_eq!(
        h.store.storage_dlq_items("s3").await.unwrap(),
        [uuid.clone(), other.clone()]
    );
    let done = h.store.storage_dlq_done("s3", &other, true, &[]);
    assert_eq!(done.await.unwrap(), EgressRelease::NoRecord);
    if let Some(redis) = h.redis() {
        let other_record = h.keys.egress_pending(Uuid::parse_str(&other).unwrap());
        assert!(!redis.exists(&other_record).await);
    }
}

async fn egress_record_without_ttl_when_dlq_ttl_is_zero(h: Arc<Harness>) {
    let redis = h.raw();
    let uuid = claimed(&h).await;
    let failed = strings(&["s3"]);
    let egress = [push("out", false)];
    let finish = Finish {
        failed_storages: &failed,
        egress: &egress,
        ..finish_of(&uuid, RunOutcome::Processed, 0)
    };
    h.store.finish(&finish).await.unwrap();
    let id = Uuid::parse_str(&uuid).unwrap();
    assert_eq!(redis.ttl(&h.keys.egress_pending(id)).await, -1);
    assert_eq!(redis.ttl(&h.keys.vcon(id)).await, -1);
}

async fn ttl_step_keeps_the_longest_and_applies_it_at_the_last_run(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    let id = uuid.to_string();
    // Two runs: one from each list.
    h.put_plain(uuid, 1, &["calls", "archive"]).await;
    let taken = h.store.claim("calls", INSTANCE, Duration::ZERO).await;
    assert_eq!(taken.unwrap(), Some(id.clone()));
    let taken = h.store.claim("archive", INSTANCE, Duration::ZERO).await;
    assert_eq!(taken.unwrap(), Some(id.clone()));

    h.store
        .finish(&finish_of(&id, RunOutcome::Processed, 500))
        .await
        .unwrap();
    if let Some(redis) = h.redis() {
        // The other run still holds it: no TTL, the longest asked kept.
        assert_eq!(redis.ttl(&h.keys.vcon(uuid)).await, -1);
        assert_eq!(
            redis.hash(&h.keys.pending(uuid)).await,
            [
                ("count".to_owned(), "1".to_owned()),
                ("ttl".to_owned(), "500".to_owned())
            ]
        );
    }

    let last = Finish {
        ingress_list: "archive",
        ..finish_of(&id, RunOutcome::Processed, 100)
    };
    h.store.finish(&last).await.unwrap();
    if let Some(redis) = h.redis() {
        let ttl = redis.ttl(&h.keys.vcon(uuid)).await;
        assert!((490..=500).contains(&ttl), "ttl {ttl}");
        assert!(!redis.exists(&h.keys.pending(uuid)).await);
    }
    assert!(h.has(uuid).await);
    for list in ["calls", "archive"] {
        let held = h.store.processing_items(list, INSTANCE).await.unwrap();
        assert!(held.is_empty(), "{list}: {held:?}");
    }
}

async fn ttl_step_zero_means_never(h: Arc<Harness>) {
    let redis = h.raw();
    // "Never" asked first wins over a later TTL.
    let uuid = Uuid::new_v4();
    let id = uuid.to_string();
    h.put_plain(uuid, 1, &["calls", "calls"]).await;
    h.store
        .finish(&finish_of(&id, RunOutcome::Processed, 0))
        .await
        .unwrap();
    h.store
        .finish(&finish_of(&id, RunOutcome::Processed, 100))
        .await
        .unwrap();
    assert_eq!(redis.ttl(&h.keys.vcon(uuid)).await, -1);
    assert_eq!(redis.pending_count(uuid).await, None);

    // And asked last, over an earlier TTL.
    let uuid = Uuid::new_v4();
    let id = uuid.to_string();
    h.put_plain(uuid, 1, &["calls", "calls"]).await;
    h.store
        .finish(&finish_of(&id, RunOutcome::Processed, 100))
        .await
        .unwrap();
    h.store
        .finish(&finish_of(&id, RunOutcome::Processed, 0))
        .await
        .unwrap();
    assert_eq!(redis.ttl(&h.keys.vcon(uuid)).await, -1);
    assert_eq!(redis.pending_count(uuid).await, None);
}

async fn ttl_step_for_a_vcon_without_a_pending_count(h: Arc<Harness>) {
    let redis = h.raw();
    // A vCon a link created during the run: no count to decrement, the TTL applies at once.
    let created = Uuid::new_v4();
    h.put_plain(created, 1, &[]).await;
    let item = claimed(&h).await;
    let finish = Finish {
        uuid: created,
        decrement: false,
        ..finish_of(&item, RunOutcome::Processed, 120)
    };
    h.store.finish(&finish).await.unwrap();
    let ttl = redis.ttl(&h.keys.vcon(created)).await;
    assert!((110..=120).contains(&ttl), "ttl {ttl}");
    assert_eq!(redis.pending_count(created).await, None);
    // Without the decrement a count held by queued runs stays, and only the TTL is kept.
    h.store.enqueue("calls", &[created]).await.unwrap();
    h.store.finish(&finish).await.unwrap();
    assert_eq!(redis.ttl(&h.keys.vcon(created)).await, -1);
    assert_eq!(redis.pending_count(created).await, Some(1));
}

/// A run that took a vCon and ended with another one a link created (with `ttl`), finished:
/// `(the uuid taken, the uuid created)`.
async fn finish_a_replaced_run(h: &Harness, ttl: u64) -> (Uuid, Uuid) {
    let item = claimed(h).await;
    let taken = Uuid::parse_str(&item).unwrap();
    let created = Uuid::new_v4();
    h.put_plain(created, 1, &[]).await;
    let finish = Finish {
        uuid: created,
        decrement: false,
        replaced: Some(taken),
        ..finish_of(&item, RunOutcome::Processed, ttl)
    };
    h.store.finish(&finish).await.unwrap();
    (taken, created)
}

async fn ttl_step_of_a_replaced_vcon_settles_the_one_taken(h: Arc<Harness>) {
    let redis = h.raw();
    // A link replaced the vCon it took by one with another uuid: both get the TTL, and the
    // pending count of the one taken is released.
    let (taken, created) = finish_a_replaced_run(&h, 120).await;
    for uuid in [taken, created] {
        let ttl = redis.ttl(&h.keys.vcon(uuid)).await;
        assert!((110..=120).contains(&ttl), "{uuid}: ttl {ttl}");
        assert_eq!(redis.pending_count(uuid).await, None, "{uuid}");
    }
}

async fn the_ttl_step_decides_when_a_vcon_expires(h: Arc<Harness>) {
    // Two runs: the longest TTL asked (2 s) applies when the last one ends.
    let both = Uuid::new_v4();
    let both_id = both.to_string();
    h.put_plain(both, 1, &["calls", "archive"]).await;
    for list in ["calls", "archive"] {
        let taken = h.store.claim(list, INSTANCE, Duration::ZERO).await;
        assert_eq!(taken.unwrap(), Some(both_id.clone()));
    }
    h.store
        .finish(&finish_of(&both_id, RunOutcome::Processed, 2))
        .await
        .unwrap();
    let last = Finish {
        ingress_list: "archive",
        ..finish_of(&both_id, RunOutcome::Processed, 1)
    };
    h.store.finish(&last).await.unwrap();

    // A link replaced the vCon it took: both get the TTL.
    let (taken, replacement) = finish_a_replaced_run(&h, 1).await;

    // "Never" asked by one run wins over a TTL asked by the other.
    let never = Uuid::new_v4();
    let never_id = never.to_string();
    h.put_plain(never, 1, &["later", "later"]).await;
    for ttl in [0, 1] {
        let finish = finish_of(&never_id, RunOutcome::Processed, ttl);
        h.store.finish(&finish).await.unwrap();
    }

    // A vCon a link created holds no count: its TTL applies at once, unless queued runs hold
    // it.
    let (created, held) = (Uuid::new_v4(), Uuid::new_v4());
    h.put_plain(created, 1, &[]).await;
    h.put_plain(held, 1, &["later"]).await;
    let item = taken.to_string();
    for uuid in [created, held] {
        let finish = Finish {
            uuid,
            decrement: false,
            ..finish_of(&item, RunOutcome::Processed, 1)
        };
        h.store.finish(&finish).await.unwrap();
    }

    sleep(1.5).await;
    for uuid in [taken, replacement, created] {
        assert!(!h.has(uuid).await, "{uuid} did not expire");
    }
    for uuid in [both, never, held] {
        assert!(h.has(uuid).await, "{uuid} expired");
    }
    sleep(1.0).await;
    assert!(!h.has(both).await);
    assert!(h.has(never).await && h.has(held).await);
}

async fn a_held_item_is_returned_to_the_head_once(h: Arc<Harness>) {
    let first = claimed(&h).await;
    let second = claimed(&h).await;
    let waiting = Uuid::new_v4();
    h.put_plain(waiting, 1, &["calls"]).await;
    assert_eq!(
        h.store.processing_items("calls", INSTANCE).await.unwrap(),
        [first.clone(), second.clone()]
    );
    assert!(h
        .store
        .return_item("calls", INSTANCE, &first)
        .await
        .unwrap());
    // Only an item still held moves, and only once.
    assert!(!h
        .store
        .return_item("calls", INSTANCE, &first)
        .await
        .unwrap());
    assert_eq!(
        h.store.processing_items("calls", INSTANCE).await.unwrap(),
        [second]
    );
    assert_eq!(
        h.store.pop_front("calls", 10).await.unwrap(),
        [first, waiting.to_string()]
    );
}

async fn recover_moves_items_back_to_the_head_oldest_first(h: Arc<Harness>) {
    let dead = "dead-1";
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let id = |index: usize| ids[index].to_string();
    h.store.register_instance(dead, "{}", 30).await.unwrap();
    h.store.note_consumed_list(dead, "calls").await.unwrap();
    h.store.note_consumed_list(dead, "archive").await.unwrap();
    h.store.note_consumed_list(dead, "empty").await.unwrap();
    h.store.enqueue("calls", &ids[0..3]).await.unwrap();
    h.store.enqueue("archive", &ids[3..4]).await.unwrap();
    for _ in 0..2 {
        let taken = h.store.claim("calls", dead, Duration::ZERO).await;
        assert!(taken.unwrap().is_some());
    }
    let taken = h.store.claim("archive", dead, Duration::ZERO).await;
    assert!(taken.unwrap().is_some());
    // Newer work arrived meanwhile.
    h.store.enqueue("calls", &ids[4..5]).await.unwrap();
    // Its heartbeat is gone.
    h.store.deregister_instance(dead).await.unwrap();
    assert_eq!(h.store.dead_instances("own").await.unwrap(), [dead]);

    let recovered = h.store.recover_instance(dead).await.unwrap();
    assert_eq!(
        recovered,
        [
            ("archive".to_owned(), 1),
            ("calls".to_owned(), 2),
            ("empty".to_owned(), 0)
        ]
    );
    for list in ["calls", "archive"] {
        let held = h.store.processing_items(list, dead).await.unwrap();
        assert!(held.is_empty(), "{list}: {held:?}");
    }
    if let Some(redis) = h.redis() {
        for key in [
            h.keys.processing("calls", dead),
            h.keys.processing("archive", dead),
            h.keys.instance_lists(dead),
        ] {
            assert!(!redis.exists(&key).await, "{key}");
        }
        assert!(texts(redis.cmd(&["SMEMBERS", &h.keys.instances()]).await).is_empty());
    }
    // No longer registered.
    assert!(h.store.dead_instances("own").await.unwrap().is_empty());
    // Recovering again (another instance got there first) finds nothing to do.
    assert!(h.store.recover_instance(dead).await.unwrap().is_empty());
    assert_eq!(
        h.store.pop_front("calls", 10).await.unwrap(),
        [id(0), id(1), id(2), id(4)]
    );
    assert_eq!(h.store.pop_front("archive", 10).await.unwrap(), [id(3)]);
}

async fn dead_instances_are_those_without_a_heartbeat(h: Arc<Harness>) {
    h.store.register_instance("own", "{}", 30).await.unwrap();
    h.store.register_instance("live", "{}", 30).await.unwrap();
    h.store.register_instance("ghost", "{}", 1).await.unwrap();
    assert!(h.store.dead_instances("own").await.unwrap().is_empty());
    // Registered, then its heartbeat expired.
    sleep(1.3).await;
    assert_eq!(h.store.dead_instances("own").await.unwrap(), ["ghost"]);

    h.store.deregister_instance("live").await.unwrap();
    if let Some(redis) = h.redis() {
        assert!(!redis.exists(&h.keys.instance("live")).await);
    }
    assert_eq!(
        h.store.dead_instances("own").await.unwrap(),
        ["ghost", "live"]
    );
    // Its own id is never dead to an instance, heartbeat or not.
    h.store.deregister_instance("own").await.unwrap();
    assert_eq!(
        h.store.dead_instances("own").await.unwrap(),
        ["ghost", "live"]
    );
}

async fn heartbeat_registers_again_after_expiry(h: Arc<Harness>) {
    let info = r#"{"host":"h","pid":1,"version":"v","started_at":"2024-01-01T00:00:00Z"}"#;
    h.store.register_instance("i", info, 30).await.unwrap();
    let heartbeat = h.keys.instance("i");
    if let Some(redis) = h.redis() {
        assert_eq!(
            text(redis.cmd(&["GET", &heartbeat]).await).as_deref(),
            Some(info)
        );
        let ttl = redis.ttl(&heartbeat).await;
        assert!((29..=30).contains(&ttl), "ttl {ttl}");
    }
    assert!(h.store.heartbeat("i", info, 45).await.unwrap());
    if let Some(redis) = h.redis() {
        let ttl = redis.ttl(&heartbeat).await;
        assert!((44..=45).contains(&ttl), "ttl {ttl}");
    }

    // Considered dead (its heartbeat gone) and recovered by another instance meanwhile.
    h.store.deregister_instance("i").await.unwrap();
    h.store.recover_instance("i").await.unwrap();
    assert!(h.store.dead_instances("own").await.unwrap().is_empty());
    assert!(!h.store.heartbeat("i", info, 30).await.unwrap());
    if let Some(redis) = h.redis() {
        assert_eq!(
            text(redis.cmd(&["GET", &heartbeat]).await).as_deref(),
            Some(info)
        );
        assert!(redis.ttl(&heartbeat).await > 0);
        assert_eq!(
            texts(redis.cmd(&["SMEMBERS", &h.keys.instances()]).await),
            ["i"]
        );
    }
    assert!(h.store.heartbeat("i", info, 30).await.unwrap());
    // Registered again: once its heartbeat goes, it is a dead instance to the others.
    h.store.deregister_instance("i").await.unwrap();
    assert_eq!(h.store.dead_instances("own").await.unwrap(), ["i"]);
}

async fn storage_dlq_done_releases_the_egress_after_the_last_storage(h: Arc<Harness>) {
    let uuid = claimed(&h).await;
    let id = Uuid::parse_str(&uuid).unwrap();
    let failed = strings(&["s3", "pg"]);
    let egress = [push("out", false), push("next", true)];
    let finish = Finish {
        failed_storages: &failed,
        egress: &egress,
        ..finish_of(&uuid, RunOutcome::Processed, h.settings.dlq_ttl)
    };
    h.store.finish(&finish).await.unwrap();
    // A later run whose write to `s3` was dead-lettered too (its chain has no egress).
    let later = claimed(&h).await;
    let s3 = strings(&["s3"]);
    let finish = Finish {
        failed_storages: &s3,
        ..finish_of(&later, RunOutcome::Processed, h.settings.dlq_ttl)
    };
    h.store.finish(&finish).await.unwrap();

    assert_eq!(
        h.store.storage_dlq_head("s3", 1).await.unwrap(),
        [uuid.as_str()]
    );
    assert_eq!(
        h.store.storage_dlq_head("s3", 10).await.unwrap(),
        [uuid.clone(), later.clone()]
    );
    assert!(h.store.storage_dlq_head("s3", 0).await.unwrap().is_empty());

    let enqueue_lists = strings(&["next"]);
    let done = h.store.storage_dlq_done("s3", &uuid, true, &enqueue_lists);
    assert_eq!(done.await.unwrap(), EgressRelease::Waiting);
    assert_eq!(h.store.storage_dlq_items("s3").await.unwrap(), [later]);
    if let Some(redis) = h.redis() {
        let record_key = h.keys.egress_pending(id);
        let record: serde_json::Value =
            serde_json::from_str(&text(redis.cmd(&["GET", &record_key]).await).unwrap()).unwrap();
        assert_eq!(record["storages"], serde_json::json!(["pg"]));
        assert_eq!(record["egress_lists"], serde_json::json!(["out", "next"]));
        assert_eq!(record["chain"], "main");
        let record_ttl = redis.ttl(&record_key).await;
        assert!(
            (604_790..=604_800).contains(&record_ttl),
            "ttl {record_ttl}"
        );
    }
    assert_eq!(h.store.list_len("out").await.unwrap(), 0);

    let done = h.store.storage_dlq_done("pg", &uuid, true, &enqueue_lists);
    assert_eq!(
        done.await.unwrap(),
        EgressRelease::Released(strings(&["out", "next"]))
    );
    assert!(h.store.storage_dlq_items("pg").await.unwrap().is_empty());
    if let Some(redis) = h.redis() {
        // `next` is read by a chain: the enqueue protocol ran (the finish had settled the
        // count).
        assert_eq!(redis.pending_count(id).await, Some(1));
        assert_eq!(redis.ttl(&h.keys.vcon(id)).await, -1);
        assert!(!redis.exists(&h.keys.egress_pending(id)).await);
    }
    assert_eq!(h.store.pop_front("out", 10).await.unwrap(), [uuid.as_str()]);
    assert_eq!(
        h.store.pop_front("next", 10).await.unwrap(),
        [uuid.as_str()]
    );

    // Nothing left to release.
    let done = h.store.storage_dlq_done("pg", &uuid, true, &enqueue_lists);
    assert_eq!(done.await.unwrap(), EgressRelease::NoRecord);
}

async fn storage_dlq_done_without_release_only_removes_the_entry(h: Arc<Harness>) {
    let uuid = claimed(&h).await;
    let failed = strings(&["s3"]);
    let egress = [push("out", false)];
    let finish = Finish {
        failed_storages: &failed,
        egress: &egress,
        ..finish_of(&uuid, RunOutcome::Processed, h.settings.dlq_ttl)
    };
    h.store.finish(&finish).await.unwrap();
    let done = h.store.storage_dlq_done("s3", &uuid, false, &[]);
    assert_eq!(done.await.unwrap(), EgressRelease::NoRecord);
    assert!(h.store.storage_dlq_items("s3").await.unwrap().is_empty());
    if let Some(redis) = h.redis() {
        let record_key = h.keys.egress_pending(Uuid::parse_str(&uuid).unwrap());
        assert!(redis.exists(&record_key).await);
    }
    assert_eq!(h.store.list_len("out").await.unwrap(), 0);
    // The record is still there: a later success releases the egress.
    let done = h.store.storage_dlq_done("s3", &uuid, true, &[]);
    assert_eq!(
        done.await.unwrap(),
        EgressRelease::Released(strings(&["out"]))
    );
    assert_eq!(h.store.pop_front("out", 10).await.unwrap(), [uuid.as_str()]);
}

async fn blobs_with_and_without_ttl(h: Arc<Harness>) {
    let name = format!("vcon_storage:{}", Uuid::new_v4());
    h.store.put_blob(&name, r#"{"a":1}"#, 60).await.unwrap();
    assert_eq!(
        h.store.get_blob(&name).await.unwrap().as_deref(),
        Some(r#"{"a":1}"#)
    );
    let key = h.keys.blob(&name);
    if let Some(redis) = h.redis() {
        let ttl = redis.ttl(&key).await;
        assert!((50..=60).contains(&ttl), "ttl {ttl}");
        assert_eq!(
            redis.cmd(&["TYPE", &key]).await,
            Value::SimpleString("string".into())
        );
    }

    h.store.put_blob(&name, r#"{"a":2}"#, 0).await.unwrap();
    if let Some(redis) = h.redis() {
        assert_eq!(redis.ttl(&key).await, -1);
    }
    assert_eq!(
        h.store.get_blob(&name).await.unwrap().as_deref(),
        Some(r#"{"a":2}"#)
    );
    assert!(h.store.delete_blob(&name).await.unwrap());
    assert!(!h.store.delete_blob(&name).await.unwrap());
    assert_eq!(h.store.get_blob(&name).await.unwrap(), None);
}

async fn heartbeats_egress_records_and_blobs_expire(h: Arc<Harness>) {
    // `dlq_ttl` is 1 s here.
    h.store.register_instance("own", "{}", 30).await.unwrap();
    h.store.register_instance("brief", "{}", 1).await.unwrap();
    let name = format!("vcon_storage:{}", Uuid::new_v4());
    h.store.put_blob(&name, "{}", 1).await.unwrap();
    let uuid = claimed(&h).await;
    let failed = strings(&["s3"]);
    let egress = [push("out", false)];
    let finish = Finish {
        failed_storages: &failed,
        egress: &egress,
        ..finish_of(&uuid, RunOutcome::Processed, h.settings.dlq_ttl)
    };
    h.store.finish(&finish).await.unwrap();
    assert!(h.store.dead_instances("own").await.unwrap().is_empty());

    sleep(1.5).await;
    assert_eq!(h.store.dead_instances("own").await.unwrap(), ["brief"]);
    assert!(!h.store.heartbeat("brief", "{}", 30).await.unwrap());
    assert_eq!(h.store.get_blob(&name).await.unwrap(), None);
    // The record expired with the vCon: the egress is dropped, the entry still removed.
    assert!(!h.has(Uuid::parse_str(&uuid).unwrap()).await);
    let done = h.store.storage_dlq_done("s3", &uuid, true, &[]);
    assert_eq!(done.await.unwrap(), EgressRelease::NoRecord);
    assert!(h.store.storage_dlq_items("s3").await.unwrap().is_empty());
    assert_eq!(h.store.list_len("out").await.unwrap(), 0);
}

#[tokio::test]
async fn redis_a_blocked_claim_does_not_delay_other_requests() {
    let h = Arc::new(Harness::open(Backend::Redis, |_| {}).await);
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &[]).await;
    let claims: Vec<_> = (0..3)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                h.store
                    .claim("calls", INSTANCE, Duration::from_secs(2))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let started = Instant::now();
        assert!(h.store.get_vcon(uuid).await.unwrap().is_some());
        let took = started.elapsed();
        assert!(took < Duration::from_millis(500), "get_vcon took {took:?}");
    }
    for claim in claims {
        assert_eq!(claim.await.unwrap().unwrap(), None);
    }
}

#[tokio::test]
async fn redis_claim_against_a_dead_redis_is_unavailable_quickly() {
    let mut server = OwnRedis::start(free_port());
    let url = format!("redis://127.0.0.1:{}", server.port);
    let store = RedisStore::connect(&url, settings("")).await.unwrap();
    // A pooled dedicated connection exists, then the server goes.
    let wait = Duration::from_millis(100);
    assert_eq!(store.claim("calls", INSTANCE, wait).await.unwrap(), None);
    server.kill();
    for _ in 0..2 {
        let started = Instant::now();
        assert_unavailable(store.claim("calls", INSTANCE, Duration::from_secs(5))).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }

    // Back: claims work again.
    let _server = OwnRedis::start(server.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.claim("calls", INSTANCE, wait).await {
            Ok(item) => {
                assert_eq!(item, None);
                break;
            }
            Err(error) => {
                assert!(error.is_unavailable(), "{error:?}");
                assert!(Instant::now() < deadline, "claims did not recover: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test]
async fn redis_finish_reloads_a_flushed_script() {
    let server = OwnRedis::start(free_port());
    let url = format!("redis://127.0.0.1:{}", server.port);
    let store = RedisStore::connect(&url, settings("")).await.unwrap();
    let index = PartyIndex::default();
    let uuid = Uuid::new_v4();
    let write = VconWrite {
        uuid,
        text: "{}",
        score: 1,
        parties: &index,
    };
    store.put_vcon(write, &strings(&["calls"])).await.unwrap();
    let item = store
        .claim("calls", INSTANCE, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(item, Some(uuid.to_string()));
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();

    let id = uuid.to_string();
    store
        .finish(&finish_of(&id, RunOutcome::Processed, 100))
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("vcon:{uuid}"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((90..=100).contains(&ttl), "ttl {ttl}");
    let pending: bool = redis::cmd("EXISTS")
        .arg(format!("{{vcon:{uuid}}}:pending"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!pending);
}
