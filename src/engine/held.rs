//! The items this instance holds in its processing lists *and runs*: claimed and not yet
//! finished. Anything else in its processing lists is stranded (see `instance::sweeper`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// `(ingress list, item)` of every claim this instance is running; shared by its chains.
#[derive(Debug, Clone, Default)]
pub struct Held(Arc<Mutex<HashSet<(String, String)>>>);

impl Held {
    /// `item` of `list` was claimed: this instance runs it.
    pub fn hold(&self, list: &str, item: &str) {
        self.lock().insert((list.to_owned(), item.to_owned()));
    }

    /// The run of `item` of `list` ended (finished, or handed back).
    pub fn release(&self, list: &str, item: &str) {
        self.lock().remove(&(list.to_owned(), item.to_owned()));
    }

    /// Whether `item` of `list` is being run.
    pub fn holds(&self, list: &str, item: &str) -> bool {
        self.lock().contains(&(list.to_owned(), item.to_owned()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
