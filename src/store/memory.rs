//! The embedded store (config.md §11): the keys and semantics of spec/redis.md inside the
//! process, for a first run without Redis and for fast tests.
//!
//! The data is a map of Redis-typed values behind one `std::sync::Mutex`. Each trait method
//! does what the Redis implementation sends, command by command, through [`Data`] methods named
//! after the Redis commands, so the two cannot drift (the conformance suite checks it). No
//! `.await` happens while the lock is held: every operation is synchronous under it.
//!
//! Expiry: each key with a TTL also sits in an ordered set of deadlines; every operation first
//! drops the keys whose deadline has passed, so an expired key is never seen and never kept.
//!
//! Blocking: a claim waiting on an empty list waits on that list's [`Notify`], which every push
//! onto the list wakes, as Redis serves the clients blocked on a list.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::Value as Reply;
use tokio::sync::Notify;
use uuid::Uuid;

use super::keys::{member_uuid, sorted_set_member, Keys, PENDING_TTL_SECONDS};
use super::{
    asked_ttl, describe_for_index, longest_ttl, party_entries, search_sets, ChainLists,
    ChainStatus, EgressPending, EgressRelease, Finish, IndexScore, ListQuery, Push, RunOutcome,
    SearchTerms, Store, StoreError, StoreResult, StoreSettings, VconWrite, LONGEST_CLAIM_WAIT,
};
use crate::vcon::PartyIndex;

/// How many keys [`Store::index_all`] reads per step, as `SCAN … COUNT` does on Redis.
const INDEX_BATCH: usize = 500;

/// The in-process store.
#[derive(Debug)]
pub struct MemoryStore {
    settings: StoreSettings,
    keys: Keys,
    sorted_set: String,
    data: Mutex<Data>,
}

impl MemoryStore {
    /// An empty store with the given settings.
    pub fn new(settings: StoreSettings) -> MemoryStore {
        let keys = Keys::new(settings.key_prefix.clone());
        let sorted_set = keys.sorted_set(&settings.sorted_set);
        MemoryStore {
            settings,
            keys,
            sorted_set,
            data: Mutex::new(Data::default()),
        }
    }

    /// Runs one Redis command on the data and answers as Redis would, for tests and tools that
    /// inspect or seed keys the way they would on Redis. Supported: `GET`, `SET` (with `EX`),
    /// `DEL`, `EXISTS`, `TYPE`, `TTL`, `EXPIRE`, `PERSIST`, `HGET`, `HGETALL`, `HINCRBY`,
    /// `RPUSH`, `LPOP`, `LRANGE`, `LLEN`, `SADD`, `SREM`, `SMEMBERS`, `SISMEMBER`, `ZADD` (one
    /// member, optional `NX`), `ZSCORE`, `ZREM`, `KEYS` (pattern `<literal>*` only).
    pub fn command(&self, args: &[&str]) -> StoreResult<Reply> {
        self.with_data(|data, now| data.command(args, now))
    }

    /// Runs `op` on the data with expired keys removed; `now` is the operation's instant.
    fn with_data<T>(
        &self,
        op: impl FnOnce(&mut Data, Instant) -> Result<T, StoreError>,
    ) -> StoreResult<T> {
        let now = Instant::now();
        // A panic under the lock leaves at worst one half-applied operation, as a pipeline cut
        // short does on Redis; refusing every later call would be worse, so the data is kept.
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        data.purge(now);
        op(&mut data, now)
    }

    /// Enqueue protocol steps 1–2 (redis.md §3.1) for `id`.
    fn raise_pending(&self, data: &mut Data, id: &str, now: Instant) -> Result<(), StoreError> {
        data.persist(&self.keys.vcon(id));
        let pending = self.keys.pending(id);
        data.hincrby(&pending, "count", 1)?;
        data.expire(&pending, PENDING_TTL_SECONDS, now);
        Ok(())
    }

    /// The push of `id` onto one list: the enqueue protocol when an enabled chain reads it.
    fn push_to_list(
        &self,
        data: &mut Data,
        list: &str,
        enqueue: bool,
        id: &str,
        now: Instant,
    ) -> Result<(), StoreError> {
        if enqueue {
            self.raise_pending(data, id, now)?;
        }
        data.rpush(&self.keys.list(list), [id.to_owned()])?;
        Ok(())
    }

    /// The TTL step (redis.md §4.2), as the Redis store's script does it.
    fn ttl_step(
        &self,
        data: &mut Data,
        uuid: Uuid,
        ttl: u64,
        decrement: bool,
        now: Instant,
    ) -> StoreResult<()> {
        let pending = self.keys.pending(uuid);
        let count = if decrement {
            data.hincrby(&pending, "count", -1)?
        } else {
            parse_count(data.hget(&pending, "count")?)
        };
        let asked = asked_ttl(ttl);
        let ttl = match data
            .hget(&pending, "ttl")?
            .and_then(|kept| kept.parse().ok())
        {
            Some(kept) => longest_ttl(kept, asked),
            None => asked,
        };
        if count > 0 {
            data.hset(&pending, "ttl", ttl.to_string())?;
            return Ok(());
        }
        data.del(&pending);
        let vcon = self.keys.vcon(uuid);
        match u64::try_from(ttl) {
            Ok(seconds) => data.expire(&vcon, seconds, now),
            Err(_) => data.persist(&vcon),
        };
        Ok(())
    }

    /// Moves the head of `list` into the processing list and takes it in hand, as a claim on
    /// Redis does after its `BLMOVE`.
    fn take(
        &self,
        data: &mut Data,
        list: &str,
        processing: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(item) = data.lmove(&self.keys.list(list), processing, End::Left, End::Right)?
        else {
            return Ok(None);
        };
        data.persist(&self.keys.vcon(item.as_str()));
        if let Err(error) = data.lpop(&self.keys.context(list, item.as_str()), 1) {
            tracing::warn!(vcon_id = %item, list, %error, "claimed, but could not remove the vCon's trace context");
        }
        Ok(Some(item))
    }

    /// Settles the egress-pending record of `uuid` for a storage whose write succeeded.
    fn release_egress(
        &self,
        data: &mut Data,
        storage: &str,
        uuid: &str,
        enqueue_lists: &[String],
        now: Instant,
    ) -> StoreResult<EgressRelease> {
        let key = self.keys.egress_pending(uuid);
        let Some(text) = data.get(&key)? else {
            return Ok(EgressRelease::NoRecord);
        };
        let mut record: EgressPending = serde_json::from_str(text)
            .map_err(|error| StoreError::Backend(format!("{key} is not a record: {error}")))?;
        record.storages.retain(|name| name != storage);
        if !record.storages.is_empty() {
            data.set_keep_ttl(&key, record.to_text());
            return Ok(EgressRelease::Waiting);
        }
        for list in &record.egress_lists {
            self.push_to_list(data, list, enqueue_lists.contains(list), uuid, now)?;
        }
        data.del(&key);
        Ok(EgressRelease::Released(record.egress_lists))
    }

    /// Adds `vcon:<id>` to the sorted set and the party index, as `put_vcon` does.
    fn index(
        &self,
        data: &mut Data,
        id: &str,
        score: IndexScore,
        parties: &PartyIndex,
        now: Instant,
    ) -> Result<(), StoreError> {
        match score {
            IndexScore::CreatedAt(score) => {
                data.zadd(&self.sorted_set, score, sorted_set_member(id), false)?
            }
            IndexScore::KeepOr(score) => {
                data.zadd(&self.sorted_set, score, sorted_set_member(id), true)?
            }
        };
        data.zrem(&self.sorted_set, &[id])?;
        for (field, value) in party_entries(parties) {
            let set = self.keys.party(field, value);
            data.sadd(&set, &[id])?;
            data.expire(&set, self.settings.index_ttl, now);
        }
        Ok(())
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with_data(|_, _| Ok(()))
    }

    async fn put_vcon(&self, vcon: VconWrite<'_>, enqueue: &[String]) -> StoreResult<()> {
        let id = vcon.uuid.to_string();
        self.with_data(|data, now| {
            // The Lua script of the Redis store: SET, then a TTL only when nothing holds it.
            let key = self.keys.vcon(&id);
            data.set(&key, vcon.text.to_owned());
            let pending = data.hget(&self.keys.pending(&id), "count")?;
            let pending = pending
                .and_then(|count| count.parse::<i64>().ok())
                .unwrap_or(0);
            if enqueue.is_empty() && pending <= 0 && self.settings.vcon_ttl > 0 {
                data.expire(&key, self.settings.vcon_ttl, now);
            }
            self.index(
                data,
                &id,
                IndexScore::CreatedAt(vcon.score),
                vcon.parties,
                now,
            )?;
            for list in enqueue {
                self.raise_pending(data, &id, now)?;
                data.rpush(&self.keys.list(list), [id.clone()])?;
            }
            Ok(())
        })
    }

    async fn get_vcon(&self, uuid: Uuid) -> StoreResult<Option<String>> {
        let key = self.keys.vcon(uuid);
        self.with_data(|data, _| Ok(data.get(&key)?.map(str::to_owned)))
    }

    async fn get_vcons(&self, uuids: &[Uuid]) -> StoreResult<Vec<Option<String>>> {
        let keys: Vec<String> = uuids.iter().map(|uuid| self.keys.vcon(*uuid)).collect();
        self.with_data(|data, _| {
            keys.iter()
                .map(|key| Ok(data.get(key)?.map(str::to_owned)))
                .collect()
        })
    }

    async fn delete_vcon(&self, uuid: Uuid, parties: &PartyIndex) -> StoreResult<()> {
        let id = uuid.to_string();
        self.with_data(|data, _| {
            data.del(&self.keys.vcon(&id));
            data.zrem(&self.sorted_set, &[&sorted_set_member(&id), &id])?;
            for (field, value) in party_entries(parties) {
                data.srem(&self.keys.party(field, value), &id)?;
            }
            Ok(())
        })
    }

    async fn list_vcons(&self, query: ListQuery) -> StoreResult<Vec<String>> {
        self.with_data(|data, _| {
            let members = data.zrevrangebyscore(&self.sorted_set, query)?;
            Ok(members
                .into_iter()
                .map(|member| member_uuid(&member).to_owned())
                .collect())
        })
    }

    async fn search(&self, terms: &SearchTerms) -> StoreResult<Vec<String>> {
        let Some(sets) = search_sets(&self.keys, terms) else {
            return Ok(Vec::new());
        };
        let mut found = self.with_data(|data, _| data.sinter(&sets))?;
        found.sort_unstable();
        Ok(found)
    }

    async fn enqueue(&self, list: &str, uuids: &[Uuid]) -> StoreResult<()> {
        let list = self.keys.list(list);
        let ids: Vec<String> = uuids.iter().map(Uuid::to_string).collect();
        self.with_data(|data, now| {
            for id in &ids {
                self.raise_pending(data, id, now)?;
            }
            // Every count is raised before any uuid becomes visible to a consumer.
            if !ids.is_empty() {
                data.rpush(&list, ids.iter().cloned())?;
            }
            Ok(())
        })
    }

    async fn list_len(&self, list: &str) -> StoreResult<u64> {
        let list = self.keys.list(list);
        self.with_data(|data, _| data.llen(&list))
    }

    async fn pop_front(&self, list: &str, limit: usize) -> StoreResult<Vec<String>> {
        let list = self.keys.list(list);
        self.with_data(|data, _| data.lpop(&list, limit))
    }

    async fn dlq_items(&self, list: &str) -> StoreResult<Vec<String>> {
        let dlq = self.keys.dlq(list);
        self.with_data(|data, _| data.lrange(&dlq, 0, -1))
    }

    async fn dlq_reprocess(&self, list: &str, count: usize) -> StoreResult<usize> {
        if count == 0 {
            return Ok(0); // LRANGE 0 -1 would read the whole DLQ
        }
        let dlq = self.keys.dlq(list);
        let list = self.keys.list(list);
        self.with_data(|data, now| {
            // Under the lock nothing can interleave, so the items read are the items moved.
            let mut moved = 0;
            for id in data.lrange(&dlq, 0, count_to_stop(count))? {
                self.raise_pending(data, &id, now)?;
                if data.lmove(&dlq, &list, End::Left, End::Right)?.is_some() {
                    moved += 1;
                }
            }
            Ok(moved)
        })
    }

    async fn storage_dlq_items(&self, storage: &str) -> StoreResult<Vec<String>> {
        let dlq = self.keys.storage_dlq(storage);
        self.with_data(|data, _| data.lrange(&dlq, 0, -1))
    }

    async fn chain_status(&self, chain: ChainLists<'_>) -> StoreResult<ChainStatus> {
        self.with_data(|data, _| {
            let mut status = ChainStatus::default();
            for list in chain.ingress_lists {
                let depth = data.llen(&self.keys.list(list))?;
                let dlq_depth = data.llen(&self.keys.dlq(list))?;
                status.ingress.push((list.clone(), depth, dlq_depth));
            }
            for list in chain.egress_lists {
                status
                    .egress
                    .push((list.clone(), data.llen(&self.keys.list(list))?));
            }
            let stats = data.hgetall(&self.keys.chain_stats(chain.name))?;
            let counter = |name: &str| {
                stats
                    .iter()
                    .find(|(field, _)| field == name)
                    .and_then(|(_, value)| value.parse().ok())
                    .unwrap_or(0)
            };
            status.processed = counter("processed");
            status.halted = counter("halted");
            status.failed = counter("failed");
            for storage in chain.storages {
                let depth = data.llen(&self.keys.storage_dlq(storage))?;
                status.storage_dlq.push((storage.clone(), depth));
            }
            for instance in data.smembers(&self.keys.instances())? {
                if !data.exists(&self.keys.instance(&instance)) {
                    continue;
                }
                for list in chain.ingress_lists {
                    status.in_flight += data.llen(&self.keys.processing(list, &instance))?;
                }
            }
            Ok(status)
        })
    }

    async fn index_all(&self) -> StoreResult<u64> {
        let prefix = self.keys.vcon("");
        let all_keys = self.with_data(|data, _| Ok(data.keys_with_prefix(&prefix)))?;
        let mut indexed = 0;
        for batch in all_keys.chunks(INDEX_BATCH) {
            // Read under the lock, describe outside it (parsing is the slow part), write back.
            let texts = self.with_data(|data, _| {
                batch
                    .iter()
                    .map(|key| Ok(data.get(key)?.map(str::to_owned)))
                    .collect::<StoreResult<Vec<_>>>()
            })?;
            let receipt = chrono::Utc::now().timestamp();
            let entries: Vec<_> = batch
                .iter()
                .zip(texts)
                .filter_map(|(key, text)| describe_for_index(&self.keys, key, text?, receipt))
                .collect();
            self.with_data(|data, now| {
                for entry in &entries {
                    self.index(data, &entry.id, entry.score(), &entry.parties, now)?;
                }
                Ok(())
            })?;
            indexed += entries.len() as u64;
        }
        Ok(indexed)
    }

    async fn register_instance(&self, id: &str, info: &str, ttl: u64) -> StoreResult<()> {
        self.with_data(|data, now| {
            data.sadd(&self.keys.instances(), &[id])?;
            let heartbeat = self.keys.instance(id);
            data.set(&heartbeat, info.to_owned());
            data.expire(&heartbeat, ttl.max(1), now);
            Ok(())
        })
    }

    async fn heartbeat(&self, id: &str, info: &str, ttl: u64) -> StoreResult<bool> {
        self.with_data(|data, now| {
            let heartbeat = self.keys.instance(id);
            let alive = data.get(&heartbeat)?.is_some();
            data.set(&heartbeat, info.to_owned());
            data.expire(&heartbeat, ttl.max(1), now);
            data.sadd(&self.keys.instances(), &[id])?;
            Ok(alive)
        })
    }

    async fn note_consumed_list(&self, id: &str, list: &str) -> StoreResult<()> {
        let lists = self.keys.instance_lists(id);
        self.with_data(|data, _| data.sadd(&lists, &[list]).map(drop))
    }

    async fn claim(
        &self,
        list: &str,
        instance_id: &str,
        wait: Duration,
    ) -> StoreResult<Option<String>> {
        let processing = self.keys.processing(list, instance_id);
        let source = self.keys.list(list);
        let arrivals = self.with_data(|data, _| Ok(data.arrivals(&source)))?;
        let deadline = tokio::time::Instant::now() + wait.min(LONGEST_CLAIM_WAIT);
        loop {
            // Registered before looking, so that a push right after the look still wakes it.
            let arrival = arrivals.notified();
            tokio::pin!(arrival);
            arrival.as_mut().enable();
            if let Some(item) = self.with_data(|data, _| self.take(data, list, &processing))? {
                return Ok(Some(item));
            }
            if tokio::time::timeout_at(deadline, arrival).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn write_back(&self, uuid: Uuid, text: &str) -> StoreResult<()> {
        let key = self.keys.vcon(uuid);
        self.with_data(|data, _| {
            data.set(&key, text.to_owned());
            Ok(())
        })
    }

    async fn finish(&self, finish: &Finish<'_>) -> StoreResult<()> {
        let id = finish.uuid.to_string();
        self.with_data(|data, now| {
            if finish.outcome == RunOutcome::Failed {
                data.rpush(
                    &self.keys.dlq(finish.ingress_list),
                    [finish.item.to_owned()],
                )?;
            }
            for storage in finish.failed_storages {
                data.rpush(&self.keys.storage_dlq(storage), [id.clone()])?;
            }
            if finish.failed_storages.is_empty() {
                for Push { list, enqueue } in finish.egress {
                    self.push_to_list(data, list, *enqueue, &id, now)?;
                }
            } else if !finish.egress.is_empty() {
                let record =
                    EgressPending::new(finish.chain, finish.egress, finish.failed_storages);
                let key = self.keys.egress_pending(&id);
                data.set(&key, record.to_text());
                if self.settings.dlq_ttl > 0 {
                    data.expire(&key, self.settings.dlq_ttl, now);
                }
            }
            for Push { list, enqueue } in finish.routes {
                self.push_to_list(data, list, *enqueue, &id, now)?;
            }
            self.ttl_step(data, finish.uuid, finish.ttl, finish.decrement, now)?;
            if let Some(original) = finish.replaced {
                self.ttl_step(data, original, finish.ttl, true, now)?;
            }
            data.hincrby(
                &self.keys.chain_stats(finish.chain),
                finish.outcome.stats_field(),
                1,
            )?;
            let processing = self
                .keys
                .processing(finish.ingress_list, finish.instance_id);
            data.lrem_first(&processing, finish.item)?;
            Ok(())
        })
    }

    async fn dead_instances(&self, own_id: &str) -> StoreResult<Vec<String>> {
        self.with_data(|data, _| {
            let mut dead: Vec<String> = data
                .smembers(&self.keys.instances())?
                .into_iter()
                .filter(|id| id != own_id && !data.exists(&self.keys.instance(id)))
                .collect();
            dead.sort_unstable();
            Ok(dead)
        })
    }

    async fn recover_instance(&self, id: &str) -> StoreResult<Vec<(String, u64)>> {
        let lists_key = self.keys.instance_lists(id);
        self.with_data(|data, _| {
            let mut lists = data.smembers(&lists_key)?;
            lists.sort_unstable();
            let mut recovered = Vec::with_capacity(lists.len());
            for list in lists {
                let processing = self.keys.processing(&list, id);
                let destination = self.keys.list(&list);
                let mut moved = 0;
                // Right to left, one at a time: the oldest item ends at the head.
                while data
                    .lmove(&processing, &destination, End::Right, End::Left)?
                    .is_some()
                {
                    moved += 1;
                }
                recovered.push((list, moved));
            }
            data.del(&lists_key);
            data.srem(&self.keys.instances(), id)?;
            Ok(recovered)
        })
    }

    async fn processing_items(&self, list: &str, instance_id: &str) -> StoreResult<Vec<String>> {
        let processing = self.keys.processing(list, instance_id);
        self.with_data(|data, _| data.lrange(&processing, 0, -1))
    }

    async fn return_item(&self, list: &str, instance_id: &str, item: &str) -> StoreResult<bool> {
        let processing = self.keys.processing(list, instance_id);
        let destination = self.keys.list(list);
        self.with_data(|data, _| {
            if !data.lrem_first(&processing, item)? {
                return Ok(false);
            }
            data.write(&destination, |queue: &mut VecDeque<String>| {
                queue.push_front(item.to_owned())
            })?;
            data.wake(&destination);
            Ok(true)
        })
    }

    async fn deregister_instance(&self, id: &str) -> StoreResult<()> {
        let heartbeat = self.keys.instance(id);
        self.with_data(|data, _| {
            data.del(&heartbeat);
            Ok(())
        })
    }

    async fn storage_dlq_head(&self, storage: &str, count: usize) -> StoreResult<Vec<String>> {
        if count == 0 {
            return Ok(Vec::new()); // LRANGE 0 -1 would read the whole list
        }
        let dlq = self.keys.storage_dlq(storage);
        self.with_data(|data, _| data.lrange(&dlq, 0, count_to_stop(count)))
    }

    async fn storage_dlq_done(
        &self,
        storage: &str,
        uuid: &str,
        released: bool,
        enqueue_lists: &[String],
    ) -> StoreResult<EgressRelease> {
        let dlq = self.keys.storage_dlq(storage);
        self.with_data(|data, now| {
            let release = if released {
                self.release_egress(data, storage, uuid, enqueue_lists, now)?
            } else {
                EgressRelease::NoRecord
            };
            data.lrem_first(&dlq, uuid)?;
            Ok(release)
        })
    }

    async fn put_blob(&self, name: &str, text: &str, ttl: u64) -> StoreResult<()> {
        let key = self.keys.blob(name);
        self.with_data(|data, now| {
            data.set(&key, text.to_owned());
            if ttl > 0 {
                data.expire(&key, ttl, now);
            }
            Ok(())
        })
    }

    async fn get_blob(&self, name: &str) -> StoreResult<Option<String>> {
        let key = self.keys.blob(name);
        self.with_data(|data, _| Ok(data.get(&key)?.map(str::to_owned)))
    }

    async fn delete_blob(&self, name: &str) -> StoreResult<bool> {
        let key = self.keys.blob(name);
        self.with_data(|data, _| Ok(data.del(&key)))
    }
}

/// A pending hash's `count`, as the Redis script reads it: missing or not a number is 0.
fn parse_count(count: Option<&str>) -> i64 {
    count.and_then(|count| count.parse().ok()).unwrap_or(0)
}

/// `LRANGE` stop index of the first `count` items (`count` ≥ 1: for 0 it is -1, the whole list).
fn count_to_stop(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX) - 1
}

/// The Redis error for an operation on a key of another type.
fn wrong_type() -> StoreError {
    StoreError::Backend("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

/// A Redis value.
#[derive(Debug)]
enum Value {
    Text(String),
    List(VecDeque<String>),
    Set(HashSet<String>),
    Hash(HashMap<String, String>),
    Sorted(SortedSet),
}

impl Value {
    /// The `TYPE` of the value.
    fn type_name(&self) -> &'static str {
        match self {
            Value::Text(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Hash(_) => "hash",
            Value::Sorted(_) => "zset",
        }
    }

    /// Redis deletes an aggregate when its last element goes.
    fn is_empty_aggregate(&self) -> bool {
        match self {
            Value::Text(_) => false,
            Value::List(list) => list.is_empty(),
            Value::Set(set) => set.is_empty(),
            Value::Hash(hash) => hash.is_empty(),
            Value::Sorted(sorted) => sorted.scores.is_empty(),
        }
    }
}

/// A sorted set: scores by member, and members ordered by (score, member) as Redis orders them.
#[derive(Debug, Default)]
struct SortedSet {
    scores: HashMap<String, i64>,
    order: BTreeSet<(i64, String)>,
}

/// Access to one aggregate variant of [`Value`].
trait Aggregate: Default + Sized {
    fn wrap(self) -> Value;
    fn peek(value: &Value) -> Option<&Self>;
    fn peek_mut(value: &mut Value) -> Option<&mut Self>;
}

macro_rules! aggregate {
    ($type:ty, $variant:ident) => {
        impl Aggregate for $type {
            fn wrap(self) -> Value {
                Value::$variant(self)
            }
            fn peek(value: &Value) -> Option<&Self> {
                match value {
                    Value::$variant(inner) => Some(inner),
                    _ => None,
                }
            }
            fn peek_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$variant(inner) => Some(inner),
                    _ => None,
                }
            }
        }
    };
}

aggregate!(VecDeque<String>, List);
aggregate!(HashSet<String>, Set);
aggregate!(HashMap<String, String>, Hash);
aggregate!(SortedSet, Sorted);

/// One key: its value and its deadline.
#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: Option<Instant>,
}

/// The keyspace. Methods are Redis commands with Redis semantics.
#[derive(Debug, Default)]
struct Data {
    entries: HashMap<String, Entry>,
    /// `(deadline, key)` of every key with a TTL, exactly one per such key.
    deadlines: BTreeSet<(Instant, String)>,
    /// Per list key, what claims waiting on the list wait on; every push wakes them.
    arrivals: HashMap<String, Arc<Notify>>,
}

/// An end of a list, for [`Data::lmove`].
#[derive(Debug, Clone, Copy)]
enum End {
    Left,
    Right,
}

impl Data {
    /// Removes every key whose deadline is not after `now`.
    fn purge(&mut self, now: Instant) {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                break;
            }
            if let Some((_, key)) = self.deadlines.pop_first() {
                self.entries.remove(&key);
            }
        }
    }

    fn exists(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    fn del(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(entry) => {
                self.forget_deadline(key, entry.expires_at);
                true
            }
            None => false,
        }
    }

    fn forget_deadline(&mut self, key: &str, deadline: Option<Instant>) {
        if let Some(deadline) = deadline {
            self.deadlines.remove(&(deadline, key.to_owned()));
        }
    }

    /// `EXPIRE key seconds`: whether the key exists. 0 seconds deletes it, as in Redis.
    fn expire(&mut self, key: &str, seconds: u64, now: Instant) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        let Some(deadline) = now.checked_add(Duration::from_secs(seconds)) else {
            // Beyond what an Instant can hold: as good as never.
            let previous = entry.expires_at.take();
            self.forget_deadline(key, previous);
            return true;
        };
        if seconds == 0 {
            return self.del(key);
        }
        let previous = entry.expires_at.replace(deadline);
        self.forget_deadline(key, previous);
        self.deadlines.insert((deadline, key.to_owned()));
        true
    }

    /// `PERSIST key`: whether a TTL was removed.
    fn persist(&mut self, key: &str) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        let previous = entry.expires_at.take();
        self.forget_deadline(key, previous);
        previous.is_some()
    }

    /// `TTL key`: -2 for a missing key, -1 without a TTL, else whole seconds (rounded as Redis).
    fn ttl(&self, key: &str, now: Instant) -> i64 {
        match self.entries.get(key) {
            None => -2,
            Some(Entry {
                expires_at: None, ..
            }) => -1,
            Some(Entry {
                expires_at: Some(deadline),
                ..
            }) => {
                let millis = deadline.saturating_duration_since(now).as_millis();
                i64::try_from((millis + 500) / 1000).unwrap_or(i64::MAX)
            }
        }
    }

    fn get(&self, key: &str) -> Result<Option<&str>, StoreError> {
        match self.entries.get(key).map(|entry| &entry.value) {
            None => Ok(None),
            Some(Value::Text(text)) => Ok(Some(text)),
            Some(_) => Err(wrong_type()),
        }
    }

    /// `SET key text KEEPTTL`: replaces the value, keeping the TTL.
    fn set_keep_ttl(&mut self, key: &str, text: String) {
        match self.entries.get_mut(key) {
            Some(entry) => entry.value = Value::Text(text),
            None => self.set(key, text),
        }
    }

    /// `SET key text`: replaces any value and clears the TTL.
    fn set(&mut self, key: &str, text: String) {
        self.del(key);
        self.entries.insert(
            key.to_owned(),
            Entry {
                value: Value::Text(text),
                expires_at: None,
            },
        );
    }

    /// The aggregate at `key`, if any.
    fn read<A: Aggregate>(&self, key: &str) -> Result<Option<&A>, StoreError> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(entry) => A::peek(&entry.value).map(Some).ok_or_else(wrong_type),
        }
    }

    /// Applies `change` to the aggregate at `key`, created empty if missing and deleted if the
    /// change leaves it empty.
    fn write<A: Aggregate, T>(
        &mut self,
        key: &str,
        change: impl FnOnce(&mut A) -> T,
    ) -> Result<T, StoreError> {
        let entry = match self.entries.get_mut(key) {
            Some(entry) => entry,
            None => self.entries.entry(key.to_owned()).or_insert(Entry {
                value: A::default().wrap(),
                expires_at: None,
            }),
        };
        let aggregate = A::peek_mut(&mut entry.value).ok_or_else(wrong_type)?;
        let result = change(aggregate);
        if entry.value.is_empty_aggregate() {
            self.del(key);
        }
        Ok(result)
    }

    fn hget(&self, key: &str, field: &str) -> Result<Option<&str>, StoreError> {
        let hash = self.read::<HashMap<String, String>>(key)?;
        Ok(hash.and_then(|hash| hash.get(field)).map(String::as_str))
    }

    fn hgetall(&self, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        let hash = self.read::<HashMap<String, String>>(key)?;
        Ok(hash
            .map(|hash| hash.iter().map(|(f, v)| (f.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    fn hset(&mut self, key: &str, field: &str, value: String) -> Result<(), StoreError> {
        self.write(key, |hash: &mut HashMap<String, String>| {
            hash.insert(field.to_owned(), value);
        })
    }

    fn hincrby(&mut self, key: &str, field: &str, by: i64) -> Result<i64, StoreError> {
        self.write(key, |hash: &mut HashMap<String, String>| {
            let current = match hash.get(field) {
                None => 0,
                Some(text) => text
                    .parse::<i64>()
                    .map_err(|_| StoreError::Backend("ERR hash value is not an integer".into()))?,
            };
            let next = current.checked_add(by).ok_or_else(|| {
                StoreError::Backend("ERR increment or decrement would overflow".into())
            })?;
            hash.insert(field.to_owned(), next.to_string());
            Ok(next)
        })?
    }

    fn rpush(
        &mut self,
        key: &str,
        items: impl IntoIterator<Item = String>,
    ) -> Result<u64, StoreError> {
        let len = self.write(key, |list: &mut VecDeque<String>| {
            list.extend(items);
            list.len() as u64
        })?;
        self.wake(key);
        Ok(len)
    }

    /// What claims waiting on the list `key` wait on.
    fn arrivals(&mut self, key: &str) -> Arc<Notify> {
        self.arrivals.entry(key.to_owned()).or_default().clone()
    }

    /// Wakes the claims waiting on the list `key`: it just received items.
    fn wake(&self, key: &str) {
        if let Some(arrivals) = self.arrivals.get(key) {
            arrivals.notify_waiters();
        }
    }

    /// `LREM key 1 item`: whether an entry was removed (the first one from the head).
    fn lrem_first(&mut self, key: &str, item: &str) -> Result<bool, StoreError> {
        if self.read::<VecDeque<String>>(key)?.is_none() {
            return Ok(false);
        }
        self.write(key, |list: &mut VecDeque<String>| {
            match list.iter().position(|entry| entry == item) {
                Some(index) => list.remove(index).is_some(),
                None => false,
            }
        })
    }

    fn lpop(&mut self, key: &str, count: usize) -> Result<Vec<String>, StoreError> {
        if self.read::<VecDeque<String>>(key)?.is_none() {
            return Ok(Vec::new());
        }
        self.write(key, |list: &mut VecDeque<String>| {
            let count = count.min(list.len());
            list.drain(..count).collect()
        })
    }

    fn llen(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self
            .read::<VecDeque<String>>(key)?
            .map_or(0, |list| list.len() as u64))
    }

    /// `LRANGE key start stop` with Redis's index rules (negative from the end, inclusive).
    fn lrange(&self, key: &str, start: i64, stop: i64) -> Result<Vec<String>, StoreError> {
        let Some(list) = self.read::<VecDeque<String>>(key)? else {
            return Ok(Vec::new());
        };
        let len = i64::try_from(list.len()).unwrap_or(i64::MAX);
        let start = if start < 0 {
            (len + start).max(0)
        } else {
            start
        };
        let stop = if stop < 0 {
            len + stop
        } else {
            stop.min(len - 1)
        };
        if start > stop || start >= len {
            return Ok(Vec::new());
        }
        // Both bounds are within 0..len here.
        let (start, stop) = (start as usize, stop as usize);
        Ok(list.range(start..=stop).cloned().collect())
    }

    /// `LMOVE source destination <from> <to>`.
    fn lmove(
        &mut self,
        source: &str,
        destination: &str,
        from: End,
        to: End,
    ) -> Result<Option<String>, StoreError> {
        // Redis checks both types before moving anything.
        self.read::<VecDeque<String>>(destination)?;
        if self.read::<VecDeque<String>>(source)?.is_none() {
            return Ok(None);
        }
        let item = self.write(source, |list: &mut VecDeque<String>| match from {
            End::Left => list.pop_front(),
            End::Right => list.pop_back(),
        })?;
        let Some(item) = item else {
            return Ok(None);
        };
        match to {
            End::Right => {
                self.rpush(destination, [item.clone()])?;
            }
            End::Left => {
                self.write(destination, |list: &mut VecDeque<String>| {
                    list.push_front(item.clone())
                })?;
                self.wake(destination);
            }
        }
        Ok(Some(item))
    }

    fn sadd(&mut self, key: &str, members: &[&str]) -> Result<u64, StoreError> {
        self.write(key, |set: &mut HashSet<String>| {
            members
                .iter()
                .filter(|member| set.insert((**member).to_owned()))
                .count() as u64
        })
    }

    fn srem(&mut self, key: &str, member: &str) -> Result<bool, StoreError> {
        if self.read::<HashSet<String>>(key)?.is_none() {
            return Ok(false);
        }
        self.write(key, |set: &mut HashSet<String>| set.remove(member))
    }

    fn smembers(&self, key: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .read::<HashSet<String>>(key)?
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default())
    }

    /// `SINTER keys…`: members of every set (a missing key is an empty set).
    fn sinter(&self, keys: &[String]) -> Result<Vec<String>, StoreError> {
        let mut sets = Vec::with_capacity(keys.len());
        for key in keys {
            match self.read::<HashSet<String>>(key)? {
                Some(set) => sets.push(set),
                None => return Ok(Vec::new()),
            }
        }
        sets.sort_by_key(|set| set.len());
        let Some((smallest, others)) = sets.split_first() else {
            return Ok(Vec::new());
        };
        Ok(smallest
            .iter()
            .filter(|member| others.iter().all(|set| set.contains(*member)))
            .cloned()
            .collect())
    }

    /// `ZADD key [NX] score member`: whether the member was added.
    fn zadd(
        &mut self,
        key: &str,
        score: i64,
        member: String,
        only_new: bool,
    ) -> Result<bool, StoreError> {
        self.write(key, |sorted: &mut SortedSet| {
            match sorted.scores.get(&member) {
                Some(_) if only_new => false,
                Some(&old) => {
                    sorted.order.remove(&(old, member.clone()));
                    sorted.order.insert((score, member.clone()));
                    sorted.scores.insert(member, score);
                    false
                }
                None => {
                    sorted.order.insert((score, member.clone()));
                    sorted.scores.insert(member, score);
                    true
                }
            }
        })
    }

    fn zrem(&mut self, key: &str, members: &[&str]) -> Result<u64, StoreError> {
        if self.read::<SortedSet>(key)?.is_none() {
            return Ok(0);
        }
        self.write(key, |sorted: &mut SortedSet| {
            let mut removed = 0;
            for member in members {
                if let Some(score) = sorted.scores.remove(*member) {
                    sorted.order.remove(&(score, (*member).to_owned()));
                    removed += 1;
                }
            }
            removed
        })
    }

    fn zscore(&self, key: &str, member: &str) -> Result<Option<i64>, StoreError> {
        let sorted = self.read::<SortedSet>(key)?;
        Ok(sorted.and_then(|sorted| sorted.scores.get(member).copied()))
    }

    /// `ZREVRANGEBYSCORE key <until|+inf> <since|-inf> LIMIT offset count`: highest score first,
    /// equal scores in reverse byte order of the member.
    fn zrevrangebyscore(&self, key: &str, query: ListQuery) -> Result<Vec<String>, StoreError> {
        let Some(sorted) = self.read::<SortedSet>(key)? else {
            return Ok(Vec::new());
        };
        let lower = match query.since {
            Some(since) => Bound::Included((since, String::new())),
            None => Bound::Unbounded,
        };
        let upper = match query.until.map(|until| until.checked_add(1)) {
            Some(Some(above)) => Bound::Excluded((above, String::new())),
            Some(None) | None => Bound::Unbounded,
        };
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let count = usize::try_from(query.count).unwrap_or(usize::MAX);
        Ok(sorted
            .order
            .range((lower, upper))
            .rev()
            .skip(offset)
            .take(count)
            .map(|(_, member)| member.clone())
            .collect())
    }

    /// Every string key starting with `prefix`.
    fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(key, entry)| key.starts_with(prefix) && matches!(entry.value, Value::Text(_)))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// One command of [`MemoryStore::command`].
    fn command(&mut self, args: &[&str], now: Instant) -> Result<Reply, StoreError> {
        let syntax = || StoreError::Backend(format!("ERR unsupported command or syntax: {args:?}"));
        let number = |text: &str| text.parse::<i64>().map_err(|_| syntax());
        let (name, rest) = args.split_first().ok_or_else(syntax)?;
        let text = |value: String| Reply::BulkString(value.into_bytes());
        let texts = |values: Vec<String>| Reply::Array(values.into_iter().map(text).collect());
        let int = |value: i64| Reply::Int(value);
        let flag = |value: bool| Reply::Int(i64::from(value));
        let seconds = |value: &str| value.parse::<u64>().map_err(|_| syntax());
        Ok(match (name.to_ascii_uppercase().as_str(), rest) {
            ("GET", [key]) => self
                .get(key)?
                .map_or(Reply::Nil, |value| text(value.to_owned())),
            ("SET", [key, value]) => {
                self.set(key, (*value).to_owned());
                Reply::Okay
            }
            ("SET", [key, value, ex, ttl]) if ex.eq_ignore_ascii_case("EX") => {
                let ttl = seconds(ttl)?;
                self.set(key, (*value).to_owned());
                self.expire(key, ttl, now);
                Reply::Okay
            }
            ("DEL", keys) => int(keys.iter().filter(|key| self.del(key)).count() as i64),
            ("EXISTS", [key]) => flag(self.exists(key)),
            ("TYPE", [key]) => Reply::SimpleString(
                self.entries
                    .get(*key)
                    .map_or("none", |entry| entry.value.type_name())
                    .to_owned(),
            ),
            ("TTL", [key]) => int(self.ttl(key, now)),
            ("EXPIRE", [key, ttl]) => flag(self.expire(key, seconds(ttl)?, now)),
            ("PERSIST", [key]) => flag(self.persist(key)),
            ("HGET", [key, field]) => self
                .hget(key, field)?
                .map_or(Reply::Nil, |value| text(value.to_owned())),
            ("HGETALL", [key]) => Reply::Array(
                self.hgetall(key)?
                    .into_iter()
                    .flat_map(|(field, value)| [text(field), text(value)])
                    .collect(),
            ),
            ("HINCRBY", [key, field, by]) => int(self.hincrby(key, field, number(by)?)?),
            ("RPUSH", [key, items @ ..]) if !items.is_empty() => {
                int(self.rpush(key, items.iter().map(|item| (*item).to_owned()))? as i64)
            }
            ("LPOP", [key, count]) => texts(self.lpop(key, seconds(count)? as usize)?),
            ("LRANGE", [key, start, stop]) => {
                texts(self.lrange(key, number(start)?, number(stop)?)?)
            }
            ("LLEN", [key]) => int(self.llen(key)? as i64),
            ("SADD", [key, members @ ..]) if !members.is_empty() => {
                int(self.sadd(key, members)? as i64)
            }
            ("SREM", [key, member]) => flag(self.srem(key, member)?),
            ("SMEMBERS", [key]) => texts(self.smembers(key)?),
            ("SISMEMBER", [key, member]) => flag(
                self.read::<HashSet<String>>(key)?
                    .is_some_and(|set| set.contains(*member)),
            ),
            ("ZADD", [key, score, member]) => {
                flag(self.zadd(key, number(score)?, (*member).to_owned(), false)?)
            }
            ("ZADD", [key, nx, score, member]) if nx.eq_ignore_ascii_case("NX") => {
                flag(self.zadd(key, number(score)?, (*member).to_owned(), true)?)
            }
            ("ZSCORE", [key, member]) => self
                .zscore(key, member)?
                .map_or(Reply::Nil, |score| text(score.to_string())),
            ("ZREM", [key, members @ ..]) if !members.is_empty() => {
                int(self.zrem(key, members)? as i64)
            }
            ("KEYS", [pattern]) => {
                let prefix = pattern.strip_suffix('*').ok_or_else(syntax)?;
                let mut keys: Vec<String> = self
                    .entries
                    .keys()
                    .filter(|key| key.starts_with(prefix))
                    .cloned()
                    .collect();
                keys.sort_unstable();
                texts(keys)
            }
            _ => return Err(syntax()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Data {
        Data::default()
    }

    #[test]
    fn expired_keys_are_purged_and_deadlines_stay_one_per_key() {
        let mut data = data();
        let start = Instant::now();
        data.set("a", "1".into());
        assert!(data.expire("a", 10, start));
        assert!(data.expire("a", 5, start));
        assert_eq!(data.deadlines.len(), 1);
        assert_eq!(data.ttl("a", start), 5);
        data.purge(start + Duration::from_secs(4));
        assert!(data.exists("a"));
        data.purge(start + Duration::from_secs(5));
        assert!(!data.exists("a"));
        assert!(data.deadlines.is_empty());
    }

    #[test]
    fn set_and_persist_clear_the_ttl() {
        let mut data = data();
        let now = Instant::now();
        data.set("a", "1".into());
        data.expire("a", 10, now);
        data.set("a", "2".into());
        assert_eq!(data.ttl("a", now), -1);
        assert!(data.deadlines.is_empty());
        data.expire("a", 10, now);
        assert!(data.persist("a"));
        assert!(!data.persist("a"));
        assert_eq!(data.ttl("a", now), -1);
        assert_eq!(data.ttl("missing", now), -2);
        assert!(data.deadlines.is_empty());
    }

    #[test]
    fn expire_zero_deletes_and_missing_keys_are_not_created() {
        let mut data = data();
        let now = Instant::now();
        assert!(!data.expire("missing", 10, now));
        assert!(!data.exists("missing"));
        data.set("a", "1".into());
        assert!(data.expire("a", 0, now));
        assert!(!data.exists("a"));
    }

    #[test]
    fn empty_aggregates_disappear_with_their_ttl() {
        let mut data = data();
        let now = Instant::now();
        data.rpush("l", ["x".to_owned()]).unwrap();
        data.expire("l", 100, now);
        assert_eq!(data.lpop("l", 5).unwrap(), vec!["x"]);
        assert!(!data.exists("l"));
        assert!(data.deadlines.is_empty());
        assert_eq!(data.lpop("l", 5).unwrap(), Vec::<String>::new());
        assert!(!data.srem("s", "x").unwrap());
        assert_eq!(data.zrem("z", &["x"]).unwrap(), 0);
        assert!(data.entries.is_empty());
    }

    #[test]
    fn lrange_follows_redis_index_rules() {
        let mut data = data();
        data.rpush("l", ["a", "b", "c"].map(String::from)).unwrap();
        assert_eq!(data.lrange("l", 0, -1).unwrap(), ["a", "b", "c"]);
        assert_eq!(data.lrange("l", 0, 1).unwrap(), ["a", "b"]);
        assert_eq!(data.lrange("l", -2, -1).unwrap(), ["b", "c"]);
        assert_eq!(data.lrange("l", 1, 100).unwrap(), ["b", "c"]);
        assert_eq!(data.lrange("l", -100, 0).unwrap(), ["a"]);
        assert!(data.lrange("l", 3, 5).unwrap().is_empty());
        assert!(data.lrange("l", 2, 1).unwrap().is_empty());
    }

    #[test]
    fn lmove_to_the_same_list_rotates() {
        let mut data = data();
        data.rpush("l", ["a", "b"].map(String::from)).unwrap();
        assert_eq!(
            data.lmove("l", "l", End::Left, End::Right)
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(data.lrange("l", 0, -1).unwrap(), ["b", "a"]);
        assert_eq!(
            data.lmove("l", "l", End::Right, End::Left)
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(data.lrange("l", 0, -1).unwrap(), ["a", "b"]);
        assert_eq!(
            data.lmove("empty", "l", End::Left, End::Right).unwrap(),
            None
        );
    }

    #[test]
    fn lrem_first_removes_the_first_match_only() {
        let mut data = data();
        data.rpush("l", ["a", "b", "a"].map(String::from)).unwrap();
        assert!(data.lrem_first("l", "a").unwrap());
        assert_eq!(data.lrange("l", 0, -1).unwrap(), ["b", "a"]);
        assert!(!data.lrem_first("l", "x").unwrap());
        assert!(data.lrem_first("l", "b").unwrap());
        assert!(data.lrem_first("l", "a").unwrap());
        assert!(!data.exists("l"));
        assert!(!data.lrem_first("l", "a").unwrap());
    }

    #[test]
    fn set_keep_ttl_keeps_the_deadline() {
        let mut data = data();
        let now = Instant::now();
        data.set("k", "1".into());
        data.expire("k", 10, now);
        data.set_keep_ttl("k", "2".into());
        assert_eq!(data.get("k").unwrap(), Some("2"));
        assert_eq!(data.ttl("k", now), 10);
        data.set_keep_ttl("new", "3".into());
        assert_eq!(data.ttl("new", now), -1);
    }

    #[test]
    fn wrong_types_are_errors_and_change_nothing() {
        let mut data = data();
        data.set("s", "text".into());
        assert!(data.rpush("s", ["x".to_owned()]).is_err());
        assert!(data.hincrby("s", "count", 1).is_err());
        assert_eq!(data.get("s").unwrap(), Some("text"));
        data.rpush("l", ["x".to_owned()]).unwrap();
        assert!(data.get("l").is_err());
        assert!(data.lmove("l", "s", End::Left, End::Right).is_err());
        assert_eq!(data.llen("l").unwrap(), 1);
    }

    #[test]
    fn sorted_set_orders_like_redis() {
        let mut data = data();
        for (score, member) in [(1, "a"), (2, "b"), (2, "c"), (3, "d")] {
            data.zadd("z", score, member.into(), false).unwrap();
        }
        let query = |since, until, offset, count| ListQuery {
            since,
            until,
            offset,
            count,
        };
        assert_eq!(
            data.zrevrangebyscore("z", query(None, None, 0, 10))
                .unwrap(),
            ["d", "c", "b", "a"]
        );
        assert_eq!(
            data.zrevrangebyscore("z", query(Some(2), Some(2), 0, 10))
                .unwrap(),
            ["c", "b"]
        );
        assert_eq!(
            data.zrevrangebyscore("z", query(None, None, 1, 2)).unwrap(),
            ["c", "b"]
        );
        assert!(data
            .zrevrangebyscore("z", query(None, None, 0, 0))
            .unwrap()
            .is_empty());
        assert_eq!(
            data.zrevrangebyscore("z", query(None, Some(i64::MAX), 0, 1))
                .unwrap(),
            ["d"]
        );
        // NX keeps the score; a plain ZADD moves the member.
        assert!(!data.zadd("z", 9, "a".into(), true).unwrap());
        assert_eq!(data.zscore("z", "a").unwrap(), Some(1));
        data.zadd("z", 9, "a".into(), false).unwrap();
        assert_eq!(data.zscore("z", "a").unwrap(), Some(9));
        assert_eq!(data.entries.len(), 1);
    }

    #[test]
    fn sinter_of_a_missing_set_is_empty() {
        let mut data = data();
        data.sadd("a", &["1", "2", "3"]).unwrap();
        data.sadd("b", &["2", "3", "4"]).unwrap();
        let mut both = data.sinter(&["a".into(), "b".into()]).unwrap();
        both.sort();
        assert_eq!(both, ["2", "3"]);
        assert!(data.sinter(&["a".into(), "c".into()]).unwrap().is_empty());
    }

    #[test]
    fn command_answers_like_redis() {
        let mut data = data();
        let now = Instant::now();
        let mut run = |args: &[&str]| data.command(args, now).unwrap();
        assert_eq!(run(&["SET", "k", "v", "EX", "10"]), Reply::Okay);
        assert_eq!(run(&["TTL", "k"]), Reply::Int(10));
        assert_eq!(run(&["GET", "k"]), Reply::BulkString(b"v".to_vec()));
        assert_eq!(run(&["TYPE", "k"]), Reply::SimpleString("string".into()));
        assert_eq!(run(&["HINCRBY", "h", "count", "2"]), Reply::Int(2));
        assert_eq!(
            run(&["HGET", "h", "count"]),
            Reply::BulkString(b"2".to_vec())
        );
        assert_eq!(run(&["RPUSH", "l", "a", "b"]), Reply::Int(2));
        assert_eq!(run(&["LLEN", "l"]), Reply::Int(2));
        assert_eq!(run(&["ZADD", "z", "5", "m"]), Reply::Int(1));
        assert_eq!(run(&["ZSCORE", "z", "m"]), Reply::BulkString(b"5".to_vec()));
        assert_eq!(run(&["DEL", "k", "l", "none"]), Reply::Int(2));
        assert_eq!(run(&["EXISTS", "k"]), Reply::Int(0));
        assert!(data.command(&["FLUSHALL"], now).is_err());
    }
}
