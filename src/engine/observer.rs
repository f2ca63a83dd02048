//! What the actor runtime reports, turned into metrics and logs.

use std::sync::Arc;

use conserver_actors::Observer;

use crate::metrics::Metrics;

/// The runtime's [`Observer`]: restarts, in-flight counts and retries as metrics.
pub struct MetricsObserver(pub Arc<Metrics>);

impl Observer for MetricsObserver {
    fn restarted(&self, kind: &'static str, name: &str) {
        tracing::warn!(kind, name, "actor restarted after a failure");
        self.0.actor_restarts.with_label_values(&[kind, name]).inc();
    }

    fn in_flight(&self, chain: &str, count: usize) {
        self.0
            .vcons_in_flight
            .with_label_values(&[chain])
            .set(count as i64);
    }

    fn retried(&self, name: &str, reason: &'static str) {
        tracing::debug!(component = name, reason, "retrying");
        self.0.retries.with_label_values(&[name, reason]).inc();
    }
}
