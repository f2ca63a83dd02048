//! The store conformance suite: each behaviour of `trait Store` (spec/redis.md, api.md §5) is
//! written once, as an async fn over a [`Harness`], and run against both the embedded memory
//! store and a real Redis, so the two cannot drift.
//!
//! Redis comes from `CONSERVER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`; `scripts/test`
//! starts one). Every test uses its own random key prefix, so tests never collide with each
//! other or with a developer's data, and deletes its keys when it ends, even by a panic.
//!
//! The outage test starts a `redis-server` of its own on a free port, kills it and starts it
//! again.

use std::future::Future;
use std::net::TcpListener;
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

/// Direct access to the keys behind a store, to seed and inspect what the trait does not show.
enum Raw {
    Memory(Arc<MemoryStore>),
    Redis(redis::aio::MultiplexedConnection),
}

/// One test's store, its raw access, its key names, and its settings.
struct Harness {
    store: Arc<dyn Store>,
    raw: Raw,
    keys: Keys,
    settings: StoreSettings,
}

impl Harness {
    async fn open(backend: Backend, tweak: fn(&mut StoreSettings)) -> Harness {
        let prefix = format!("test-{}:", Uuid::new_v4());
        let mut settings = settings(&prefix);
        tweak(&mut settings);
        let keys = Keys::new(prefix);
        match backend {
            Backend::Memory => {
                let memory = Arc::new(MemoryStore::new(settings.clone()));
                Harness {
                    store: memory.clone(),
                    raw: Raw::Memory(memory),
                    keys,
                    settings,
                }
            }
            Backend::Redis => {
                let url = redis_url();
                let store = RedisStore::connect(&url, settings.clone())
                    .await
                    .unwrap_or_else(|error| {
                        panic!("Redis at {url} is not reachable ({error}): start it, or run scripts/test")
                    });
                let client = redis::Client::open(url.as_str()).unwrap();
                let connection = client.get_multiplexed_async_connection().await.unwrap();
                Harness {
                    store: Arc::new(store),
                    raw: Raw::Redis(connection),
                    keys,
                    settings,
                }
            }
        }
    }

    /// Runs one Redis command on the data behind the store.
    async fn raw(&self, args: &[&str]) -> Value {
        match &self.raw {
            Raw::Memory(memory) => memory.command(args).unwrap(),
            Raw::Redis(connection) => {
                let mut connection = connection.clone();
                redis::cmd(args[0])
                    .arg(&args[1..])
                    .query_async(&mut connection)
                    .await
                    .unwrap_or_else(|error| panic!("{args:?}: {error}"))
            }
        }
    }

    async fn ttl(&self, key: &str) -> i64 {
        int(self.raw(&["TTL", key]).await)
    }

    async fn pending_count(&self, uuid: Uuid) -> Option<i64> {
        let count = self.raw(&["HGET", &self.keys.pending(uuid), "count"]).await;
        text(count).map(|count| count.parse().unwrap())
    }

    async fn score(&self, member: &str) -> Option<i64> {
        let sorted_set = self.keys.sorted_set(&self.settings.sorted_set);
        let score = self.raw(&["ZSCORE", &sorted_set, member]).await;
        text(score).map(|score| score.parse().unwrap())
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
}

impl Drop for Harness {
    /// Deletes the test's keys from Redis (best effort, also after a panic).
    fn drop(&mut self) {
        if matches!(self.raw, Raw::Redis(_)) {
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

/// Opens a harness and runs one behaviour on it.
async fn run<F, Fut>(backend: Backend, tweak: fn(&mut StoreSettings), test: F)
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = ()>,
{
    let harness = Arc::new(Harness::open(backend, tweak).await);
    test(harness).await;
}

/// Declares each behaviour once per backend: `memory::<name>` and `real_redis::<name>`; `with`
/// gives the settings a behaviour needs.
macro_rules! conformance {
    (@tweak) => { |_| {} };
    (@tweak $tweak:expr) => { $tweak };
    ($($name:ident $(with $tweak:expr)?;)*) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let tweak: fn(&mut conserver::store::StoreSettings) =
                        conformance!(@tweak $($tweak)?);
                    super::run(super::Backend::Memory, tweak, super::$name).await;
                }
            )*
        }
        mod real_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let tweak: fn(&mut conserver::store::StoreSettings) =
                        conformance!(@tweak $($tweak)?);
                    super::run(super::Backend::Redis, tweak, super::$name).await;
                }
            )*
        }
    };
}

conformance! {
    kind_and_ping;
    put_get_round_trip_keeps_the_exact_text;
    vcon_ttl_applies_when_nothing_holds_the_vcon;
    no_ttl_when_enqueued;
    no_ttl_while_pending;
    vcon_ttl_zero_means_no_ttl with |settings| settings.vcon_ttl = 0;
    sorted_set_member_form_replaces_a_bare_member;
    list_vcons_order_bounds_paging_and_bare_members;
    party_index_search_and_semantics;
    enqueue_protocol_raises_the_pending_count;
    pop_front_order_and_limit;
    dlq_items_and_reprocess;
    storage_dlq_items;
    chain_status_numbers;
    delete_cleans_the_indexes;
    index_all_rebuilds_from_the_keys;
    get_vcons_order_with_misses;
    keys_carry_the_prefix;
    a_vcon_key_of_another_type_is_a_backend_error;
    claim_moves_into_processing_and_takes_the_vcon_in_hand;
    claim_waits_then_returns_none;
    claim_wakes_when_an_item_is_pushed;
    write_back_replaces_the_text;
    finish_processed_pushes_egress_and_routes_then_acknowledges;
    finish_failed_dead_letters_the_item;
    finish_halted_and_missing_count_as_halted;
    finish_with_a_dead_lettered_storage_holds_the_egress_back;
    egress_record_without_ttl_when_dlq_ttl_is_zero with |settings| settings.dlq_ttl = 0;
    ttl_step_keeps_the_longest_and_applies_it_at_the_last_run;
    ttl_step_zero_means_never;
    ttl_step_for_a_vcon_without_a_pending_count;
    ttl_step_of_a_replaced_vcon_settles_the_one_taken;
    a_held_item_is_returned_to_the_head_once;
    recover_moves_items_back_to_the_head_oldest_first;
    dead_instances_are_those_without_a_heartbeat;
    heartbeat_registers_again_after_expiry;
    storage_dlq_done_releases_the_egress_after_the_last_storage;
    storage_dlq_done_without_release_only_removes_the_entry;
    blobs_with_and_without_ttl;
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
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &[]).await;
    let ttl = h.ttl(&h.keys.vcon(uuid)).await;
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
    assert_eq!(h.pending_count(uuid).await, None);
}

async fn no_ttl_when_enqueued(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &["calls", "archive"]).await;
    assert_eq!(h.ttl(&h.keys.vcon(uuid)).await, -1);
    assert_eq!(h.pending_count(uuid).await, Some(2));
    assert_eq!(h.store.list_len("calls").await.unwrap(), 1);
    assert_eq!(h.store.list_len("archive").await.unwrap(), 1);
    assert_eq!(
        h.store.pop_front("calls", 5).await.unwrap(),
        [uuid.to_string()]
    );
}

async fn no_ttl_while_pending(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &["calls"]).await;
    // Re-posted (or re-cached) without lists while still queued: no TTL.
    h.put_plain(uuid, 1, &[]).await;
    assert_eq!(h.ttl(&h.keys.vcon(uuid)).await, -1);
    assert_eq!(h.pending_count(uuid).await, Some(1));

    // Once nothing is pending (count ≤ 0), the TTL applies again.
    h.raw(&["HINCRBY", &h.keys.pending(uuid), "count", "-1"])
        .await;
    h.put_plain(uuid, 1, &[]).await;
    let ttl = h.ttl(&h.keys.vcon(uuid)).await;
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
}

async fn vcon_ttl_zero_means_no_ttl(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    h.put_plain(uuid, 1, &[]).await;
    assert_eq!(h.ttl(&h.keys.vcon(uuid)).await, -1);
    assert!(h.store.get_vcon(uuid).await.unwrap().is_some());
}

async fn sorted_set_member_form_replaces_a_bare_member(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    let sorted_set = h.keys.sorted_set("vcons");
    // The Python server's re-caching writes the bare uuid.
    h.raw(&["ZADD", &sorted_set, "5", &uuid.to_string()]).await;
    h.put_plain(uuid, 1_700_000_123, &[]).await;
    assert_eq!(h.score(&format!("vcon:{uuid}")).await, Some(1_700_000_123));
    assert_eq!(h.score(&uuid.to_string()).await, None);
    // A later put moves the score.
    h.put_plain(uuid, 1_700_000_200, &[]).await;
    assert_eq!(h.score(&format!("vcon:{uuid}")).await, Some(1_700_000_200));
}

async fn list_vcons_order_bounds_paging_and_bare_members(h: Arc<Harness>) {
    let ids = sorted_uuids(5);
    let id = |index: usize| ids[index].to_string();
    h.put_plain(ids[0], 100, &[]).await;
    h.put_plain(ids[1], 200, &[]).await;
    h.put_plain(ids[2], 200, &[]).await;
    h.put_plain(ids[3], 300, &[]).await;
    // A bare member written by the Python server is listed as is.
    h.raw(&["ZADD", &h.keys.sorted_set("vcons"), "250", &id(4)])
        .await;

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

    let set = h.keys.party(PartyField::Tel, "+1 555 0100");
    let ttl = h.ttl(&set).await;
    assert!((86_390..=86_400).contains(&ttl), "index ttl {ttl}");
}

async fn enqueue_protocol_raises_the_pending_count(h: Arc<Harness>) {
    let ids = sorted_uuids(2);
    let (a, b) = (ids[0], ids[1]);
    h.put_plain(a, 1, &[]).await;
    assert!(h.ttl(&h.keys.vcon(a)).await > 0);

    h.store.enqueue("calls", &[a, b]).await.unwrap();
    // PERSIST: a queued vCon cannot expire.
    assert_eq!(h.ttl(&h.keys.vcon(a)).await, -1);
    assert_eq!(h.pending_count(a).await, Some(1));
    assert_eq!(h.pending_count(b).await, Some(1));
    let pending_ttl = h.ttl(&h.keys.pending(a)).await;
    assert!(
        (2_591_990..=2_592_000).contains(&pending_ttl),
        "pending ttl {pending_ttl}"
    );

    h.store.enqueue("calls", &[a]).await.unwrap();
    assert_eq!(h.pending_count(a).await, Some(2));
    assert_eq!(h.store.list_len("calls").await.unwrap(), 3);
    let items = texts(h.raw(&["LRANGE", &h.keys.list("calls"), "0", "-1"]).await);
    assert_eq!(items, [a.to_string(), b.to_string(), a.to_string()]);

    h.store.enqueue("calls", &[]).await.unwrap();
    assert_eq!(h.store.list_len("calls").await.unwrap(), 3);
    assert_eq!(h.store.list_len("nothing").await.unwrap(), 0);
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
    assert_eq!(
        h.raw(&["EXISTS", &h.keys.list("egress")]).await,
        Value::Int(0)
    );
}

async fn dlq_items_and_reprocess(h: Arc<Harness>) {
    let ids = sorted_uuids(3);
    let id = |index: usize| ids[index].to_string();
    for uuid in &ids {
        h.put_plain(*uuid, 1, &[]).await;
    }
    let waiting = Uuid::new_v4();
    h.store.enqueue("calls", &[waiting]).await.unwrap();
    let dlq = h.keys.dlq("calls");
    h.raw(&["RPUSH", &dlq, &id(0), &id(1), &id(2)]).await;

    assert_eq!(
        h.store.dlq_items("calls").await.unwrap(),
        [id(0), id(1), id(2)]
    );
    assert!(h.store.dlq_items("other").await.unwrap().is_empty());

    assert_eq!(h.store.dlq_reprocess("calls", 0).await.unwrap(), 0);
    assert_eq!(h.store.dlq_reprocess("calls", 2).await.unwrap(), 2);
    assert_eq!(h.store.dlq_items("calls").await.unwrap(), [id(2)]);
    // Moved from the head of the DLQ to the tail of the list, after the pending bump.
    let list = texts(h.raw(&["LRANGE", &h.keys.list("calls"), "0", "-1"]).await);
    assert_eq!(list, [waiting.to_string(), id(0), id(1)]);
    assert_eq!(h.pending_count(ids[0]).await, Some(1));
    assert_eq!(h.ttl(&h.keys.vcon(ids[0])).await, -1);
    assert_eq!(h.pending_count(ids[2]).await, None);
    assert!(h.ttl(&h.keys.vcon(ids[2])).await > 0);

    assert_eq!(h.store.dlq_reprocess("calls", 10).await.unwrap(), 1);
    assert_eq!(h.store.dlq_reprocess("calls", 10).await.unwrap(), 0);
    assert!(h.store.dlq_items("calls").await.unwrap().is_empty());
    assert_eq!(h.store.list_len("calls").await.unwrap(), 4);
}

async fn storage_dlq_items(h: Arc<Harness>) {
    h.raw(&["RPUSH", &h.keys.storage_dlq("s3"), "a", "b"]).await;
    assert_eq!(h.store.storage_dlq_items("s3").await.unwrap(), ["a", "b"]);
    assert!(h
        .store
        .storage_dlq_items("removed")
        .await
        .unwrap()
        .is_empty());
    // Reading leaves the list as it was.
    assert_eq!(h.store.storage_dlq_items("s3").await.unwrap(), ["a", "b"]);
}

async fn chain_status_numbers(h: Arc<Harness>) {
    let k = &h.keys;
    h.raw(&["RPUSH", &k.list("in1"), "a", "b", "c"]).await;
    h.raw(&["RPUSH", &k.dlq("in1"), "d"]).await;
    h.raw(&["RPUSH", &k.dlq("in2"), "e", "f"]).await;
    h.raw(&["RPUSH", &k.list("out"), "g"]).await;
    h.raw(&["RPUSH", &k.storage_dlq("pg"), "h", "i"]).await;
    let stats = k.chain_stats("main");
    h.raw(&["HINCRBY", &stats, "processed", "18"]).await;
    h.raw(&["HINCRBY", &stats, "halted", "2"]).await;
    // A live instance (heartbeat present) and a dead one (heartbeat expired).
    h.raw(&["SADD", &k.instances(), "live", "dead"]).await;
    h.raw(&["SET", &k.instance("live"), "{}", "EX", "30"]).await;
    h.raw(&["RPUSH", &k.processing("in1", "live"), "x", "y"])
        .await;
    h.raw(&["RPUSH", &k.processing("in2", "live"), "z"]).await;
    h.raw(&["RPUSH", &k.processing("other", "live"), "not this chain"])
        .await;
    h.raw(&[
        "RPUSH",
        &k.processing("in1", "dead"),
        "1",
        "2",
        "3",
        "4",
        "5",
    ])
    .await;

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
            failed: 0,
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
    h.raw(&["ZADD", &h.keys.sorted_set("vcons"), "5", &uuid.to_string()])
        .await;

    h.store.delete_vcon(uuid, &who).await.unwrap();
    assert_eq!(h.store.get_vcon(uuid).await.unwrap(), None);
    assert_eq!(h.score(&format!("vcon:{uuid}")).await, None);
    assert_eq!(h.score(&uuid.to_string()).await, None);
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
    // Written by someone else (a Python server, a restore): only the key exists.
    let text_b = vcon_text(b, "2023-11-14T22:13:30Z", &[("+1 555 0100", "Bob")]);
    h.raw(&["SET", &h.keys.vcon(b), &text_b]).await;
    // Encrypted: keeps its existing score.
    let text_e = format!(r#"{{"uuid":"{encrypted}","ciphertext":"xyz","recipients":[{{}}]}}"#);
    h.raw(&["SET", &h.keys.vcon(encrypted), &text_e]).await;
    h.raw(&[
        "ZADD",
        &h.keys.sorted_set("vcons"),
        "42",
        &format!("vcon:{encrypted}"),
    ])
    .await;
    // Not vCons: skipped.
    h.raw(&["SET", &h.keys.vcon(Uuid::new_v4()), "not json"])
        .await;
    h.raw(&["SET", &h.keys.vcon("not-a-uuid"), "{}"]).await;
    // Not `vcon:*` keys: never read.
    h.store.enqueue("calls", &[a]).await.unwrap();

    assert_eq!(h.store.index_all().await.unwrap(), 3);
    assert_eq!(h.score(&format!("vcon:{a}")).await, Some(1_700_000_000));
    assert_eq!(h.score(&format!("vcon:{b}")).await, Some(1_700_000_010));
    assert_eq!(h.score(&format!("vcon:{encrypted}")).await, Some(42));
    let terms = SearchTerms {
        tel: Some("+1 555 0100".into()),
        ..SearchTerms::default()
    };
    assert_eq!(
        h.store.search(&terms).await.unwrap(),
        [a.to_string(), b.to_string()]
    );

    // An encrypted vCon without a score gets one (the time of the walk).
    h.raw(&[
        "ZREM",
        &h.keys.sorted_set("vcons"),
        &format!("vcon:{encrypted}"),
    ])
    .await;
    assert_eq!(h.store.index_all().await.unwrap(), 3);
    let now = chrono::Utc::now().timestamp();
    let score = h.score(&format!("vcon:{encrypted}")).await.unwrap();
    assert!(
        (now - 60..=now).contains(&score),
        "score {score}, now {now}"
    );
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
    let uuid = Uuid::new_v4();
    h.put(uuid, "{}", 1, &parties(&["1"], &["n"]), &["calls"])
        .await;
    let mut written = texts(h.raw(&["KEYS", &format!("{}*", h.keys.prefix())]).await);
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

async fn a_vcon_key_of_another_type_is_a_backend_error(h: Arc<Harness>) {
    let uuid = Uuid::new_v4();
    h.raw(&["RPUSH", &h.keys.vcon(uuid), "not a vCon"]).await;
    let error = h.store.get_vcon(uuid).await.unwrap_err();
    assert!(!error.is_unavailable(), "{error:?}");
    let error = h
        .store
        .get_vcons(&[Uuid::new_v4(), uuid])
        .await
        .unwrap_err();
    assert!(!error.is_unavailable(), "{error:?}");
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

/// `LRANGE key 0 -1`.
async fn list_items(h: &Harness, key: &str) -> Vec<String> {
    texts(h.raw(&["LRANGE", key, "0", "-1"]).await)
}

/// `HGETALL key` as sorted `(field, value)` pairs.
async fn hash(h: &Harness, key: &str) -> Vec<(String, String)> {
    let flat = texts(h.raw(&["HGETALL", key]).await);
    let mut pairs: Vec<(String, String)> = flat
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    pairs.sort();
    pairs
}

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
    let ids = sorted_uuids(2);
    let (a, b) = (ids[0], ids[1]);
    // A Python producer: a TTL on the vCon, a plain RPUSH, and a trace context.
    h.put_plain(a, 1, &[]).await;
    assert!(h.ttl(&h.keys.vcon(a)).await > 0);
    h.raw(&[
        "RPUSH",
        &h.keys.list("calls"),
        &a.to_string(),
        &b.to_string(),
    ])
    .await;
    let context = h.keys.context("calls", a);
    h.raw(&["RPUSH", &context, "{\"trace\":1}", "{\"trace\":2}"])
        .await;

    let item = h
        .store
        .claim("calls", INSTANCE, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(item, Some(a.to_string()));
    assert_eq!(list_items(&h, &h.keys.list("calls")).await, [b.to_string()]);
    let processing = h.keys.processing("calls", INSTANCE);
    assert_eq!(list_items(&h, &processing).await, [a.to_string()]);
    assert_eq!(h.ttl(&h.keys.vcon(a)).await, -1);
    assert_eq!(list_items(&h, &context).await, ["{\"trace\":2}"]);

    // Oldest first; a zero wait does not block.
    let item = h.store.claim("calls", INSTANCE, Duration::ZERO).await;
    assert_eq!(item.unwrap(), Some(b.to_string()));
    assert_eq!(
        list_items(&h, &processing).await,
        [a.to_string(), b.to_string()]
    );
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
    assert_eq!(
        h.raw(&["EXISTS", &h.keys.processing("calls", INSTANCE)])
            .await,
        Value::Int(0)
    );
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
    assert_eq!(h.ttl(&h.keys.vcon(uuid)).await, -1);
    assert_eq!(h.pending_count(uuid).await, Some(1));
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

    for list in ["out", "next", "routed", "external"] {
        assert_eq!(
            list_items(&h, &h.keys.list(list)).await,
            [uuid.as_str()],
            "{list}"
        );
    }
    let id = Uuid::parse_str(&uuid).unwrap();
    // 1 (claimed) + 2 enqueued − 1 (this run): still held, so no TTL yet.
    assert_eq!(h.pending_count(id).await, Some(2));
    assert_eq!(h.ttl(&h.keys.vcon(id)).await, -1);
    assert_eq!(
        hash(&h, &h.keys.chain_stats("main")).await,
        [("processed".to_owned(), "1".to_owned())]
    );
    assert_eq!(
        h.raw(&["EXISTS", &h.keys.processing("calls", INSTANCE)])
            .await,
        Value::Int(0)
    );
    assert!(h.store.dlq_items("calls").await.unwrap().is_empty());
    assert_eq!(
        h.raw(&["EXISTS", &h.keys.egress_pending(id)]).await,
        Value::Int(0)
    );
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
        list_items(&h, &h.keys.list("routed")).await,
        [uuid.as_str()]
    );
    let id = Uuid::parse_str(&uuid).unwrap();
    let ttl = h.ttl(&h.keys.vcon(id)).await;
    assert!((604_790..=604_800).contains(&ttl), "ttl {ttl}");
    assert_eq!(h.pending_count(id).await, None);
    assert_eq!(
        hash(&h, &h.keys.chain_stats("main")).await,
        [("failed".to_owned(), "1".to_owned())]
    );
    // Only this item left the processing list.
    let processing = h.keys.processing("calls", INSTANCE);
    assert_eq!(list_items(&h, &processing).await, [other]);
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
    let ttl = h.ttl(&h.keys.vcon(Uuid::parse_str(&halted).unwrap())).await;
    assert!((50..=60).contains(&ttl), "ttl {ttl}");

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
    assert_eq!(h.pending_count(missing_id).await, None);
    assert_eq!(
        h.raw(&["EXISTS", &h.keys.vcon(missing_id)]).await,
        Value::Int(0)
    );

    assert_eq!(
        hash(&h, &h.keys.chain_stats("main")).await,
        [("halted".to_owned(), "2".to_owned())]
    );
    assert!(h.store.dlq_items("calls").await.unwrap().is_empty());
    assert_eq!(
        h.raw(&["EXISTS", &h.keys.processing("calls", INSTANCE)])
            .await,
        Value::Int(0)
    );
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
    let record_key = h.keys.egress_pending(id);
    let record = text(h.raw(&["GET", &record_key]).await).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(
        record,
        serde_json::json!({"chain": "main", "egress_lists": ["out", "next"], "storages": ["s3", "pg"]})
    );
    let record_ttl = h.ttl(&record_key).await;
    assert!(
        (604_790..=604_800).contains(&record_ttl),
        "ttl {record_ttl}"
    );
    let ttl = h.ttl(&h.keys.vcon(id)).await;
    assert!((604_790..=604_800).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        hash(&h, &h.keys.chain_stats("main")).await,
        [("processed".to_owned(), "1".to_owned())]
    );

    // A chain without egress lists writes no record.
    let other = claimed(&h).await;
    let finish = Finish {
        failed_storages: &failed,
        ..finish_of(&other, RunOutcome::Processed, h.settings.dlq_ttl)
    };
    h.store.finish(&finish).await.unwrap();
    let other_record = h.keys.egress_pending(Uuid::parse_str(&other).unwrap());
    assert_eq!(h.raw(&["EXISTS", &other_record]).await, Value::Int(0));
    assert_eq!(
        h.store.storage_dlq_items("s3").await.unwrap(),
        [uuid, other]
    );
}

async fn egress_record_without_ttl_when_dlq_ttl_is_zero(h: Arc<Harness>) {
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
    assert_eq!(h.ttl(&h.keys.egress_pending(id)).await, -1);
    assert_eq!(h.ttl(&h.keys.vcon(id)).await, -1);
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
    // The other run still holds it: no TTL, the longest asked kept.
    assert_eq!(h.ttl(&h.keys.vcon(uuid)).await, -1);
    assert_eq!(
        hash(&h, &h.keys.pending(uuid)).await,
        [
            ("count".to_owned(), "1".to_owned()),
            ("ttl".to_owned(), "500".to_owned())
        ]
    );

    let last = Finish {
        ingress_list: "archive",
        ..finish_of(&id, RunOutcome::Processed, 100)
    };
    h.store.finish(&last).await.unwrap();
    let ttl = h.ttl(&h.keys.vcon(uuid)).await;
    assert!((490..=500).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        h.raw(&["EXISTS", &h.keys.pending(uuid)]).await,
        Value::Int(0)
    );
    assert_eq!(
        h.raw(&["EXISTS", &h.keys.processing("archive", INSTANCE)])
            .await,
        Value::Int(0)
    );
}

async fn ttl_step_zero_means_never(h: Arc<Harness>) {
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
    assert_eq!(h.ttl(&h.keys.vcon(uuid)).await, -1);
    assert_eq!(h.pending_count(uuid).await, None);

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
    assert_eq!(h.ttl(&h.keys.vcon(uuid)).await, -1);
    assert_eq!(h.pending_count(uuid).await, None);
}

async fn ttl_step_for_a_vcon_without_a_pending_count(h: Arc<Harness>) {
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
    let ttl = h.ttl(&h.keys.vcon(created)).await;
    assert!((110..=120).contains(&ttl), "ttl {ttl}");
    assert_eq!(h.pending_count(created).await, None);
    // Without the decrement a count held by queued runs stays, and only the TTL is kept.
    h.store.enqueue("calls", &[created]).await.unwrap();
    h.store.finish(&finish).await.unwrap();
    assert_eq!(h.ttl(&h.keys.vcon(created)).await, -1);
    assert_eq!(h.pending_count(created).await, Some(1));
}

async fn ttl_step_of_a_replaced_vcon_settles_the_one_taken(h: Arc<Harness>) {
    // A link replaced the vCon it took by one with another uuid: both get the TTL, and the
    // pending count of the one taken is released.
    let item = claimed(&h).await;
    let taken = Uuid::parse_str(&item).unwrap();
    let created = Uuid::new_v4();
    h.put_plain(created, 1, &[]).await;
    let finish = Finish {
        uuid: created,
        decrement: false,
        replaced: Some(taken),
        ..finish_of(&item, RunOutcome::Processed, 120)
    };
    h.store.finish(&finish).await.unwrap();
    for uuid in [taken, created] {
        let ttl = h.ttl(&h.keys.vcon(uuid)).await;
        assert!((110..=120).contains(&ttl), "{uuid}: ttl {ttl}");
        assert_eq!(h.pending_count(uuid).await, None, "{uuid}");
    }
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
    let ids: Vec<String> = (0..4).map(|_| Uuid::new_v4().to_string()).collect();
    h.store.register_instance(dead, "{}", 30).await.unwrap();
    h.store.note_consumed_list(dead, "calls").await.unwrap();
    h.store.note_consumed_list(dead, "archive").await.unwrap();
    h.store.note_consumed_list(dead, "empty").await.unwrap();
    h.raw(&["RPUSH", &h.keys.list("calls"), &ids[0], &ids[1], &ids[2]])
        .await;
    h.raw(&["RPUSH", &h.keys.list("archive"), &ids[3]]).await;
    for _ in 0..2 {
        let taken = h.store.claim("calls", dead, Duration::ZERO).await;
        assert!(taken.unwrap().is_some());
    }
    let taken = h.store.claim("archive", dead, Duration::ZERO).await;
    assert!(taken.unwrap().is_some());
    // Newer work arrived meanwhile.
    h.raw(&["RPUSH", &h.keys.list("calls"), "newer"]).await;

    let recovered = h.store.recover_instance(dead).await.unwrap();
    assert_eq!(
        recovered,
        [
            ("archive".to_owned(), 1),
            ("calls".to_owned(), 2),
            ("empty".to_owned(), 0)
        ]
    );
    assert_eq!(
        list_items(&h, &h.keys.list("calls")).await,
        [ids[0].as_str(), &ids[1], &ids[2], "newer"]
    );
    assert_eq!(
        list_items(&h, &h.keys.list("archive")).await,
        [ids[3].as_str()]
    );
    for key in [
        h.keys.processing("calls", dead),
        h.keys.processing("archive", dead),
        h.keys.instance_lists(dead),
    ] {
        assert_eq!(h.raw(&["EXISTS", &key]).await, Value::Int(0), "{key}");
    }
    assert!(texts(h.raw(&["SMEMBERS", &h.keys.instances()]).await).is_empty());
    // Recovering again (another instance got there first) finds nothing to do.
    assert!(h.store.recover_instance(dead).await.unwrap().is_empty());
}

async fn dead_instances_are_those_without_a_heartbeat(h: Arc<Harness>) {
    h.store.register_instance("own", "{}", 30).await.unwrap();
    h.store.register_instance("live", "{}", 30).await.unwrap();
    // Registered, then its heartbeat expired.
    h.raw(&["SADD", &h.keys.instances(), "ghost"]).await;
    assert_eq!(h.store.dead_instances("own").await.unwrap(), ["ghost"]);

    h.store.deregister_instance("live").await.unwrap();
    assert_eq!(
        h.raw(&["EXISTS", &h.keys.instance("live")]).await,
        Value::Int(0)
    );
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
    assert_eq!(
        text(h.raw(&["GET", &heartbeat]).await).as_deref(),
        Some(info)
    );
    let ttl = h.ttl(&heartbeat).await;
    assert!((29..=30).contains(&ttl), "ttl {ttl}");
    assert!(h.store.heartbeat("i", info, 45).await.unwrap());
    let ttl = h.ttl(&heartbeat).await;
    assert!((44..=45).contains(&ttl), "ttl {ttl}");

    // Considered dead and recovered by another instance meanwhile.
    h.raw(&["DEL", &heartbeat]).await;
    h.store.recover_instance("i").await.unwrap();
    assert!(!h.store.heartbeat("i", info, 30).await.unwrap());
    assert_eq!(
        text(h.raw(&["GET", &heartbeat]).await).as_deref(),
        Some(info)
    );
    assert!(h.ttl(&heartbeat).await > 0);
    assert_eq!(
        texts(h.raw(&["SMEMBERS", &h.keys.instances()]).await),
        ["i"]
    );
    assert!(h.store.heartbeat("i", info, 30).await.unwrap());
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
    let later = Uuid::new_v4().to_string();
    h.raw(&["RPUSH", &h.keys.storage_dlq("s3"), &later]).await;

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
    let record_key = h.keys.egress_pending(id);
    let record: serde_json::Value =
        serde_json::from_str(&text(h.raw(&["GET", &record_key]).await).unwrap()).unwrap();
    assert_eq!(record["storages"], serde_json::json!(["pg"]));
    assert_eq!(record["egress_lists"], serde_json::json!(["out", "next"]));
    assert_eq!(record["chain"], "main");
    let record_ttl = h.ttl(&record_key).await;
    assert!(
        (604_790..=604_800).contains(&record_ttl),
        "ttl {record_ttl}"
    );
    assert_eq!(h.store.list_len("out").await.unwrap(), 0);

    let done = h.store.storage_dlq_done("pg", &uuid, true, &enqueue_lists);
    assert_eq!(
        done.await.unwrap(),
        EgressRelease::Released(strings(&["out", "next"]))
    );
    assert!(h.store.storage_dlq_items("pg").await.unwrap().is_empty());
    assert_eq!(list_items(&h, &h.keys.list("out")).await, [uuid.as_str()]);
    assert_eq!(list_items(&h, &h.keys.list("next")).await, [uuid.as_str()]);
    // `next` is read by a chain: the enqueue protocol ran (the finish had settled the count).
    assert_eq!(h.pending_count(id).await, Some(1));
    assert_eq!(h.ttl(&h.keys.vcon(id)).await, -1);
    assert_eq!(h.raw(&["EXISTS", &record_key]).await, Value::Int(0));

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
    let record_key = h.keys.egress_pending(Uuid::parse_str(&uuid).unwrap());
    assert_eq!(h.raw(&["EXISTS", &record_key]).await, Value::Int(1));
    assert_eq!(h.store.list_len("out").await.unwrap(), 0);
}

async fn blobs_with_and_without_ttl(h: Arc<Harness>) {
    let name = format!("vcon_storage:{}", Uuid::new_v4());
    h.store.put_blob(&name, r#"{"a":1}"#, 60).await.unwrap();
    assert_eq!(
        h.store.get_blob(&name).await.unwrap().as_deref(),
        Some(r#"{"a":1}"#)
    );
    let key = h.keys.blob(&name);
    let ttl = h.ttl(&key).await;
    assert!((50..=60).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        h.raw(&["TYPE", &key]).await,
        Value::SimpleString("string".into())
    );

    h.store.put_blob(&name, r#"{"a":2}"#, 0).await.unwrap();
    assert_eq!(h.ttl(&key).await, -1);
    assert_eq!(
        h.store.get_blob(&name).await.unwrap().as_deref(),
        Some(r#"{"a":2}"#)
    );
    assert!(h.store.delete_blob(&name).await.unwrap());
    assert!(!h.store.delete_blob(&name).await.unwrap());
    assert_eq!(h.store.get_blob(&name).await.unwrap(), None);
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
