//! The embedded store (config.md §11): the state spec/redis.md describes, kept in the process,
//! for a first run without Redis and for fast tests.
//!
//! It keeps what the product reads back, in the product's terms:
//! - the vCons' texts, each with its expiry, and per vCon the runs waiting or in flight (the
//!   pending count, the longest TTL they asked for, and the count's own 30-day expiry);
//! - the created-at index (a score per uuid) and the party index (the uuids of each party
//!   value, each set with its expiry, renewed on each addition);
//! - lists of uuids: ingress and egress lists, processing lists, DLQs. They are named as their
//!   Redis keys are, without the prefix (`DLQ:<list>`, `{<list>}:processing:<id>`), so a name
//!   reaches the same list on both stores (`GET /vcon/egress?egress_list=DLQ:calls` reads the
//!   DLQ of `calls` on either);
//! - the registered instances, their heartbeats' expiry, and the lists each consumed;
//! - the chain counters, the egress-pending records (with their expiry), `redis_storage` blobs.
//!
//! It keeps nothing else: no key prefix (one store is one namespace), no heartbeat contents
//! (nothing reads them back), no trace contexts (only Python producers leave them, and they
//! cannot reach this store), no RedisJSON form (texts are kept exactly as written).
//!
//! Every operation runs synchronously under one mutex, so each is atomic as its Redis script
//! or transaction is; nothing awaits while holding it. It cannot fail.
//!
//! Expiry: every entry with a deadline also sits in its map's ordered set of deadlines, exactly
//! once; each operation first drops what is due, so nothing expired is ever seen or kept.
//!
//! Blocking: a claim waiting on an empty list waits on that list's [`Notify`], which every push
//! onto the list wakes, as Redis serves the clients blocked on a list.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;
use uuid::Uuid;

use super::keys::{Keys, PENDING_TTL_SECONDS};
use super::{
    asked_ttl, longest_ttl, party_entries, search_sets, ChainLists, ChainStatus, EgressPending,
    EgressRelease, Finish, IndexEntry, IndexScore, ListQuery, Push, RunOutcome, SearchTerms, Store,
    StoreResult, StoreSettings, VconWrite, LONGEST_CLAIM_WAIT,
};
use crate::vcon::PartyIndex;

/// How many vCons [`Store::index_all`] reads per step; their texts are parsed outside the lock.
const INDEX_BATCH: usize = 500;

/// The in-process store.
#[derive(Debug)]
pub struct MemoryStore {
    settings: StoreSettings,
    /// Names of lists and party sets: their Redis key names without the prefix.
    names: Keys,
    state: Mutex<State>,
}

/// Everything the store holds.
#[derive(Debug, Default)]
struct State {
    /// vCon texts by uuid.
    vcons: Expiring<String>,
    /// The runs waiting or in flight, by uuid; only counts above 0 are kept.
    pending: Expiring<Pending>,
    created: CreatedIndex,
    /// The uuids of each party value, by set name (`tel:<value>`…).
    parties: Expiring<HashSet<String>>,
    lists: Lists,
    /// Registered instance ids.
    instances: HashSet<String>,
    /// The instances whose heartbeat has not expired.
    heartbeats: Expiring<()>,
    /// The lists each instance consumed, by instance id.
    consumed: HashMap<String, BTreeSet<String>>,
    /// Per chain, the runs counted by outcome field (`processed`, `halted`, `failed`).
    counters: HashMap<String, HashMap<&'static str, u64>>,
    /// The egress held back by dead-lettered storage writes, by uuid.
    egress_pending: Expiring<EgressPending>,
    /// `redis_storage` values by name.
    blobs: Expiring<String>,
}

/// The runs of one vCon waiting or in flight (redis.md §2, the pending hash).
#[derive(Debug)]
struct Pending {
    /// Above 0.
    count: i64,
    /// The longest TTL asked by the runs that finished (-1 = never); `None` before the first.
    ttl: Option<i64>,
}

impl MemoryStore {
    /// An empty store with the given settings.
    pub fn new(settings: StoreSettings) -> MemoryStore {
        MemoryStore {
            settings,
            names: Keys::default(),
            state: Mutex::new(State::default()),
        }
    }

    /// Runs `op` on the state, what is due removed first; `now` is the operation's instant.
    fn with_state<T>(&self, op: impl FnOnce(&mut State, Instant) -> T) -> T {
        let now = Instant::now();
        // A panic under the lock leaves at worst one half-applied operation, as a pipeline cut
        // short does on Redis; refusing every later call would be worse, so the state is kept.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.purge(now);
        op(&mut state, now)
    }

    /// Enqueue protocol steps 1–2 (redis.md §3.1): the vCon loses its expiry, its count rises.
    fn raise_pending(&self, state: &mut State, id: &str, now: Instant) {
        state.vcons.set_deadline(id, None);
        let pending = state.pending.get_or_insert_with(id, || Pending {
            count: 0,
            ttl: None,
        });
        pending.count = pending.count.saturating_add(1);
        state
            .pending
            .set_deadline(id, deadline(now, PENDING_TTL_SECONDS));
    }

    /// The push of `id` onto one list: the enqueue protocol when an enabled chain reads it.
    fn push_to_list(&self, state: &mut State, list: &str, enqueue: bool, id: &str, now: Instant) {
        if enqueue {
            self.raise_pending(state, id, now);
        }
        state.lists.push_back(&self.names.list(list), id.to_owned());
    }

    /// The TTL step (redis.md §4.2): the count drops (when `decrement`), the longest TTL asked
    /// is kept, and applied once nothing holds the vCon.
    fn ttl_step(&self, state: &mut State, id: &str, ttl: u64, decrement: bool, now: Instant) {
        let asked = asked_ttl(ttl);
        if let Some(pending) = state.pending.get_mut(id) {
            if decrement {
                pending.count -= 1;
            }
            let ttl = pending.ttl.map_or(asked, |kept| longest_ttl(kept, asked));
            if pending.count > 0 {
                pending.ttl = Some(ttl);
                return;
            }
            state.pending.remove(id);
            state.vcons.set_deadline(id, ttl_deadline(now, ttl));
        } else {
            state.vcons.set_deadline(id, ttl_deadline(now, asked));
        }
    }

    /// Adds `id` to the created-at index and the party index, as `put_vcon` does.
    fn index(
        &self,
        state: &mut State,
        id: &str,
        score: IndexScore,
        parties: &PartyIndex,
        now: Instant,
    ) {
        match score {
            IndexScore::CreatedAt(score) => state.created.set(id, score),
            IndexScore::KeepOr(score) => state.created.set_if_absent(id, score),
        }
        let expiry = deadline(now, self.settings.index_ttl);
        for (field, value) in party_entries(parties) {
            let set = self.names.party(field, value);
            state
                .parties
                .get_or_insert_with(&set, HashSet::new)
                .insert(id.to_owned());
            state.parties.set_deadline(&set, expiry);
        }
    }

    /// Settles the egress-pending record of `uuid` for a storage whose write succeeded.
    fn release_egress(
        &self,
        state: &mut State,
        storage: &str,
        uuid: &str,
        enqueue_lists: &[String],
        now: Instant,
    ) -> EgressRelease {
        let Some(record) = state.egress_pending.get_mut(uuid) else {
            return EgressRelease::NoRecord;
        };
        record.storages.retain(|name| name != storage);
        if !record.storages.is_empty() {
            return EgressRelease::Waiting;
        }
        let lists = state
            .egress_pending
            .remove(uuid)
            .map(|record| record.egress_lists)
            .unwrap_or_default();
        for list in &lists {
            self.push_to_list(state, list, enqueue_lists.contains(list), uuid, now);
        }
        EgressRelease::Released(lists)
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn put_vcon(&self, vcon: VconWrite<'_>, enqueue: &[String]) -> StoreResult<()> {
        let id = vcon.uuid.to_string();
        self.with_state(|state, now| {
            // A TTL only when nothing holds it: not queued now, no run pending.
            let held = !enqueue.is_empty() || state.pending.contains(&id);
            let expiry = match self.settings.vcon_ttl {
                0 => None,
                _ if held => None,
                ttl => deadline(now, ttl),
            };
            state.vcons.insert(&id, vcon.text.to_owned(), expiry);
            let score = IndexScore::CreatedAt(vcon.score);
            self.index(state, &id, score, vcon.parties, now);
            for list in enqueue {
                self.push_to_list(state, list, true, &id, now);
            }
        });
        Ok(())
    }

    async fn get_vcon(&self, uuid: Uuid) -> StoreResult<Option<String>> {
        let id = uuid.to_string();
        Ok(self.with_state(|state, _| state.vcons.get(&id).cloned()))
    }

    async fn get_vcons(&self, uuids: &[Uuid]) -> StoreResult<Vec<Option<String>>> {
        let ids: Vec<String> = uuids.iter().map(Uuid::to_string).collect();
        Ok(self.with_state(|state, _| ids.iter().map(|id| state.vcons.get(id).cloned()).collect()))
    }

    async fn delete_vcon(&self, uuid: Uuid, parties: &PartyIndex) -> StoreResult<()> {
        let id = uuid.to_string();
        self.with_state(|state, _| {
            state.vcons.remove(&id);
            state.created.remove(&id);
            for (field, value) in party_entries(parties) {
                let set = self.names.party(field, value);
                if let Some(members) = state.parties.get_mut(&set) {
                    members.remove(&id);
                    if members.is_empty() {
                        state.parties.remove(&set);
                    }
                }
            }
        });
        Ok(())
    }

    async fn list_vcons(&self, query: ListQuery) -> StoreResult<Vec<String>> {
        Ok(self.with_state(|state, _| state.created.newest_first(query)))
    }

    async fn search(&self, terms: &SearchTerms) -> StoreResult<Vec<String>> {
        let Some(sets) = search_sets(&self.names, terms) else {
            return Ok(Vec::new());
        };
        let mut found = self.with_state(|state, _| {
            let mut members = Vec::with_capacity(sets.len());
            for set in &sets {
                match state.parties.get(set) {
                    Some(set) => members.push(set),
                    None => return Vec::new(),
                }
            }
            members.sort_by_key(|set| set.len());
            let Some((smallest, others)) = members.split_first() else {
                return Vec::new();
            };
            smallest
                .iter()
                .filter(|id| others.iter().all(|set| set.contains(*id)))
                .cloned()
                .collect()
        });
        found.sort_unstable();
        Ok(found)
    }

    async fn enqueue(&self, list: &str, uuids: &[Uuid]) -> StoreResult<()> {
        self.with_state(|state, now| {
            for uuid in uuids {
                self.push_to_list(state, list, true, &uuid.to_string(), now);
            }
        });
        Ok(())
    }

    async fn list_len(&self, list: &str) -> StoreResult<u64> {
        let list = self.names.list(list);
        Ok(self.with_state(|state, _| state.lists.len(&list)))
    }

    async fn pop_front(&self, list: &str, limit: usize) -> StoreResult<Vec<String>> {
        let list = self.names.list(list);
        Ok(self.with_state(|state, _| {
            std::iter::from_fn(|| state.lists.pop_front(&list))
                .take(limit)
                .collect()
        }))
    }

    async fn dlq_items(&self, list: &str) -> StoreResult<Vec<String>> {
        let dlq = self.names.dlq(list);
        Ok(self.with_state(|state, _| state.lists.head(&dlq, usize::MAX)))
    }

    async fn dlq_reprocess(&self, list: &str, count: usize) -> StoreResult<usize> {
        let dlq = self.names.dlq(list);
        Ok(self.with_state(|state, now| {
            let mut moved = 0;
            while moved < count {
                let Some(id) = state.lists.pop_front(&dlq) else {
                    break;
                };
                self.push_to_list(state, list, true, &id, now);
                moved += 1;
            }
            moved
        }))
    }

    async fn storage_dlq_items(&self, storage: &str) -> StoreResult<Vec<String>> {
        let dlq = self.names.storage_dlq(storage);
        Ok(self.with_state(|state, _| state.lists.head(&dlq, usize::MAX)))
    }

    async fn chain_status(&self, chain: ChainLists<'_>) -> StoreResult<ChainStatus> {
        Ok(self.with_state(|state, _| {
            let depth = |name: String| state.lists.len(&name);
            let mut status = ChainStatus::default();
            for list in chain.ingress_lists {
                let dlq_depth = depth(self.names.dlq(list));
                status
                    .ingress
                    .push((list.clone(), depth(self.names.list(list)), dlq_depth));
            }
            for list in chain.egress_lists {
                status
                    .egress
                    .push((list.clone(), depth(self.names.list(list))));
            }
            if let Some(counters) = state.counters.get(chain.name) {
                let counter =
                    |outcome: RunOutcome| counters.get(outcome.stats_field()).copied().unwrap_or(0);
                status.processed = counter(RunOutcome::Processed);
                status.halted = counter(RunOutcome::Halted);
                status.failed = counter(RunOutcome::Failed);
            }
            for storage in chain.storages {
                let dlq_depth = depth(self.names.storage_dlq(storage));
                status.storage_dlq.push((storage.clone(), dlq_depth));
            }
            // Only live instances count: a dead one's items are about to be moved back.
            for instance in &state.instances {
                if state.heartbeats.contains(instance) {
                    for list in chain.ingress_lists {
                        status.in_flight += depth(self.names.processing(list, instance));
                    }
                }
            }
            status
        }))
    }

    async fn index_all(&self) -> StoreResult<u64> {
        let ids = self.with_state(|state, _| state.vcons.keys());
        let mut indexed = 0;
        for batch in ids.chunks(INDEX_BATCH) {
            let texts: Vec<(&String, String)> = self.with_state(|state, _| {
                batch
                    .iter()
                    .filter_map(|id| Some((id, state.vcons.get(id)?.clone())))
                    .collect()
            });
            let receipt = chrono::Utc::now().timestamp();
            let entries: Vec<IndexEntry> = texts
                .into_iter()
                .filter_map(|(id, text)| IndexEntry::read(id, &text, receipt))
                .collect();
            self.with_state(|state, now| {
                for entry in &entries {
                    self.index(state, &entry.id, entry.score(), &entry.parties, now);
                }
            });
            indexed += entries.len() as u64;
        }
        Ok(indexed)
    }

    async fn register_instance(&self, id: &str, _info: &str, ttl: u64) -> StoreResult<()> {
        self.with_state(|state, now| {
            state.instances.insert(id.to_owned());
            state.heartbeats.insert(id, (), deadline(now, ttl.max(1)));
        });
        Ok(())
    }

    async fn heartbeat(&self, id: &str, _info: &str, ttl: u64) -> StoreResult<bool> {
        Ok(self.with_state(|state, now| {
            let alive = state.heartbeats.contains(id);
            state.heartbeats.insert(id, (), deadline(now, ttl.max(1)));
            state.instances.insert(id.to_owned());
            alive
        }))
    }

    async fn note_consumed_list(&self, id: &str, list: &str) -> StoreResult<()> {
        self.with_state(|state, _| {
            state
                .consumed
                .entry(id.to_owned())
                .or_default()
                .insert(list.to_owned());
        });
        Ok(())
    }

    async fn claim(
        &self,
        list: &str,
        instance_id: &str,
        wait: Duration,
    ) -> StoreResult<Option<String>> {
        let source = self.names.list(list);
        let processing = self.names.processing(list, instance_id);
        let arrivals = self.with_state(|state, _| state.lists.arrivals(&source));
        let deadline = tokio::time::Instant::now() + wait.min(LONGEST_CLAIM_WAIT);
        loop {
            // Registered before looking, so that a push right after the look still wakes it.
            let arrival = arrivals.notified();
            tokio::pin!(arrival);
            arrival.as_mut().enable();
            let taken = self.with_state(|state, _| {
                let item = state.lists.pop_front(&source)?;
                state.lists.push_back(&processing, item.clone());
                // In flight, a vCon cannot expire.
                state.vcons.set_deadline(&item, None);
                Some(item)
            });
            if taken.is_some() {
                return Ok(taken);
            }
            if tokio::time::timeout_at(deadline, arrival).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn write_back(&self, uuid: Uuid, text: &str) -> StoreResult<()> {
        let id = uuid.to_string();
        self.with_state(|state, _| state.vcons.insert(&id, text.to_owned(), None));
        Ok(())
    }

    async fn finish(&self, finish: &Finish<'_>) -> StoreResult<()> {
        let id = finish.uuid.to_string();
        self.with_state(|state, now| {
            if finish.outcome == RunOutcome::Failed {
                let dlq = self.names.dlq(finish.ingress_list);
                state.lists.push_back(&dlq, finish.item.to_owned());
            }
            for storage in finish.failed_storages {
                let dlq = self.names.storage_dlq(storage);
                state.lists.push_back(&dlq, id.clone());
            }
            if finish.failed_storages.is_empty() {
                for Push { list, enqueue } in finish.egress {
                    self.push_to_list(state, list, *enqueue, &id, now);
                }
            } else if !finish.egress.is_empty() {
                let record =
                    EgressPending::new(finish.chain, finish.egress, finish.failed_storages);
                let expiry = match self.settings.dlq_ttl {
                    0 => None,
                    ttl => deadline(now, ttl),
                };
                state.egress_pending.insert(&id, record, expiry);
            }
            for Push { list, enqueue } in finish.routes {
                self.push_to_list(state, list, *enqueue, &id, now);
            }
            self.ttl_step(state, &id, finish.ttl, finish.decrement, now);
            if let Some(original) = finish.replaced {
                self.ttl_step(state, &original.to_string(), finish.ttl, true, now);
            }
            let counters = state.counters.entry(finish.chain.to_owned()).or_default();
            *counters.entry(finish.outcome.stats_field()).or_default() += 1;
            let processing = self
                .names
                .processing(finish.ingress_list, finish.instance_id);
            state.lists.remove_first(&processing, finish.item);
        });
        Ok(())
    }

    async fn dead_instances(&self, own_id: &str) -> StoreResult<Vec<String>> {
        let mut dead = self.with_state(|state, _| {
            state
                .instances
                .iter()
                .filter(|id| *id != own_id && !state.heartbeats.contains(id))
                .cloned()
                .collect::<Vec<_>>()
        });
        dead.sort_unstable();
        Ok(dead)
    }

    async fn recover_instance(&self, id: &str) -> StoreResult<Vec<(String, u64)>> {
        Ok(self.with_state(|state, _| {
            let lists = state.consumed.remove(id).unwrap_or_default();
            let mut recovered = Vec::with_capacity(lists.len());
            for list in lists {
                let processing = self.names.processing(&list, id);
                let destination = self.names.list(&list);
                let mut moved = 0;
                // Newest first onto the head: the oldest item ends first.
                while let Some(item) = state.lists.pop_back(&processing) {
                    state.lists.push_front(&destination, item);
                    moved += 1;
                }
                recovered.push((list, moved));
            }
            state.instances.remove(id);
            recovered
        }))
    }

    async fn processing_items(&self, list: &str, instance_id: &str) -> StoreResult<Vec<String>> {
        let processing = self.names.processing(list, instance_id);
        Ok(self.with_state(|state, _| state.lists.head(&processing, usize::MAX)))
    }

    async fn return_item(&self, list: &str, instance_id: &str, item: &str) -> StoreResult<bool> {
        let processing = self.names.processing(list, instance_id);
        let destination = self.names.list(list);
        Ok(self.with_state(|state, _| {
            let held = state.lists.remove_first(&processing, item);
            if held {
                state.lists.push_front(&destination, item.to_owned());
            }
            held
        }))
    }

    async fn deregister_instance(&self, id: &str) -> StoreResult<()> {
        self.with_state(|state, _| state.heartbeats.remove(id));
        Ok(())
    }

    async fn storage_dlq_head(&self, storage: &str, count: usize) -> StoreResult<Vec<String>> {
        let dlq = self.names.storage_dlq(storage);
        Ok(self.with_state(|state, _| state.lists.head(&dlq, count)))
    }

    async fn storage_dlq_done(
        &self,
        storage: &str,
        uuid: &str,
        released: bool,
        enqueue_lists: &[String],
    ) -> StoreResult<EgressRelease> {
        let dlq = self.names.storage_dlq(storage);
        Ok(self.with_state(|state, now| {
            let release = if released {
                self.release_egress(state, storage, uuid, enqueue_lists, now)
            } else {
                EgressRelease::NoRecord
            };
            state.lists.remove_first(&dlq, uuid);
            release
        }))
    }

    async fn put_blob(&self, name: &str, text: &str, ttl: u64) -> StoreResult<()> {
        self.with_state(|state, now| {
            let expiry = match ttl {
                0 => None,
                ttl => deadline(now, ttl),
            };
            state.blobs.insert(name, text.to_owned(), expiry);
        });
        Ok(())
    }

    async fn get_blob(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(self.with_state(|state, _| state.blobs.get(name).cloned()))
    }

    async fn delete_blob(&self, name: &str) -> StoreResult<bool> {
        Ok(self.with_state(|state, _| state.blobs.remove(name).is_some()))
    }
}

/// The instant `seconds` after `now`; `None` (never) beyond what an [`Instant`] can hold.
fn deadline(now: Instant, seconds: u64) -> Option<Instant> {
    now.checked_add(Duration::from_secs(seconds))
}

/// The deadline of a TTL in the pending count's form: seconds, or -1 for never.
fn ttl_deadline(now: Instant, ttl: i64) -> Option<Instant> {
    u64::try_from(ttl)
        .ok()
        .and_then(|seconds| deadline(now, seconds))
}

impl State {
    /// Removes every entry whose deadline is not after `now`.
    fn purge(&mut self, now: Instant) {
        self.vcons.purge(now);
        self.pending.purge(now);
        self.parties.purge(now);
        self.heartbeats.purge(now);
        self.egress_pending.purge(now);
        self.blobs.purge(now);
    }
}

/// Entries by name that may carry a deadline. Each deadline also sits in an ordered set, once,
/// so what is due is found without a scan and nothing outlives its deadline.
#[derive(Debug)]
struct Expiring<V> {
    entries: HashMap<String, Timed<V>>,
    deadlines: BTreeSet<(Instant, String)>,
}

#[derive(Debug)]
struct Timed<V> {
    value: V,
    deadline: Option<Instant>,
}

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Expiring {
            entries: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }
}

impl<V> Expiring<V> {
    /// Removes every entry whose deadline is not after `now`.
    fn purge(&mut self, now: Instant) {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                break;
            }
            if let Some((_, name)) = self.deadlines.pop_first() {
                self.entries.remove(&name);
            }
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    fn get(&self, name: &str) -> Option<&V> {
        self.entries.get(name).map(|timed| &timed.value)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.entries.get_mut(name).map(|timed| &mut timed.value)
    }

    /// The entry, created by `make` (without a deadline) when missing; an existing one keeps
    /// its deadline.
    fn get_or_insert_with(&mut self, name: &str, make: impl FnOnce() -> V) -> &mut V {
        &mut self
            .entries
            .entry(name.to_owned())
            .or_insert_with(|| Timed {
                value: make(),
                deadline: None,
            })
            .value
    }

    /// Replaces the entry and its deadline.
    fn insert(&mut self, name: &str, value: V, deadline: Option<Instant>) {
        self.remove(name);
        self.entries
            .insert(name.to_owned(), Timed { value, deadline });
        if let Some(deadline) = deadline {
            self.deadlines.insert((deadline, name.to_owned()));
        }
    }

    /// Sets (or with `None` removes) the deadline of an existing entry; a missing one stays so.
    fn set_deadline(&mut self, name: &str, deadline: Option<Instant>) {
        let Some(timed) = self.entries.get_mut(name) else {
            return;
        };
        if timed.deadline == deadline {
            return;
        }
        if let Some(previous) = std::mem::replace(&mut timed.deadline, deadline) {
            self.deadlines.remove(&(previous, name.to_owned()));
        }
        if let Some(deadline) = deadline {
            self.deadlines.insert((deadline, name.to_owned()));
        }
    }

    fn remove(&mut self, name: &str) -> Option<V> {
        let timed = self.entries.remove(name)?;
        if let Some(deadline) = timed.deadline {
            self.deadlines.remove(&(deadline, name.to_owned()));
        }
        Some(timed.value)
    }

    /// Every name.
    fn keys(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }
}

/// The created-at index: a score per uuid, and the uuids ordered by (score, uuid). Redis orders
/// equal scores by member, and every member is `vcon:<uuid>`, so by uuid.
#[derive(Debug, Default)]
struct CreatedIndex {
    scores: HashMap<String, i64>,
    order: BTreeSet<(i64, String)>,
}

impl CreatedIndex {
    fn set(&mut self, id: &str, score: i64) {
        self.remove(id);
        self.scores.insert(id.to_owned(), score);
        self.order.insert((score, id.to_owned()));
    }

    /// Sets the score of a uuid that has none.
    fn set_if_absent(&mut self, id: &str, score: i64) {
        if !self.scores.contains_key(id) {
            self.set(id, score);
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(score) = self.scores.remove(id) {
            self.order.remove(&(score, id.to_owned()));
        }
    }

    /// `GET /vcon` paging: highest score first, equal scores in reverse order of the uuid, as
    /// `ZREVRANGEBYSCORE <until> <since> LIMIT offset count` answers.
    fn newest_first(&self, query: ListQuery) -> Vec<String> {
        let lower = match query.since {
            Some(since) => Bound::Included((since, String::new())),
            None => Bound::Unbounded,
        };
        let upper = match query.until.and_then(|until| until.checked_add(1)) {
            Some(above) => Bound::Excluded((above, String::new())),
            None => Bound::Unbounded,
        };
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let count = usize::try_from(query.count).unwrap_or(usize::MAX);
        self.order
            .range((lower, upper))
            .rev()
            .skip(offset)
            .take(count)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

/// Lists of items by name; a list that becomes empty is dropped.
#[derive(Debug, Default)]
struct Lists {
    items: HashMap<String, VecDeque<String>>,
    /// What claims waiting on a list wait on, by list name; every push onto the list wakes them.
    arrivals: HashMap<String, Arc<Notify>>,
}

impl Lists {
    fn len(&self, name: &str) -> u64 {
        self.items.get(name).map_or(0, |list| list.len() as u64)
    }

    /// The first `count` items, oldest first.
    fn head(&self, name: &str, count: usize) -> Vec<String> {
        self.items
            .get(name)
            .map(|list| list.iter().take(count).cloned().collect())
            .unwrap_or_default()
    }

    fn push_back(&mut self, name: &str, item: String) {
        self.items
            .entry(name.to_owned())
            .or_default()
            .push_back(item);
        self.wake(name);
    }

    fn push_front(&mut self, name: &str, item: String) {
        self.items
            .entry(name.to_owned())
            .or_default()
            .push_front(item);
        self.wake(name);
    }

    fn pop_front(&mut self, name: &str) -> Option<String> {
        self.take(name, VecDeque::pop_front)
    }

    fn pop_back(&mut self, name: &str) -> Option<String> {
        self.take(name, VecDeque::pop_back)
    }

    /// Removes the first entry equal to `item`; whether there was one.
    fn remove_first(&mut self, name: &str, item: &str) -> bool {
        self.take(name, |list| {
            let index = list.iter().position(|entry| entry == item)?;
            list.remove(index)
        })
        .is_some()
    }

    /// Applies `take` to the list `name`, dropping the list if that empties it.
    fn take(
        &mut self,
        name: &str,
        take: impl FnOnce(&mut VecDeque<String>) -> Option<String>,
    ) -> Option<String> {
        let list = self.items.get_mut(name)?;
        let item = take(list);
        if list.is_empty() {
            self.items.remove(name);
        }
        item
    }

    /// What a claim waiting on the list `name` waits on.
    fn arrivals(&mut self, name: &str) -> Arc<Notify> {
        self.arrivals.entry(name.to_owned()).or_default().clone()
    }

    /// Wakes the claims waiting on the list `name`: it just received an item.
    fn wake(&self, name: &str) {
        if let Some(arrivals) = self.arrivals.get(name) {
            arrivals.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_purged_and_deadlines_stay_one_per_entry() {
        let mut map = Expiring::default();
        let start = Instant::now();
        map.insert("a", 1, deadline(start, 10));
        map.set_deadline("a", deadline(start, 5));
        assert_eq!(map.deadlines.len(), 1);
        map.purge(start + Duration::from_secs(4));
        assert_eq!(map.get("a"), Some(&1));
        map.purge(start + Duration::from_secs(5));
        assert!(!map.contains("a"));
        assert!(map.deadlines.is_empty());
    }

    #[test]
    fn insert_replaces_the_deadline_and_set_deadline_none_keeps_the_entry() {
        let mut map = Expiring::default();
        let now = Instant::now();
        map.insert("a", 1, deadline(now, 10));
        map.insert("a", 2, None);
        assert!(map.deadlines.is_empty());
        map.set_deadline("a", deadline(now, 10));
        map.set_deadline("a", None);
        assert!(map.deadlines.is_empty());
        map.purge(now + Duration::from_secs(20));
        assert_eq!(map.get("a"), Some(&2));
        // A missing entry is not created by a deadline.
        map.set_deadline("missing", deadline(now, 10));
        assert!(!map.contains("missing"));
        assert_eq!(map.remove("a"), Some(2));
        assert!(map.entries.is_empty() && map.deadlines.is_empty());
    }

    #[test]
    fn an_existing_entry_keeps_its_deadline() {
        let mut map = Expiring::default();
        let now = Instant::now();
        map.insert("a", 1, deadline(now, 10));
        *map.get_or_insert_with("a", || 0) += 1;
        map.purge(now + Duration::from_secs(10));
        assert!(!map.contains("a"));
    }

    #[test]
    fn deadlines_beyond_an_instant_are_never() {
        assert_eq!(deadline(Instant::now(), u64::MAX), None);
        assert_eq!(ttl_deadline(Instant::now(), -1), None);
    }

    #[test]
    fn lists_drop_when_empty_and_remove_the_first_match_only() {
        let mut lists = Lists::default();
        for item in ["a", "b", "a"] {
            lists.push_back("l", item.to_owned());
        }
        assert!(lists.remove_first("l", "a"));
        assert_eq!(lists.head("l", 10), ["b", "a"]);
        assert!(!lists.remove_first("l", "x"));
        assert_eq!(lists.head("l", 1), ["b"]);
        assert_eq!(lists.pop_back("l").as_deref(), Some("a"));
        assert_eq!(lists.pop_front("l").as_deref(), Some("b"));
        assert!(lists.items.is_empty());
        assert_eq!(lists.pop_front("l"), None);
        assert!(!lists.remove_first("l", "a"));
        assert_eq!(lists.len("l"), 0);
    }

    #[test]
    fn created_index_orders_like_redis() {
        let mut index = CreatedIndex::default();
        for (score, id) in [(1, "a"), (2, "b"), (2, "c"), (3, "d")] {
            index.set(id, score);
        }
        let query = |since, until, offset, count| ListQuery {
            since,
            until,
            offset,
            count,
        };
        assert_eq!(
            index.newest_first(query(None, None, 0, 10)),
            ["d", "c", "b", "a"]
        );
        assert_eq!(
            index.newest_first(query(Some(2), Some(2), 0, 10)),
            ["c", "b"]
        );
        assert_eq!(index.newest_first(query(None, None, 1, 2)), ["c", "b"]);
        assert!(index.newest_first(query(None, None, 0, 0)).is_empty());
        assert_eq!(index.newest_first(query(None, Some(i64::MAX), 0, 1)), ["d"]);
        // A kept score stays; a set one moves the uuid.
        index.set_if_absent("a", 9);
        assert_eq!(index.scores["a"], 1);
        index.set("a", 9);
        assert_eq!(index.newest_first(query(None, None, 0, 1)), ["a"]);
        assert_eq!(index.order.len(), 4);
        index.remove("a");
        assert_eq!(index.order.len(), 3);
    }
}
