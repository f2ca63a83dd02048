//! Prometheus metrics (api.md §5.4). One registry per process, owned by the app state (tests
//! build their own, so they never share counters). No metric carries a vCon uuid.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::version;

/// Every metric this instance exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub vcons_enqueued: IntCounterVec,
    pub validation_warnings: IntCounterVec,
    pub queue_depth: IntGaugeVec,
    pub dlq_depth: IntGaugeVec,
    pub config_reloads: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http_requests = counter(
            &registry,
            "conserver_http_requests_total",
            "HTTP requests answered, by route template and status",
            &["method", "route", "status"],
        );
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "conserver_http_request_duration_seconds",
                "Time to answer an HTTP request",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )
        .expect("valid histogram definition");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("metric registered once");
        let vcons_enqueued = counter(
            &registry,
            "conserver_vcons_enqueued_total",
            "vCon uuids put on an ingress list, by list and source",
            &["ingress_list", "source"],
        );
        let validation_warnings = counter(
            &registry,
            "conserver_vcon_validation_warnings_total",
            "Accepted vCons with something unusual, by kind",
            &["kind"],
        );
        let queue_depth = gauge(
            &registry,
            "conserver_queue_depth",
            "Length of each ingress and egress list of the config, sampled at scrape time",
            &["list"],
        );
        let dlq_depth = gauge(
            &registry,
            "conserver_dlq_depth",
            "Length of each DLQ list, sampled at scrape time",
            &["list"],
        );
        let config_reloads = counter(
            &registry,
            "conserver_config_reloads_total",
            "Configuration reloads, by outcome",
            &["outcome"],
        );
        let build_info = gauge(
            &registry,
            "conserver_build_info",
            "Always 1; the labels say which build this is",
            &["version", "git_commit"],
        );
        build_info
            .with_label_values(&[version::VERSION, version::GIT_COMMIT])
            .set(1);
        Metrics {
            registry,
            http_requests,
            http_duration,
            vcons_enqueued,
            validation_warnings,
            queue_depth,
            dlq_depth,
            config_reloads,
        }
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
