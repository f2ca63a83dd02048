//! This instance's life in Redis (redis.md §3.4–§3.5): its heartbeat, and the reaper that
//! hands a dead instance's in-flight items back to their ingress lists.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::held::Held;
use crate::metrics::Metrics;
use crate::store::Store;

/// Who this instance is, as its heartbeat says.
pub fn info(id: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    serde_json::json!({
        "id": id,
        "host": host,
        "pid": std::process::id(),
        "version": crate::version::VERSION,
        "started_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
    .to_string()
}

/// The ingress lists this instance consumes (shared with the engine, which adds to it).
pub type ConsumedLists = Arc<Mutex<BTreeSet<String>>>;

/// Refresh the heartbeat every third of its lifetime. When it was found expired, this
/// instance was recovered by another one, which deleted its lists set: register again and note
/// the lists again, so a later crash of this instance is still recovered.
pub async fn heartbeat(
    store: Arc<dyn Store>,
    id: String,
    info: String,
    ttl: u64,
    lists: ConsumedLists,
) {
    let period = Duration::from_secs_f64((ttl as f64 / 3.0).max(1.0));
    loop {
        tokio::time::sleep(period).await;
        match store.heartbeat(&id, &info, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(instance = %id, "this instance's heartbeat had expired (it was considered dead): its in-flight vCons may be processed twice; registered again");
                let noted: Vec<String> = lists
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect();
                for list in noted {
                    if let Err(e) = store.note_consumed_list(&id, &list).await {
                        tracing::warn!(instance = %id, list = %list, error = %crate::report(&e), "consumed list not noted again");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(instance = %id, error = %crate::report(&e), "heartbeat not refreshed")
            }
        }
    }
}

/// Every `ttl` seconds, move the items of dead instances back to the head of their lists.
pub async fn reaper(store: Arc<dyn Store>, id: String, ttl: u64, metrics: Arc<Metrics>) {
    loop {
        tokio::time::sleep(Duration::from_secs(ttl.max(1))).await;
        if let Err(e) = reap(&store, &id, &metrics).await {
            tracing::warn!(error = %crate::report(&e), "dead instances not checked");
        }
    }
}

/// One pass of the reaper.
pub async fn reap(
    store: &Arc<dyn Store>,
    own_id: &str,
    metrics: &Metrics,
) -> Result<(), crate::store::StoreError> {
    for dead in store.dead_instances(own_id).await? {
        let moved = store.recover_instance(&dead).await?;
        for (list, count) in &moved {
            metrics
                .recovered_items
                .with_label_values(&[list.as_str()])
                .inc_by(*count);
        }
        let total: u64 = moved.iter().map(|(_, n)| n).sum();
        tracing::warn!(instance = %dead, items = total, "instance found dead: its in-flight vCons were put back at the head of their ingress lists");
    }
    Ok(())
}

/// Every `ttl` seconds, put back what this instance holds in its processing lists but no
/// longer runs: a claim whose answer was lost (Redis did the move, the reply never came), or a
/// run whose end could not be recorded. Such an item would otherwise wait for this instance to
/// die. An item is put back only when it was already unknown one pass earlier, so a claim
/// whose answer is on its way (at most the claim wait plus the response timeout) is left alone.
pub async fn sweeper(
    store: Arc<dyn Store>,
    id: String,
    ttl: u64,
    lists: ConsumedLists,
    held: Held,
    metrics: Arc<Metrics>,
) {
    let mut suspects: HashSet<(String, String)> = HashSet::new();
    loop {
        tokio::time::sleep(Duration::from_secs(ttl.max(10))).await;
        let noted: Vec<String> = lists
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let mut unknown = HashSet::new();
        for list in noted {
            let items = match store.processing_items(&list, &id).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::debug!(list = %list, error = %crate::report(&e), "processing list not swept");
                    continue;
                }
            };
            for item in items {
                if held.holds(&list, &item) {
                    continue;
                }
                let key = (list.clone(), item);
                if !suspects.contains(&key) {
                    unknown.insert(key);
                    continue;
                }
                match store.return_item(&key.0, &id, &key.1).await {
                    Ok(true) => {
                        metrics
                            .recovered_items
                            .with_label_values(&[key.0.as_str()])
                            .inc();
                        tracing::warn!(list = %key.0, item = %key.1, "an item this instance held but did not run was put back at the head of its list");
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(list = %key.0, error = %crate::report(&e), "stranded item not put back yet");
                        unknown.insert(key);
                    }
                }
            }
        }
        suspects = unknown;
    }
}
