//! A periodic INFO line per running chain — vCons processed, halted and failed on this
//! instance in the last period, and the depth of its DLQs — so an operator can watch a chain
//! work without per-vCon logging.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::metrics::Metrics;
use crate::store::{RunOutcome, Store};

/// How often each chain's summary is logged.
pub const PERIOD: Duration = Duration::from_secs(60);

/// The chains to summarise: name and ingress lists.
pub type Chains = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// Log a summary of every chain of `chains` each `period`.
pub async fn summaries(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    chains: Chains,
    period: Duration,
) {
    // Counts at the last summary, by chain and outcome.
    let mut last: HashMap<(String, &'static str), u64> = HashMap::new();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        ticks.tick().await;
        let running = chains.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (chain, lists) in running {
            let mut delta = |outcome: RunOutcome| {
                let now = metrics
                    .chain_runs
                    .with_label_values(&[chain.as_str(), outcome.label()])
                    .get();
                let before = last
                    .insert((chain.clone(), outcome.label()), now)
                    .unwrap_or(0);
                now.saturating_sub(before)
            };
            let processed = delta(RunOutcome::Processed);
            let halted = delta(RunOutcome::Halted) + delta(RunOutcome::Missing);
            let failed = delta(RunOutcome::Failed);
            let mut dlq = 0;
            for list in &lists {
                match store.list_len(&format!("DLQ:{list}")).await {
                    Ok(depth) => dlq += depth,
                    Err(error) => {
                        tracing::debug!(chain = %chain, error = %crate::report(&error), "DLQ depth not read for the summary")
                    }
                }
            }
            tracing::info!(
                chain = %chain,
                processed,
                halted,
                failed,
                dlq,
                "chain {chain}: {processed} processed, {halted} halted, {failed} failed in the last {} s; {dlq} in its DLQ",
                period.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// What the subscriber writes, shared with the test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn each_period_says_what_each_chain_did_and_holds_in_its_dlq() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let config = crate::config::Config::from_yaml("{}", None, &Default::default()).unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::new(
            crate::server::store_settings(&config),
        ));
        let metrics = Arc::new(Metrics::new());
        let chains: Chains = Arc::new(Mutex::new(vec![("main".into(), vec!["calls".into()])]));
        for (outcome, times) in [("processed", 3), ("halted", 1), ("failed", 2)] {
            metrics
                .chain_runs
                .with_label_values(&["main", outcome])
                .inc_by(times);
        }
        let task = tokio::spawn(summaries(
            store,
            metrics.clone(),
            chains,
            Duration::from_millis(50),
        ));
        tokio::time::sleep(Duration::from_millis(80)).await;
        metrics
            .chain_runs
            .with_label_values(&["main", "processed"])
            .inc();
        tokio::time::sleep(Duration::from_millis(50)).await;
        task.abort();
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let summaries: Vec<&str> = text.lines().filter(|l| l.contains("chain main:")).collect();
        assert!(summaries.len() >= 2, "{text}");
        assert!(
            summaries[0].contains("3 processed, 1 halted, 2 failed in the last 0 s; 0 in its DLQ"),
            "{}",
            summaries[0]
        );
        assert!(
            summaries[1].contains("1 processed, 0 halted, 0 failed"),
            "{}",
            summaries[1]
        );
    }
}
