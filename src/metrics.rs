//! Prometheus metrics (api.md §5.4). One registry per process, owned by the app state (tests
//! build their own, so they never share counters). No metric carries a vCon uuid.

use std::sync::Mutex;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::Config;
use crate::links::LinkKind;
use crate::store::RunOutcome;
use crate::version;

/// The `outcome` labels of `conserver_link_runs_total`.
const LINK_OUTCOMES: [&str; 4] = ["continue", "skipped", "halt", "error"];

/// The `outcome` labels of `conserver_storage_writes_total`.
const STORAGE_OUTCOMES: [&str; 2] = ["ok", "dead_lettered"];

/// Latency buckets, seconds: from a cached API answer to a slow LLM call.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// Every metric this instance exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub vcons_enqueued: IntCounterVec,
    pub vcons_received: IntCounterVec,
    pub chain_runs: IntCounterVec,
    pub chain_duration: HistogramVec,
    /// Chains started on this instance (a configuration that changes a chain starts it again).
    pub chain_starts: IntCounterVec,
    pub vcons_in_flight: IntGaugeVec,
    pub link_runs: IntCounterVec,
    pub link_duration: HistogramVec,
    pub storage_writes: IntCounterVec,
    pub storage_duration: HistogramVec,
    /// `component` (link or storage name), `reason` (`connect`, `timeout`, `429`, `5xx`, …).
    pub retries: IntCounterVec,
    /// `jq_link` filter runs that raised an error (the chain halted), by link.
    pub jq_errors: IntCounterVec,
    pub validation_warnings: IntCounterVec,
    pub queue_depth: IntGaugeVec,
    pub dlq_depth: IntGaugeVec,
    pub recovered_items: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub actor_restarts: IntCounterVec,
    /// The chains, links and storages whose series are declared (see [`Metrics::declare`]).
    declared: Mutex<Declared>,
}

/// The label values of a configuration's chains, links and storages.
#[derive(Debug, Default, PartialEq)]
struct Declared {
    chains: Vec<String>,
    /// `(chain, ingress list)`.
    received: Vec<(String, String)>,
    /// `(chain, link)`.
    links: Vec<(String, String)>,
    storages: Vec<String>,
    jq_links: Vec<String>,
}

impl Declared {
    fn of(config: &Config) -> Declared {
        let mut declared = Declared::default();
        for chain in &config.chains {
            declared.chains.push(chain.name.clone());
            for list in &chain.ingress_lists {
                declared.received.push((chain.name.clone(), list.clone()));
            }
            for link in &chain.links {
                declared.links.push((chain.name.clone(), link.clone()));
            }
        }
        declared.storages = config.storages.iter().map(|s| s.name.clone()).collect();
        declared.jq_links = config
            .links
            .iter()
            .filter(|l| l.kind == LinkKind::JqLink)
            .map(|l| l.name.clone())
            .collect();
        declared
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let build_info = gauge(
            &r,
            "conserver_build_info",
            "Always 1; the labels say which build this is",
            &["version", "git_commit"],
        );
        build_info
            .with_label_values(&[version::VERSION, version::GIT_COMMIT])
            .set(1);
        Metrics {
            http_requests: counter(
                &r,
                "conserver_http_requests_total",
                "HTTP requests answered, by route template and status",
                &["method", "route", "status"],
            ),
            http_duration: histogram(
                &r,
                "conserver_http_request_duration_seconds",
                "Time to answer an HTTP request",
                &["method", "route"],
            ),
            vcons_enqueued: counter(
                &r,
                "conserver_vcons_enqueued_total",
                "vCon uuids put on an ingress list, by list and source",
                &["ingress_list", "source"],
            ),
            vcons_received: counter(
                &r,
                "conserver_vcons_received_total",
                "vCon uuids taken from an ingress list by a chain",
                &["chain", "ingress_list"],
            ),
            chain_runs: counter(
                &r,
                "conserver_chain_runs_total",
                "Chain runs, by outcome (processed, halted, failed, missing)",
                &["chain", "outcome"],
            ),
            chain_duration: histogram(
                &r,
                "conserver_chain_duration_seconds",
                "Time of a whole chain run, from take to acknowledgement",
                &["chain"],
            ),
            chain_starts: counter(
                &r,
                "conserver_chain_starts_total",
                "Chains started on this instance; a configuration change that alters a chain starts it again",
                &["chain"],
            ),
            vcons_in_flight: gauge(
                &r,
                "conserver_vcons_in_flight",
                "vCons of a chain being processed on this instance",
                &["chain"],
            ),
            link_runs: counter(
                &r,
                "conserver_link_runs_total",
                "Link runs, by outcome (continue, halt, error, skipped)",
                &["chain", "link", "outcome"],
            ),
            link_duration: histogram(
                &r,
                "conserver_link_duration_seconds",
                "Time of one link run",
                &["chain", "link"],
            ),
            storage_writes: counter(
                &r,
                "conserver_storage_writes_total",
                "Storage writes, by outcome (ok, dead_lettered)",
                &["storage", "outcome"],
            ),
            storage_duration: histogram(
                &r,
                "conserver_storage_write_duration_seconds",
                "Time of one storage write, retries included",
                &["storage"],
            ),
            retries: counter(
                &r,
                "conserver_retries_total",
                "Retried network calls, by link or storage and reason",
                &["component", "reason"],
            ),
            jq_errors: counter(
                &r,
                "conserver_jq_errors_total",
                "jq_link filter runs that raised an error and halted the chain, by link",
                &["link"],
            ),
            validation_warnings: counter(
                &r,
                "conserver_vcon_validation_warnings_total",
                "Accepted vCons with something unusual, by kind",
                &["kind"],
            ),
            queue_depth: gauge(
                &r,
                "conserver_queue_depth",
                "Length of each ingress and egress list of the config, sampled at scrape time",
                &["list"],
            ),
            dlq_depth: gauge(
                &r,
                "conserver_dlq_depth",
                "Length of each DLQ list, sampled at scrape time",
                &["list"],
            ),
            recovered_items: counter(
                &r,
                "conserver_recovered_items_total",
                "Items moved back to an ingress list from a dead instance",
                &["ingress_list"],
            ),
            config_reloads: counter(
                &r,
                "conserver_config_reloads_total",
                "Configuration reloads, by outcome",
                &["outcome"],
            ),
            actor_restarts: counter(
                &r,
                "conserver_actor_restarts_total",
                "Supervised actors restarted after a failure, by kind and name",
                &["kind", "name"],
            ),
            registry: r,
            declared: Mutex::new(Declared::default()),
        }
    }

    /// Give every chain, link and storage of `config` its series at 0, so that a dashboard or
    /// an alert on "nothing processed" has something to read from the start (Prometheus'
    /// instrumentation guidance: initialise the label sets you know); remove the series of
    /// those the previous configuration had and this one has not.
    pub fn declare(&self, config: &Config) {
        let next = Declared::of(config);
        let mut declared = self.declared.lock().unwrap_or_else(|p| p.into_inner());
        let gone = |values: &[String], kept: &[String]| -> Vec<String> {
            values
                .iter()
                .filter(|v| !kept.contains(v))
                .cloned()
                .collect()
        };
        // Removing a series that does not exist is an error prometheus reports and nothing
        // else: ignored.
        for chain in gone(&declared.chains, &next.chains) {
            for outcome in RunOutcome::ALL {
                let _ = self
                    .chain_runs
                    .remove_label_values(&[&chain, outcome.label()]);
            }
            let _ = self.chain_duration.remove_label_values(&[&chain]);
            let _ = self.chain_starts.remove_label_values(&[&chain]);
            let _ = self.vcons_in_flight.remove_label_values(&[&chain]);
        }
        for (chain, list) in declared
            .received
            .iter()
            .filter(|r| !next.received.contains(r))
        {
            let _ = self.vcons_received.remove_label_values(&[chain, list]);
        }
        for (chain, link) in declared.links.iter().filter(|l| !next.links.contains(l)) {
            for outcome in LINK_OUTCOMES {
                let _ = self.link_runs.remove_label_values(&[chain, link, outcome]);
            }
            let _ = self.link_duration.remove_label_values(&[chain, link]);
        }
        for storage in gone(&declared.storages, &next.storages) {
            for outcome in STORAGE_OUTCOMES {
                let _ = self
                    .storage_writes
                    .remove_label_values(&[&storage, outcome]);
            }
            let _ = self.storage_duration.remove_label_values(&[&storage]);
        }
        for link in gone(&declared.jq_links, &next.jq_links) {
            let _ = self.jq_errors.remove_label_values(&[&link]);
        }

        for chain in &next.chains {
            for outcome in RunOutcome::ALL {
                self.chain_runs.with_label_values(&[chain, outcome.label()]);
            }
            self.chain_duration.with_label_values(&[chain]);
            self.chain_starts.with_label_values(&[chain]);
            self.vcons_in_flight.with_label_values(&[chain]);
        }
        for (chain, list) in &next.received {
            self.vcons_received.with_label_values(&[chain, list]);
        }
        for (chain, link) in &next.links {
            for outcome in LINK_OUTCOMES {
                self.link_runs.with_label_values(&[chain, link, outcome]);
            }
            self.link_duration.with_label_values(&[chain, link]);
        }
        for storage in &next.storages {
            for outcome in STORAGE_OUTCOMES {
                self.storage_writes.with_label_values(&[storage, outcome]);
            }
            self.storage_duration.with_label_values(&[storage]);
        }
        for link in &next.jq_links {
            self.jq_errors.with_label_values(&[link]);
        }
        *declared = next;
    }

    /// The text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

// The definitions below are constants of this file: a failure is a programming error caught by
// the first test that builds `Metrics`, hence `expect`.
fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let metric = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .expect("valid histogram definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}
