//! Reading vCons for the API (api.md §4 "Reading a vCon"): Redis first in one round trip; the
//! misses from the configured storages in `storages:` order, re-cached and re-indexed. A
//! stored value that is not a JSON object is no vCon: logged, and read as missing.

use uuid::Uuid;

use super::state::{AppState, Live};
use crate::store::{self, StoreError};
use crate::vcon::{self, Document};

/// Whether a vCon found in a storage is written back to the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Recache {
    Yes,
    /// `DELETE` only needs the parties of what it is about to delete.
    No,
}

/// The vCons of `uuids`, in order; `None` where one is found nowhere.
pub async fn read_vcons(
    state: &AppState,
    live: &Live,
    uuids: &[Uuid],
    recache: Recache,
) -> Result<Vec<Option<String>>, StoreError> {
    let mut found = state.store.get_vcons(uuids).await?;
    for (uuid, slot) in uuids.iter().zip(found.iter_mut()) {
        if slot
            .as_deref()
            .is_some_and(|text| !vcon::is_json_object(text))
        {
            tracing::warn!(vcon_id = %uuid, "the stored value of vcon:{uuid} is not a JSON object; treated as missing");
            *slot = None;
        }
    }
    if !live.redis.storage_fallback {
        return Ok(found);
    }
    let order: Vec<&str> = live.storages.iter().map(|m| m.name.as_str()).collect();
    for (uuid, slot) in uuids
        .iter()
        .zip(found.iter_mut())
        .filter(|(_, slot)| slot.is_none())
    {
        let Some((storage, text)) = live
            .pipelines
            .storages
            .read_back(*uuid, order.iter().copied())
            .await
        else {
            continue;
        };
        if recache == Recache::Yes {
            // Read back as a JSON object (`read_back` checks it), so it reads as a document.
            let Ok(mut document) = Document::from_stored(*uuid, text) else {
                continue;
            };
            // A failed re-cache costs the next reader a storage read, nothing more.
            match store::recache(state.store.as_ref(), &mut document).await {
                Ok(()) => {
                    tracing::debug!(vcon_id = %uuid, storage = %storage, "vCon read back from a storage and re-cached")
                }
                Err(e) => {
                    tracing::warn!(vcon_id = %uuid, storage = %storage, error = %crate::report(&e), "vCon read back from a storage but not re-cached")
                }
            }
            *slot = Some(document.into_parts().3);
        } else {
            *slot = Some(text);
        }
    }
    Ok(found)
}

/// The vCon of `uuid`, as [`read_vcons`] reads it.
pub async fn read_vcon(
    state: &AppState,
    live: &Live,
    uuid: Uuid,
    recache: Recache,
) -> Result<Option<String>, StoreError> {
    Ok(read_vcons(state, live, &[uuid], recache)
        .await?
        .pop()
        .flatten())
}
